//! Encryption at rest of xregion: SSE-S3 (`x-amz-server-side-encryption: AES256`) and SSE-C
//! (keys the client sends with each request, [`CustomerKey`]).
//!
//! # Keys
//! * A region has one **master key** ([`MasterKey`], 256 bits) in a key file it creates on
//!   first start (or one the operator gives it). It never leaves the region: a replica is
//!   encrypted again by the destination region with its own master key (ELI-7).
//! * Every encrypted object version (and every multipart upload) gets its own random **data
//!   key** ([`DataKey`]), stored only wrapped by the master key
//!   ([`MasterKey::new_data_key`]: AES-256-GCM-SIV with a random nonce,
//!   [`WRAPPED_KEY_BYTES`] bytes) in the version's metadata.
//! * SSE-C: a version written with a client's key ([`CustomerKey`]) stores its data key wrapped
//!   by that key instead ([`CUSTOMER_KEY_ID`]); the region never keeps the client's key.
//! * Every blob file of a version and its inline body are sealed with a key derived from the
//!   data key and a label naming that piece ([`DataKey::segment`]: HKDF-SHA256 over the blob
//!   id, or [`INLINE_LABEL`]). No two pieces share a key, so nonces can be chunk counters.
//!
//! # Sealed format
//! The plaintext is cut into chunks of [`CHUNK_BYTES`]; each is sealed with AES-256-GCM and
//! stored as ciphertext ‖ 16-byte tag. The nonce is the chunk's index, with a flag on the last
//! chunk, so a chunk that was altered, moved, dropped or cut off fails to open instead of
//! reading as other bytes. An empty plaintext has no chunks. The sealed length depends only
//! on the plaintext length ([`sealed_len`]) and chunk *i* starts at *i* × [`SEALED_CHUNK_BYTES`],
//! so a range read opens only the chunks it covers ([`SegmentCipher::open_chunks`]).
//!
//! Why by hand: the AEAD primitives come from aws-lc-rs (already in the tree as rustls's
//! provider), but no maintained crate seals a file in independently openable chunks (the
//! `aead` crate's STREAM is sequential only); MinIO's DARE and AWS's own SSE work this way.
//!
//! # What this protects
//! Object bytes on disk (blob files and inline bodies) without the key file: a stolen disk, a
//! copied data directory or a decommissioned drive. Keep the key file elsewhere (the server's
//! `sse_master_key_file`) for that to hold. Metadata (keys, sizes, tags, user metadata) is not
//! encrypted, as on S3, where SSE covers object data only.
#![warn(missing_docs)]

mod chunks;
mod customer;
mod keys;
pub mod tls;

pub use chunks::{CHUNK_BYTES, SEALED_CHUNK_BYTES, Sealer, SegmentCipher, TAG_BYTES, chunk_count, sealed_len};
pub use customer::{CUSTOMER_ALGORITHM, CUSTOMER_KEY_ID, CustomerKey, CustomerKeyError};
pub use keys::{DataKey, FIRST_KEY_ID, INLINE_LABEL, Keyring, MasterKey, WRAPPED_KEY_BYTES, write_durably};

/// Errors of encryption at rest.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The master key file holds something other than a key.
    #[error("master key file {path}: {reason}")]
    BadKeyFile {
        /// The key file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The master key is not the one the region's data was encrypted with (its check file
    /// records another).
    #[error(
        "the SSE master key is not the one this region's encrypted objects were written with ({path} records another); restore the key file"
    )]
    WrongKey {
        /// The check file.
        path: String,
    },
    /// A wrapped data key does not open with this master key: another region's key, a
    /// replaced key file, or damaged metadata.
    #[error("the object's data key does not open with this region's master key (key id {key_id})")]
    Unwrap {
        /// The master key id the wrapped key names.
        key_id: u32,
    },
    /// A sealed chunk does not open: the bytes on disk were altered, truncated or moved.
    #[error("encrypted chunk {index} does not authenticate (altered, truncated or misplaced bytes)")]
    Open {
        /// The chunk's index within its piece.
        index: u64,
    },
    /// Sealed bytes whose length no plaintext has.
    #[error("encrypted data of {len} bytes has an impossible length")]
    Length {
        /// The length found.
        len: u64,
    },
    /// The system's random generator or the cipher failed.
    #[error("crypto failure: {0}")]
    Internal(&'static str),
}

impl From<CryptoError> for std::io::Error {
    fn from(e: CryptoError) -> Self {
        let kind = match &e {
            CryptoError::KeyFile { source, .. } => source.kind(),
            CryptoError::Internal(_) => std::io::ErrorKind::Other,
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}
