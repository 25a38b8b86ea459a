use std::fmt;

/// Upper-case hex SHA-1 of a certificate's DER encoding, as APIM and Windows display it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Thumbprint(String);

impl Thumbprint {
    /// Wraps an already computed digest; `hex` is normalised to upper case.
    pub fn from_hex(hex: &str) -> Self {
        Self(hex.to_ascii_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client certificate the gateway can present to backends: the public part and where it came
/// from. The private key is held by the store as an encrypted secret next to this record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// RFC 4514 distinguished name of the leaf, most specific attribute first.
    pub subject: String,
    pub thumbprint: Thumbprint,
    /// Leaf `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// DER of the leaf followed by the intermediates, in the order sent in the handshake.
    #[serde(with = "der_chain")]
    pub chain: Vec<Vec<u8>>,
    pub source: CertificateSource,
}

/// Where a certificate's material comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CertificateSource {
    /// Uploaded as a PKCS#12 file; it changes only when uploaded again.
    Upload,
    /// Read from OpenBao / Vault; version-less references are re-read on a schedule.
    #[serde(rename_all = "camelCase")]
    KeyVault {
        secret_identifier: String,
        /// The identity that reads it; `None` = the system identity.
        identity_client_id: Option<String>,
        /// The KV version of the material in use.
        version: Option<u64>,
        last_status: LastStatus,
    },
}

impl CertificateSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            CertificateSource::Upload => "Custom",
            CertificateSource::KeyVault { .. } => "KeyVault",
        }
    }

    pub fn is_vault(&self) -> bool {
        matches!(self, CertificateSource::KeyVault { .. })
    }
}

/// The outcome of the last read of a vault reference, as APIM's `lastStatus` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastStatus {
    pub code: LastStatusCode,
    pub message: String,
    /// Unix seconds.
    pub time: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LastStatusCode {
    Success,
    Forbidden,
    VaultUnreachable,
    SecretNotFound,
    InvalidSecret,
}

impl LastStatusCode {
    /// As serialized (`VaultUnreachable`), for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LastStatusCode::Success => "Success",
            LastStatusCode::Forbidden => "Forbidden",
            LastStatusCode::VaultUnreachable => "VaultUnreachable",
            LastStatusCode::SecretNotFound => "SecretNotFound",
            LastStatusCode::InvalidSecret => "InvalidSecret",
        }
    }
}

/// Which trust store a CA certificate extends, as in APIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CaStoreName {
    /// A trust anchor for validating backends.
    Root,
    /// An intermediate that helps build chains to a root.
    CertificateAuthority,
}

impl CaStoreName {
    pub fn as_str(self) -> &'static str {
        match self {
            CaStoreName::Root => "Root",
            CaStoreName::CertificateAuthority => "CertificateAuthority",
        }
    }
}

/// A public CA certificate used when validating backends.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaCertificate {
    pub subject: String,
    pub thumbprint: Thumbprint,
    pub not_after: i64,
    pub store_name: CaStoreName,
    #[serde(with = "der")]
    pub der: Vec<u8>,
}

/// DER blobs are stored as hex inside JSON records: compact enough and trivially inspectable.
mod der {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

mod der_chain {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(chain: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(chain.len()))?;
        for der in chain {
            seq.serialize_element(&hex::encode(der))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|t| hex::decode(t).map_err(serde::de::Error::custom)).collect()
    }
}
