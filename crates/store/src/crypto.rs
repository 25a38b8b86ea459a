use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use zeroize::Zeroizing;

/// The 256-bit key that seals secrets at rest. Never logged, never stored next to the data.
pub struct MasterKey(Zeroizing<[u8; 32]>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be 32 bytes, written as 64 hex digits or 44 base64 characters")]
    Malformed,
    #[error(
        "the master key does not match the one this store was created with; start with the original key \
         (--master-key-file / CERTGATE_MASTER_KEY)"
    )]
    Mismatch,
    #[error("a stored secret could not be decrypted (wrong key or tampered record {0})")]
    Undecryptable(String),
    #[error("the system random generator failed")]
    Random,
}

impl MasterKey {
    /// Parses 64 hex digits or standard base64 of 32 bytes; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim();
        let bytes = Zeroizing::new(if text.len() == 64 {
            hex::decode(text).map_err(|_| MasterKeyError::Malformed)?
        } else {
            base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| MasterKeyError::Malformed)?
        });
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// A fresh random key and its base64 text (for writing to a key file).
    pub fn generate() -> Result<(Self, Zeroizing<String>), MasterKeyError> {
        let mut key = Zeroizing::new([0u8; 32]);
        SystemRandom::new().fill(key.as_mut()).map_err(|_| MasterKeyError::Random)?;
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_ref()));
        Ok((Self(key), text))
    }

    pub(crate) fn sealer(&self) -> Sealer {
        #[allow(clippy::expect_used)] // 32 bytes is exactly AES-256's key length
        let key = RandomizedNonceKey::new(&AES_256_GCM, self.0.as_ref()).expect("a 32-byte key is a valid AES-256 key");
        Sealer(key)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// AES-256-GCM with random nonces. The record's address is bound as associated data, so a sealed
/// secret moved to another record fails to open.
pub(crate) struct Sealer(RandomizedNonceKey);

impl Sealer {
    /// `nonce || ciphertext || tag`.
    pub(crate) fn seal(&self, address: &str, plaintext: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut buffer = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(address.as_bytes()), &mut buffer)
            .map_err(|_| MasterKeyError::Random)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + buffer.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&buffer);
        Ok(sealed)
    }

    pub(crate) fn open(&self, address: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        let undecryptable = || MasterKeyError::Undecryptable(address.to_owned());
        if sealed.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = self
            .0
            .open_in_place(nonce, Aad::from(address.as_bytes()), buffer.as_mut())
            .map_err(|_| undecryptable())?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_address() {
        let (key, text) = MasterKey::generate().expect("key");
        let sealer = key.sealer();
        let sealed = sealer.seal("certificates/a", b"secret key bytes").expect("seal");
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "ciphertext must not contain the plaintext");
        assert_eq!(sealer.open("certificates/a", &sealed).expect("open").as_slice(), b"secret key bytes");
        assert!(sealer.open("certificates/b", &sealed).is_err(), "moved to another record");
        let reparsed = MasterKey::parse(&text).expect("its own text parses");
        assert_eq!(reparsed.sealer().open("certificates/a", &sealed).expect("open").as_slice(), b"secret key bytes");
        let (other, _) = MasterKey::generate().expect("key");
        assert!(other.sealer().open("certificates/a", &sealed).is_err());
    }

    #[test]
    fn parses_hex_and_rejects_wrong_lengths() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert_eq!(MasterKey::parse("abcd").unwrap_err(), MasterKeyError::Malformed);
        assert_eq!(MasterKey::parse("").unwrap_err(), MasterKeyError::Malformed);
    }
}
