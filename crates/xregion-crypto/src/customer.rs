//! SSE-C: encryption with a key the client sends with every request
//! (`x-amz-server-side-encryption-customer-*`).
//!
//! The region never stores the customer's key. A version written with one gets a random data
//! key like any encrypted version, and stores it wrapped by the customer's key (AES-256-GCM-SIV,
//! its own AAD, [`CUSTOMER_KEY_ID`] in place of a master key id). A read must bring the key
//! again: the wrapped data key opens only with it, which is also how a wrong key is told
//! apart (AWS keeps a salted HMAC of the key for that; the authenticated wrapping does the
//! same job without a second value). Everything below the data key (pieces, chunks) is the
//! same as for SSE-S3.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, UnboundKey};
use base64::Engine as _;
use md5::Digest as _;

use crate::keys::{KEY_BYTES, unwrap_with, wrap_with};
use crate::{CryptoError, DataKey};

/// The key id stored with a data key wrapped by a customer's key (master keys count from 1).
pub const CUSTOMER_KEY_ID: u32 = 0;
/// The only SSE-C algorithm S3 has.
pub const CUSTOMER_ALGORITHM: &str = "AES256";
/// Domain separation of data keys wrapped by a customer key (their AAD).
const CUSTOMER_WRAP_AAD: &[u8] = b"xregion sse-c data key v1";

/// What is wrong with a request's SSE-C headers. The texts are S3's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CustomerKeyError {
    /// The algorithm is missing (while a key or digest is there) or is not `AES256`.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
    )]
    Algorithm,
    /// No key.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."
    )]
    MissingKey,
    /// No MD5 digest of the key.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key."
    )]
    MissingMd5,
    /// The key is not base64 of 256 bits.
    #[error("The secret key was invalid for the specified algorithm.")]
    BadKey,
    /// The digest is not the key's.
    #[error("The calculated MD5 hash of the key did not match the hash that was provided.")]
    Md5Mismatch,
}

/// A customer's key, as a request sent it. Wiped from memory when dropped (the AEAD key is
/// aws-lc's, which clears it).
pub struct CustomerKey {
    key: LessSafeKey,
    /// The key as the request sent it (base64), to pass on with a read from another region.
    base64: zeroize::Zeroizing<String>,
    /// base64 of the key's MD5, as S3 echoes it (`x-amz-server-side-encryption-customer-key-MD5`).
    md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey").field("md5", &self.md5).finish_non_exhaustive()
    }
}

impl CustomerKey {
    /// The key of a request's three SSE-C headers (algorithm, base64 key, base64 MD5 of the
    /// key), `None` when it has none of them.
    pub fn from_headers(
        algorithm: Option<&str>,
        key: Option<&str>,
        key_md5: Option<&str>,
    ) -> Result<Option<CustomerKey>, CustomerKeyError> {
        if algorithm.is_none() && key.is_none() && key_md5.is_none() {
            return Ok(None);
        }
        if algorithm != Some(CUSTOMER_ALGORITHM) {
            return Err(CustomerKeyError::Algorithm);
        }
        let key = key.ok_or(CustomerKeyError::MissingKey)?;
        let key_md5 = key_md5.ok_or(CustomerKeyError::MissingMd5)?;
        let engine = base64::engine::general_purpose::STANDARD;
        let bytes = zeroize::Zeroizing::new(engine.decode(key.trim()).map_err(|_| CustomerKeyError::BadKey)?);
        if bytes.len() != KEY_BYTES {
            return Err(CustomerKeyError::BadKey);
        }
        let digest = md5::Md5::digest(&bytes[..]);
        if engine.decode(key_md5.trim()).ok().as_deref() != Some(&digest[..]) {
            return Err(CustomerKeyError::Md5Mismatch);
        }
        let unbound = UnboundKey::new(&AES_256_GCM_SIV, &bytes).map_err(|_| CustomerKeyError::BadKey)?;
        let base64 = zeroize::Zeroizing::new(engine.encode(&bytes[..]));
        Ok(Some(CustomerKey { key: LessSafeKey::new(unbound), base64, md5: engine.encode(digest) }))
    }

    /// The key in base64 (`x-amz-server-side-encryption-customer-key`): for a read of the
    /// object from another region of the deployment, over the peers' connection.
    pub fn key_base64(&self) -> &str {
        &self.base64
    }

    /// base64 of the key's MD5 (what S3 sends back in
    /// `x-amz-server-side-encryption-customer-key-MD5`).
    pub fn key_md5(&self) -> &str {
        &self.md5
    }

    /// A new random data key and its form wrapped by this key, to store with the version
    /// (under [`CUSTOMER_KEY_ID`]).
    pub fn new_data_key(&self) -> Result<(DataKey, Vec<u8>), CryptoError> {
        let key = DataKey::random()?;
        let wrapped = wrap_with(&self.key, aad(), &key.0)?;
        Ok((key, wrapped))
    }

    /// The data key inside `wrapped`; fails if another key wrapped it (the request brought
    /// the wrong key) or the bytes were changed.
    pub fn unwrap_key(&self, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        unwrap_with(&self.key, aad(), wrapped).ok_or(CryptoError::Unwrap { key_id: CUSTOMER_KEY_ID })
    }
}

fn aad() -> Aad<Vec<u8>> {
    Aad::from(CUSTOMER_WRAP_AAD.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    fn headers(key: &[u8]) -> (String, String) {
        let engine = base64::engine::general_purpose::STANDARD;
        (engine.encode(key), engine.encode(md5::Md5::digest(key)))
    }

    fn parse(alg: Option<&str>, key: Option<&str>, md5: Option<&str>) -> Result<Option<CustomerKey>, CustomerKeyError> {
        CustomerKey::from_headers(alg, key, md5)
    }

    #[test]
    fn headers_are_checked_as_s3_checks_them() {
        let (key, md5) = headers(&[7u8; 32]);
        assert!(parse(None, None, None).unwrap().is_none());
        let parsed = parse(Some("AES256"), Some(&key), Some(&md5)).unwrap().unwrap();
        assert_eq!(parsed.key_md5(), md5);
        assert!(!format!("{parsed:?}").contains(&key), "Debug never shows the key");
        use CustomerKeyError as E;
        assert_eq!(parse(Some("aws:kms"), Some(&key), Some(&md5)).unwrap_err(), E::Algorithm);
        assert_eq!(parse(None, Some(&key), Some(&md5)).unwrap_err(), E::Algorithm);
        assert_eq!(parse(Some("AES256"), None, Some(&md5)).unwrap_err(), E::MissingKey);
        assert_eq!(parse(Some("AES256"), Some(&key), None).unwrap_err(), E::MissingMd5);
        assert_eq!(parse(Some("AES256"), Some("not base64!"), Some(&md5)).unwrap_err(), E::BadKey);
        let (short, short_md5) = headers(&[7u8; 16]);
        assert_eq!(parse(Some("AES256"), Some(&short), Some(&short_md5)).unwrap_err(), E::BadKey);
        let (_, other_md5) = headers(&[8u8; 32]);
        assert_eq!(parse(Some("AES256"), Some(&key), Some(&other_md5)).unwrap_err(), E::Md5Mismatch);
    }

    #[test]
    fn a_data_key_opens_only_with_the_customer_key_that_wrapped_it() {
        let (a, a_md5) = headers(&[1u8; 32]);
        let (b, b_md5) = headers(&[2u8; 32]);
        let a = parse(Some("AES256"), Some(&a), Some(&a_md5)).unwrap().unwrap();
        let b = parse(Some("AES256"), Some(&b), Some(&b_md5)).unwrap().unwrap();
        let (key, wrapped) = a.new_data_key().unwrap();
        assert_eq!(a.unwrap_key(&wrapped).unwrap().0[..], key.0[..]);
        assert!(matches!(b.unwrap_key(&wrapped), Err(CryptoError::Unwrap { key_id: CUSTOMER_KEY_ID })));
        let mut changed = wrapped.clone();
        changed[20] ^= 1;
        assert!(a.unwrap_key(&changed).is_err());
        // A master key with the same bytes does not open it either (another AAD).
        let master = MasterKey::from_hex(&"01".repeat(32)).unwrap();
        assert!(master.unwrap_key(1, &wrapped).is_err());
        assert!(master.unwrap_key(CUSTOMER_KEY_ID, &wrapped).is_err());
    }
}
