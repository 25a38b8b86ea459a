//! Certificates held in OpenBao / HashiCorp Vault (same HTTP API).
//!
//! A [`SecretReference`] is APIM's `secretIdentifier`, pointing at a KV v2 secret or a PKI issue
//! endpoint; a [`SecretSource`] ([`VaultClient`]) reads it with one of the configured
//! [`Identity`]s and returns validated certificate material, or a [`ReadFailure`] whose code is
//! what `lastStatus` reports. [`refresh`] persists the outcome of one read.
//! [`schedule`] holds the pure timing rules of the refresher.

mod client;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod reference;
pub mod refresh;
pub mod schedule;

pub use client::{FolderEntry, ReadFailure, SecretMaterial, SecretSource, VaultClient};
pub use identity::{AuthMethod, Identity, IdentityError};
pub use reference::{ReferenceError, ReferenceKind, SecretFolder, SecretReference};
