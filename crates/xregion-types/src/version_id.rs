//! Version ids (VER-5): opaque to clients, generated only by the server.
//!
//! A generated id is 24 bytes written as 32 characters of a 64-letter alphabet whose ASCII
//! order equals its value order (`.0-9A-Z_a-z`), so ids compare like the bytes they encode:
//! `stamp (8, big-endian) ‖ random (12) ‖ check (4)`. The stamp is a hybrid clock in
//! microseconds, so within one key a newer version has a larger id; a replica keeps the
//! source's id and therefore sorts the same way on every region. The check word makes ids
//! self-validating: a mistyped id is `InvalidArgument`, not `NoSuchVersion` (VER-16).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

const ALPHABET: &[u8; 64] = b".0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
const ENCODED_LEN: usize = 32;

/// The id of one version of a key: the `null` version or a generated id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VersionId {
    /// The `null` version (written while unversioned or suspended, VER-6).
    Null,
    /// A generated id (32 characters).
    Id(String),
}

impl VersionId {
    /// Makes a new id from a clock stamp and 12 random bytes.
    pub fn generate(stamp: u64, random: [u8; 12]) -> Self {
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&stamp.to_be_bytes());
        raw[8..20].copy_from_slice(&random);
        let check = check_word(&raw[..20]).to_be_bytes();
        raw[20..].copy_from_slice(&check);
        Self::Id(encode(&raw))
    }

    /// Parses what a client sent as `versionId`. `null` is the null version.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s == "null" {
            return Ok(Self::Null);
        }
        let invalid = || InvalidInput::new("InvalidArgument", "Invalid version id specified");
        let raw = decode(s).ok_or_else(invalid)?;
        let check = u32::from_be_bytes([raw[20], raw[21], raw[22], raw[23]]);
        if check != check_word(&raw[..20]) {
            return Err(invalid());
        }
        Ok(Self::Id(s.to_owned()))
    }

    /// The clock stamp inside a generated id (`None` for the null version).
    pub fn stamp(&self) -> Option<u64> {
        match self {
            Self::Null => None,
            Self::Id(s) => decode(s).map(|raw| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&raw[..8]);
                u64::from_be_bytes(b)
            }),
        }
    }

    /// The id as S3 shows it (`null` for the null version).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Null => "null",
            Self::Id(s) => s,
        }
    }

    /// True for the null version.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// FNV-1a, 32 bits: a cheap typo check, not a security measure.
fn check_word(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn encode(raw: &[u8; 24]) -> String {
    let mut out = String::with_capacity(ENCODED_LEN);
    for chunk in raw.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
        }
    }
    out
}

fn decode(s: &str) -> Option<[u8; 24]> {
    let bytes = s.as_bytes();
    if bytes.len() != ENCODED_LEN {
        return None;
    }
    let mut raw = [0u8; 24];
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let mut n = 0u32;
        for c in chunk {
            let v = ALPHABET.iter().position(|a| a == c)?;
            n = (n << 6) | v as u32;
        }
        raw[i * 3] = (n >> 16) as u8;
        raw[i * 3 + 1] = (n >> 8) as u8;
        raw[i * 3 + 2] = n as u8;
    }
    Some(raw)
}

/// A hybrid clock in microseconds since the epoch: never goes backwards and never repeats,
/// even if the wall clock does. `observe` moves it past stamps seen in stored data.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: Mutex<u64>,
}

impl VersionClock {
    /// A clock starting at the wall time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next stamp: max(wall clock, last + 1).
    pub fn next(&self) -> u64 {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = wall.max(*last + 1);
        *last
    }

    /// Makes sure every later stamp is greater than `stamp`.
    pub fn observe(&self, stamp: u64) {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = (*last).max(stamp);
    }

    /// A fresh version id with the next stamp and random bytes.
    pub fn new_version_id(&self) -> (u64, VersionId) {
        let stamp = self.next();
        (stamp, VersionId::generate(stamp, rand::random()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_check() {
        let clock = VersionClock::new();
        let (stamp, id) = clock.new_version_id();
        let parsed = VersionId::parse(id.as_str()).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(parsed.stamp(), Some(stamp));
        assert_eq!(id.as_str().len(), 32);
        // Change the last character: the check word catches it.
        let mut s = id.as_str().to_owned();
        let last = s.pop().unwrap();
        s.push(if last == 'a' { 'b' } else { 'a' });
        assert_eq!(VersionId::parse(&s).unwrap_err().code, "InvalidArgument");
        assert_eq!(VersionId::parse("null").unwrap(), VersionId::Null);
        assert!(VersionId::parse("nope").is_err());
    }

    proptest! {
        #[test]
        fn id_order_is_stamp_order(a in any::<u64>(), b in any::<u64>(), r in any::<[u8; 12]>()) {
            let ia = VersionId::generate(a, r);
            let ib = VersionId::generate(b, r);
            prop_assert_eq!(a.cmp(&b), ia.as_str().cmp(ib.as_str()));
            prop_assert_eq!(ia.stamp(), Some(a));
        }
    }

    #[test]
    fn clock_is_monotonic() {
        let clock = VersionClock::new();
        clock.observe(u64::MAX / 2);
        let a = clock.next();
        let b = clock.next();
        assert!(a > u64::MAX / 2 && b > a);
    }
}
