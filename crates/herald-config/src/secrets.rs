//! Encryption at rest for secrets: endpoint signing secrets, endpoint custom
//! header values and device verification material.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per value, so nonces never
//! need coordinating between replicas. The associated data binds each
//! ciphertext to the row and column it belongs to: a ciphertext copied into
//! another endpoint's row does not decrypt.

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// Leads every ciphertext so the format can change later.
const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "the master key must be {KEY_BYTES} bytes encoded as base64 (e.g. `openssl rand -base64 32`): {0}"
    )]
    InvalidMasterKey(String),
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
    #[error("a stored secret cannot be decrypted (wrong master key, or the row was tampered with)")]
    Decrypt,
}

/// The key that encrypts every secret at rest.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Parses the base64 form operators configure.
    pub fn from_base64(encoded: &str) -> Result<MasterKey, SecretsError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|error| SecretsError::InvalidMasterKey(error.to_string()))?;
        if bytes.len() != KEY_BYTES {
            return Err(SecretsError::InvalidMasterKey(format!(
                "it decodes to {} bytes",
                bytes.len()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|error| SecretsError::InvalidMasterKey(error.to_string()))?;
        Ok(MasterKey { cipher })
    }

    /// A fresh random key in its base64 form.
    pub fn generate_base64() -> Result<String, SecretsError> {
        Ok(STANDARD.encode(random_bytes::<KEY_BYTES>()?))
    }

    /// `version || nonce || ciphertext`, bound to `context`.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let nonce_bytes = random_bytes::<NONCE_BYTES>()?;
        let nonce = XNonce::from(nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Decrypt)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(FORMAT_VERSION);
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    pub fn decrypt(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let Some((&FORMAT_VERSION, rest)) = sealed.split_first() else {
            return Err(SecretsError::Decrypt);
        };
        if rest.len() < NONCE_BYTES {
            return Err(SecretsError::Decrypt);
        }
        let (nonce_bytes, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce_bytes).map_err(|_| SecretsError::Decrypt)?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Decrypt)
    }
}

/// `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretsError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| SecretsError::Random(error.to_string()))?;
    Ok(bytes)
}

/// The associated data of an endpoint's current or previous signing secret.
pub fn endpoint_secret_context(endpoint_id: &str, which: &str) -> String {
    format!("endpoint:{endpoint_id}:{which}")
}

/// The associated data of one custom header value of an endpoint: its row
/// and the header's name, so a value cannot be moved to another header.
pub fn endpoint_header_context(endpoint_id: &str, header_name: &str) -> String {
    format!("endpoint:{endpoint_id}:header:{header_name}")
}

pub fn device_verification_context(device_id: &str) -> String {
    format!("device:{device_id}:verification")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let key = key();
        let sealed = key.encrypt("endpoint:ep_1:current", b"whsec_abc").unwrap();
        assert!(!sealed.windows(9).any(|window| window == b"whsec_abc"));
        assert_eq!(
            key.decrypt("endpoint:ep_1:current", &sealed).unwrap(),
            b"whsec_abc"
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_decrypt() {
        let key = key();
        let sealed = key.encrypt("endpoint:ep_1:current", b"secret").unwrap();
        assert!(key.decrypt("endpoint:ep_2:current", &sealed).is_err());
    }

    #[test]
    fn tampering_or_another_key_is_detected() {
        let key = key();
        let mut sealed = key.encrypt("c", b"secret").unwrap();
        assert!(self::key().decrypt("c", &sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(key.decrypt("c", &sealed).is_err());
        assert!(key.decrypt("c", &[]).is_err());
        assert!(key.decrypt("c", &[1, 2, 3]).is_err());
    }

    #[test]
    fn each_encryption_uses_a_fresh_nonce() {
        let key = key();
        assert_ne!(
            key.encrypt("c", b"x").unwrap(),
            key.encrypt("c", b"x").unwrap()
        );
    }

    #[test]
    fn bad_master_keys_are_explained() {
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let error = MasterKey::from_base64(bad).unwrap_err().to_string();
            assert!(error.contains("master key must be 32 bytes"), "{error}");
        }
    }
}
