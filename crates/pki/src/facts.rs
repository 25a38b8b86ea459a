use aws_lc_rs::digest;
use certgate_model::Thumbprint;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// What the management model shows about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// RFC 4514 distinguished name, most specific attribute first (`CN=a, O=b, C=c`).
    pub subject: String,
    /// The issuer's distinguished name, formatted as `subject` is.
    pub issuer: String,
    pub thumbprint: Thumbprint,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// The DER of the subjectPublicKey bit string, used to match private keys.
    pub public_key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid X.509 certificate: {0}")]
pub struct FactsError(String);

/// Parses one DER certificate and computes its facts.
pub fn certificate_facts(der: &[u8]) -> Result<CertificateFacts, FactsError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| FactsError(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FactsError(format!("{} trailing bytes after the certificate", rest.len())));
    }
    Ok(CertificateFacts {
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        thumbprint: thumbprint(der),
        not_after: cert.validity().not_after.timestamp(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// A DER-encoded X.501 name (a TLS CertificateRequest's acceptable CA), formatted as subjects
/// are; `None` when it does not parse.
pub fn distinguished_name(der: &[u8]) -> Option<String> {
    X509Name::from_der(der).ok().map(|(_, name)| rfc4514(&name))
}

/// Upper-case hex SHA-1 of the DER, the identifier APIM and Windows show.
pub fn thumbprint(der: &[u8]) -> Thumbprint {
    let digest = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    Thumbprint::from_hex(&hex::encode(digest.as_ref()))
}

/// APIM's `expirationDate` form: `yyyy-MM-ddTHH:mm:ssZ`.
const UTC_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// How close a certificate is to its notAfter, in the steps operators are warned at: 30, 7 and
/// 1 days before, and once it expired (from the first instant of its notAfter second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpiryStage {
    WithinMonth,
    WithinWeek,
    WithinDay,
    Expired,
}

impl ExpiryStage {
    /// The stage at `now`, or `None` more than 30 days before notAfter.
    pub fn at(not_after: i64, now: i64) -> Option<Self> {
        const DAY: i64 = 86_400;
        match not_after - now {
            left if left <= 0 => Some(ExpiryStage::Expired),
            left if left <= DAY => Some(ExpiryStage::WithinDay),
            left if left <= 7 * DAY => Some(ExpiryStage::WithinWeek),
            left if left <= 30 * DAY => Some(ExpiryStage::WithinMonth),
            _ => None,
        }
    }

    /// The warning for a certificate at this stage, as entities and the log state it.
    pub fn warning(self, not_after: i64) -> String {
        let on = format_utc(not_after);
        match self {
            ExpiryStage::Expired => format!("the certificate expired on {on}"),
            ExpiryStage::WithinDay => format!("the certificate expires within a day, on {on}"),
            ExpiryStage::WithinWeek => format!("the certificate expires within 7 days, on {on}"),
            ExpiryStage::WithinMonth => format!("the certificate expires within 30 days, on {on}"),
        }
    }
}

/// The expiry warning for a certificate valid until `not_after`, at `now`.
pub fn expiry_warning(not_after: i64, now: i64) -> Option<String> {
    ExpiryStage::at(not_after, now).map(|stage| stage.warning(not_after))
}

/// Formats a Unix time the way APIM shows `expirationDate`.
pub fn format_utc(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(UTC_FORMAT).ok())
        .unwrap_or_else(|| unix_seconds.to_string())
}

/// The Unix time of a [`format_utc`] text; `None` for anything else.
pub fn parse_utc(text: &str) -> Option<i64> {
    time::PrimitiveDateTime::parse(text, UTC_FORMAT).ok().map(|t| t.assume_utc().unix_timestamp())
}

/// RFC 4514: RDNs in reverse order of the encoding, multi-valued RDNs joined with `+`.
fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type();
                    let key = x509_parser::objects::oid2abbrev(oid, registry)
                        .map(|abbrev| match abbrev {
                            // RFC 4514 spells these two differently from the OID registry.
                            "emailAddress" => "E".to_owned(),
                            other => other.to_owned(),
                        })
                        .unwrap_or_else(|_| oid.to_id_string());
                    let value = match attr.as_str() {
                        Ok(text) => escape(text),
                        Err(_) => format!("#{}", hex::encode(attr.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(", ")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_round_trip_and_nothing_else_parses() {
        for t in [0, 1_798_761_600, 4_102_444_799] {
            assert_eq!(parse_utc(&format_utc(t)), Some(t));
        }
        assert_eq!(format_utc(1_798_761_600), "2027-01-01T00:00:00Z");
        for bad in ["", "2027-01-01", "2027-01-01T00:00:00", "2027-01-01T00:00:00+01:00", "2027-13-01T00:00:00Z"] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn subject_is_most_specific_first_and_escaped() {
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Contoso, Ltd");
        dn.push(rcgen::DnType::CommonName, "client.contoso.com");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let facts = certificate_facts(cert.der()).expect("facts");
        assert_eq!(facts.subject, "CN=client.contoso.com, O=Contoso\\, Ltd, C=US");
        assert_eq!(facts.thumbprint.as_str().len(), 40);
        assert!(facts.thumbprint.as_str().chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }

    #[test]
    fn expiry_is_formatted_like_apim() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(certificate_facts(b"not a certificate").is_err());
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn warnings_begin_30_days_before_not_after_and_step_at_7_and_1() {
        let (not_after, day) = (1_800_000_000, 86_400);
        assert_eq!(ExpiryStage::at(not_after, not_after - 30 * day - 1), None);
        assert_eq!(ExpiryStage::at(not_after, not_after - 30 * day), Some(ExpiryStage::WithinMonth));
        assert_eq!(ExpiryStage::at(not_after, not_after - 7 * day - 1), Some(ExpiryStage::WithinMonth));
        assert_eq!(ExpiryStage::at(not_after, not_after - 7 * day), Some(ExpiryStage::WithinWeek));
        assert_eq!(ExpiryStage::at(not_after, not_after - day), Some(ExpiryStage::WithinDay));
        assert_eq!(ExpiryStage::at(not_after, not_after - 1), Some(ExpiryStage::WithinDay));
        assert_eq!(ExpiryStage::at(not_after, not_after), Some(ExpiryStage::Expired));
        assert_eq!(
            expiry_warning(not_after, not_after - 3 * day).as_deref(),
            Some("the certificate expires within 7 days, on 2027-01-15T08:00:00Z")
        );
    }
}
