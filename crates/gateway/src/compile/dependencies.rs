//! What each compiled API depends on, and which APIs a set of changes reaches.

use std::collections::HashSet;

use certgate_model::EntityKind;

use crate::route::Dependencies;
use crate::snapshot::Snapshot;
use crate::upstream::UpstreamKey;

impl Dependencies {
    pub(super) fn reference(&mut self, kind: EntityKind, key: String) {
        self.references.push((kind, key));
    }

    pub(super) fn upstream(&mut self, key: UpstreamKey) {
        // A handful per API: a linear check (keys have no order).
        if !self.upstreams.contains(&key) {
            self.upstreams.push(key);
        }
    }

    /// Done recording: each reference once.
    pub(super) fn finish(mut self) -> Self {
        self.references.sort();
        self.references.dedup();
        self
    }
}

/// The APIs (by key) that `changed` touches, or `None` when a change reaches every API (a CA
/// certificate, the global policy).
pub(super) fn affected_apis(changed: &[(EntityKind, String)], previous: &Snapshot) -> Option<HashSet<String>> {
    let mut affected = HashSet::new();
    for (kind, key) in changed {
        match kind {
            EntityKind::Api => drop(affected.insert(key.clone())),
            // `api:op` belongs to one API; a policy's `:` is the global one.
            EntityKind::Operation => drop(affected.insert(api_part(key).to_owned())),
            EntityKind::Policy if key != ":" => drop(affected.insert(api_part(key).to_owned())),
            EntityKind::Certificate | EntityKind::Backend => {
                let users = previous.router.apis().filter(|api| {
                    let depends_on = &api.depends_on;
                    depends_on.references.iter().any(|(k, r)| k == kind && r == key)
                        || (*kind == EntityKind::Certificate && depends_on.any_certificate)
                });
                affected.extend(users.map(|api| api.id.key()));
            }
            _ => return None,
        }
    }
    Some(affected)
}

fn api_part(key: &str) -> &str {
    key.split_once(':').map_or(key, |(api, _)| api)
}
