//! The pure per-request work of the data plane, at one API and at 10 000: route matching, and
//! inbound policy evaluation (header steps, rewrite-uri, X-Forwarded-*, backend path). CI runs
//! these once as a smoke test (`cargo bench -p certgate-gateway --bench hot_path -- --test`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use certgate_gateway::bench_support::Fixture;
use certgate_model::{Api, ConfigState, EntityId, Operation, PolicyScope};
use criterion::{BatchSize, Criterion, black_box, criterion_group, criterion_main};

/// `apis` APIs `api{i}`, each with an operation `GET /orders/{id}` and a policy that sets a
/// header and rewrites the URI.
fn state(apis: usize) -> ConfigState {
    let mut state = ConfigState::default();
    for i in 0..apis {
        let id = EntityId::parse(&format!("api{i}")).unwrap();
        state.put_api(
            id.clone(),
            Api {
                display_name: format!("API {i}"),
                path: format!("api{i}"),
                service_url: Some("http://127.0.0.1:9/base".into()),
                protocols: vec!["http".into()],
                subscription_required: false,
                description: Default::default(),
            },
        );
        state.put_operation(
            EntityId::parse("get-order").unwrap(),
            Operation {
                api_id: id.clone(),
                display_name: "Get order".into(),
                method: "GET".into(),
                url_template: "/orders/{id}".into(),
                description: Default::default(),
            },
        );
        state.put_policy(
            PolicyScope::Api(id),
            format!(
                r#"<policies><inbound><base /><set-header name="x-tenant" exists-action="override"><value>t{i}</value></set-header><rewrite-uri template="/v2/orders/{{id}}" /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#
            ),
        );
    }
    state
}

fn request(path: &str) -> http::Request<()> {
    http::Request::get(path)
        .header("host", "gateway.example")
        .header("user-agent", "bench")
        .header("accept", "*/*")
        .header("x-forwarded-for", "203.0.113.9")
        .body(())
        .unwrap()
}

fn benches(c: &mut Criterion) {
    for apis in [1, 10_000] {
        let fixture = Fixture::new(&state(apis));
        let path = format!("/api{}/orders/42", apis / 2);
        assert!(fixture.matches(&path));
        assert_eq!(fixture.inbound(request(&path)).as_deref(), Some("/base/v2/orders/42"));
        c.bench_function(&format!("route match, {apis} APIs"), |b| b.iter(|| fixture.matches(black_box(&path))));
        c.bench_function(&format!("inbound policy, {apis} APIs"), |b| {
            b.iter_batched(|| request(&path), |r| fixture.inbound(r), BatchSize::SmallInput)
        });
    }
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
