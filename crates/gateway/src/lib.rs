//! The data plane: accepts client connections, routes them by the configuration snapshot it is
//! handed, applies the compiled policy, and forwards to backends over connection pools keyed by
//! TLS identity. It reads no files and no environment, and never calls the store or the vault:
//! the control plane compiles a [`Snapshot`] with a [`Compiler`] and swaps it into the handle.

#[doc(hidden)]
pub mod bench_support;
mod body;
mod compile;
mod downstream;
mod failure;
mod framing;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod listener;
mod proxy;
mod request_body;
mod route;
mod sharded;
mod snapshot;
mod telemetry;
mod template;
mod trace_context;
mod upstream;

pub use body::GatewayBody;
pub use compile::{Compiler, ListenerCertificate};
pub use downstream::{serve_http, serve_https};
pub use listener::{ConnectionCap, ListenerSettings, SnapshotHandle, Timeouts, serve};
pub use snapshot::Snapshot;
pub use telemetry::{AccessLog, AccessRecord, ActivityId, RouteFields, register_metrics, set_access_log};
