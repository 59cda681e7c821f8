//! Secrets berth keeps only to hand on later (source-registry passwords, sent to Harbor),
//! sealed at rest with ChaCha20-Poly1305.
//!
//! The key is derived with HKDF-SHA256 from a secret variable of any length. Each seal
//! draws a fresh random nonce. A sealed value is `berth-sealed:v1:` followed by the
//! base64 of nonce ‖ ciphertext ‖ tag: the version names the format, so it can change.
//! The caller binds a sealed value to its row (`context`, authenticated but not stored),
//! so a value copied into another row does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

const PREFIX_V1: &str = "berth-sealed:v1:";
const NONCE_LEN: usize = 12;

/// Why a stored value could not be sealed or opened. Never carries the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the sealing key variable is not set")]
    NoKey,
    #[error("no randomness for a nonce: {0}")]
    Random(String),
    #[error("a sealed value is damaged or was sealed with another key")]
    Damaged,
}

/// The key sealing one kind of secret.
pub struct SealingKey(Key);

impl SealingKey {
    /// Derives the key from `secret` (any length); `purpose` keeps keys for different uses
    /// apart even under one secret.
    pub fn derive(secret: &str, purpose: &str) -> Result<SealingKey, SealError> {
        if secret.is_empty() {
            return Err(SealError::NoKey);
        }
        let mut key = Key::default();
        Hkdf::<Sha256>::new(Some(b"berth sealed secrets"), secret.as_bytes())
            .expand(purpose.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Ok(SealingKey(key))
    }

    /// `plain` sealed for storage, bound to `context`.
    pub fn seal(&self, plain: &str, context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Damaged)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX_V1}{}", B64.encode(bytes)))
    }

    /// The plain text of a stored value. A value stored before sealing existed (no prefix)
    /// is returned as it is.
    pub fn open(&self, stored: &str, context: &str) -> Result<String, SealError> {
        let Some(body) = stored.strip_prefix(PREFIX_V1) else {
            return Ok(stored.to_owned());
        };
        let bytes = B64.decode(body).map_err(|_| SealError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain).map_err(|_| SealError::Damaged)
    }
}

/// Whether `stored` is sealed (rather than plain text stored before sealing existed).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX_V1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_with_a_fresh_nonce_and_opens() {
        let key = SealingKey::derive("k", "registry passwords").unwrap();
        let a = key.seal("hunter2", "docker.io").unwrap();
        let b = key.seal("hunter2", "docker.io").unwrap();
        assert!(is_sealed(&a) && !a.contains("hunter2"));
        assert_ne!(a, b, "a fresh nonce per seal");
        assert_eq!(key.open(&a, "docker.io").unwrap(), "hunter2");
        assert_eq!(key.open(&b, "docker.io").unwrap(), "hunter2");
    }

    #[test]
    fn refuses_another_key_another_row_and_damage() {
        let key = SealingKey::derive("k", "registry passwords").unwrap();
        let sealed = key.seal("hunter2", "docker.io").unwrap();
        let other = SealingKey::derive("k2", "registry passwords").unwrap();
        assert_eq!(other.open(&sealed, "docker.io"), Err(SealError::Damaged));
        let purpose = SealingKey::derive("k", "something else").unwrap();
        assert_eq!(purpose.open(&sealed, "docker.io"), Err(SealError::Damaged));
        assert_eq!(key.open(&sealed, "quay.io"), Err(SealError::Damaged));
        let mut damaged = sealed.clone();
        damaged.pop();
        assert!(key.open(&damaged, "docker.io").is_err());
        assert_eq!(
            key.open("berth-sealed:v1:AAAA", "docker.io"),
            Err(SealError::Damaged)
        );
    }

    #[test]
    fn plain_text_from_before_sealing_still_opens_and_any_key_length_works() {
        let key = SealingKey::derive(&"x".repeat(500), "registry passwords").unwrap();
        assert_eq!(key.open("old-plain", "docker.io").unwrap(), "old-plain");
        assert!(!is_sealed("old-plain"));
        assert!(SealingKey::derive("", "registry passwords").is_err());
    }
}
