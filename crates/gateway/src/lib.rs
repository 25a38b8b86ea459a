//! The data plane: accepts client connections and answers them from the configuration it is
//! handed. It reads no files, no environment, and never calls the store or the vault.
//!
//! This first cut serves the HTTP listener with the routing table empty: every request is the
//! gateway's JSON 404, as APIM answers for a path that no API claims. APIs, policies and
//! forwarding arrive with the configuration snapshot.

mod listener;
mod respond;

pub use listener::serve_http;
