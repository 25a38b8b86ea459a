//! Incremental compilation against full compilation, and pool accounting.

use std::sync::Arc;

use certgate_model::{Api, Backend, ConfigState, EntityId, EntityKind, PolicyScope};

use super::Compiler;
use crate::route::Route;
use crate::snapshot::Snapshot;

fn id(text: &str) -> EntityId {
    EntityId::parse(text).expect("valid id")
}

/// APIs `api0..count`, each forwarding to its own service URL.
fn state(count: usize) -> ConfigState {
    let mut state = ConfigState::default();
    for i in 0..count {
        let api = Api {
            display_name: format!("API {i}"),
            path: format!("api{i}"),
            service_url: Some(format!("http://127.0.0.1:9/{i}")),
            protocols: vec!["http".into()],
            subscription_required: false,
            description: Default::default(),
        };
        state.put_api(id(&format!("api{i}")), api);
    }
    state
}

fn respond_policy(status: u16) -> String {
    format!(
        r#"<policies><inbound><return-response><set-status code="{status}" /></return-response></inbound></policies>"#
    )
}

/// What `path` resolves to: the backend base path, or the status of a canned response.
fn outcome(snapshot: &Snapshot, path: &str) -> Option<String> {
    let matched = snapshot.router.find(path, &http::Method::GET, false)?;
    Some(match matched.route.as_ref() {
        Route::Forward(forward) => forward.base_path.clone(),
        Route::Respond(response) => response.respond().status().to_string(),
        Route::Broken(reason) => reason.clone(),
    })
}

fn shared(a: &Snapshot, b: &Snapshot, api: &str) -> bool {
    let find = |s: &Snapshot| s.router.apis().find(|c| c.id.as_str() == api).cloned();
    matches!((find(a), find(b)), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y))
}

#[test]
fn api_local_changes_compile_only_their_api_and_match_a_full_compilation() {
    let compiler = Compiler::new(Vec::new());
    let mut state = state(4);
    let before = compiler.compile(&state, None);

    state.put_policy(PolicyScope::Api(id("api1")), respond_policy(418));
    state.apis.remove("api2");
    let changed = [(EntityKind::Policy, "api1".to_owned()), (EntityKind::Api, "api2".to_owned())];
    let after = compiler.compile_changes(&state, &before, &changed);
    let full = compiler.compile(&state, Some(&before));
    for path in ["/api0/x", "/api1/x", "/api2/x", "/api3/x"] {
        assert_eq!(outcome(&after, path), outcome(&full, path), "{path}");
    }
    assert_eq!(outcome(&after, "/api1/x").as_deref(), Some("418 I'm a teapot"));
    assert_eq!(outcome(&after, "/api2/x"), None, "a deleted API is gone");
    assert!(shared(&before, &after, "api0") && shared(&before, &after, "api3"), "untouched APIs are shared");
    assert!(!shared(&before, &after, "api1"));

    // The global policy reaches every API: everything is compiled again.
    state.put_policy(PolicyScope::Global, respond_policy(503));
    let global = compiler.compile_changes(&state, &after, &[(EntityKind::Policy, ":".to_owned())]);
    assert_eq!(outcome(&global, "/api0/x").as_deref(), Some("503 Service Unavailable"));
    assert!(!shared(&after, &global, "api0"));
}

fn backend(url: &str) -> Backend {
    Backend {
        url: url.into(),
        title: None,
        description: None,
        resource_id: None,
        credentials: Default::default(),
        tls: certgate_model::BackendTls { validate_certificate_chain: true, validate_certificate_name: true },
    }
}

#[test]
fn a_backend_change_compiles_the_apis_that_name_it_even_when_it_was_missing() {
    let compiler = Compiler::new(Vec::new());
    let mut state = state(3);
    for (api, target) in [("api0", "b0"), ("api1", "b1"), ("api2", "missing")] {
        let text = format!(r#"<policies><inbound><set-backend-service backend-id="{target}" /></inbound></policies>"#);
        state.put_policy(PolicyScope::Api(id(api)), text);
    }
    state.put_backend(id("b0"), backend("http://127.0.0.1:9/b0"));
    state.put_backend(id("b1"), backend("http://127.0.0.1:9/b1"));
    let before = compiler.compile(&state, None);
    assert!(outcome(&before, "/api2/x").is_some_and(|o| o.contains("does not exist")));

    state.backends.get_mut("b0").expect("b0").1.url = "http://127.0.0.1:9/b0-moved".into();
    let after = compiler.compile_changes(&state, &before, &[(EntityKind::Backend, "b0".to_owned())]);
    assert_eq!(outcome(&after, "/api0/x").as_deref(), Some("/b0-moved"));
    assert!(shared(&before, &after, "api1") && shared(&before, &after, "api2"));

    state.put_backend(id("missing"), backend("http://127.0.0.1:9/found"));
    let found = compiler.compile_changes(&state, &after, &[(EntityKind::Backend, "missing".to_owned())]);
    assert_eq!(outcome(&found, "/api2/x").as_deref(), Some("/found"), "a dangling reference is a dependency too");
    assert!(shared(&after, &found, "api0") && shared(&after, &found, "api1"));
}

#[test]
fn an_incremental_compile_drops_the_pools_no_api_uses_and_retires_them_after_the_swap() {
    let compiler = Compiler::new(Vec::new());
    let mut state = state(3);
    for (api, target) in [("api0", "strict"), ("api1", "strict"), ("api2", "lax")] {
        let text = format!(r#"<policies><inbound><set-backend-service backend-id="{target}" /></inbound></policies>"#);
        state.put_policy(PolicyScope::Api(id(api)), text);
    }
    state.put_backend(id("strict"), backend("https://127.0.0.1:9/"));
    let mut lax = backend("https://127.0.0.1:9/");
    lax.tls.validate_certificate_chain = false;
    state.put_backend(id("lax"), lax);
    let before = compiler.compile(&state, None);
    assert_eq!(before.upstream_count(), 2, "one pool per set of TLS switches");

    // The lax backend becomes strict: its pool has no user left.
    state.backends.get_mut("lax").expect("lax").1.tls.validate_certificate_chain = true;
    let after = compiler.compile_changes(&state, &before, &[(EntityKind::Backend, "lax".to_owned())]);
    assert_eq!(after.upstream_count(), 1);
    let pool = after.upstreams.values().next().expect("one pool");
    assert_eq!(pool.apis, 3, "all three APIs now share the strict pool");
    let full = compiler.compile(&state, Some(&before));
    assert_eq!(full.upstreams.values().next().map(|p| p.apis), Some(3), "as a full compilation counts");
    assert_eq!(before.retire_pools_unused_by(&after), 1, "the lax pool is retired, the strict one kept");
}
