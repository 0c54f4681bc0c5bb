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

/// How many regions of a deployment generate stamps that can never be equal: every stamp a
/// clock generates is its tag modulo this ([`VersionClock::with_tag`], [`stamp_tag`]).
pub const STAMP_TAGS: u64 = 16;

/// A hybrid clock in microseconds since the epoch: never goes backwards and never repeats,
/// even if the wall clock does. `observe` moves it past stamps seen in stored data.
///
/// Every stamp it generates is its tag modulo [`STAMP_TAGS`], so clocks with different tags
/// never generate the same stamp. Regions need that: a replica keeps its source's stamp (it is
/// in the version id) and orders a key's versions by it (CON-3), so a replica whose stamp
/// equals that of another version of the key on the destination cannot be stored. Regions
/// that replicate to each other observe each other's stamps and so run their clocks in step;
/// with equal tags, two writes of one key in the same microsecond on both sides collided
/// (two-way replication, or two sources replicating into one bucket). A clock with a tag
/// takes at most one stamp in 16 µs at wall speed (62 500 a second) and runs ahead of the
/// wall clock beyond that, as it does after observing a stamp from a clock ahead of it.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: Mutex<u64>,
    tag: u64,
}

impl VersionClock {
    /// A clock starting at the wall time, with tag 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock whose stamps are all `tag` modulo [`STAMP_TAGS`] (see [`stamp_tag`]).
    pub fn with_tag(tag: u8) -> Self {
        Self { last: Mutex::new(0), tag: u64::from(tag) % STAMP_TAGS }
    }

    /// The next stamp: the least value that is at least the wall clock, greater than every
    /// stamp before (generated or observed), and equal to the tag modulo [`STAMP_TAGS`].
    pub fn next(&self) -> u64 {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let least = wall.max(last.saturating_add(1));
        let aligned = least - least % STAMP_TAGS + self.tag;
        *last = if aligned < least { aligned.saturating_add(STAMP_TAGS) } else { aligned };
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

/// The stamp tag of region `own` among all regions of its deployment (`own` and its peers):
/// its position in their sorted names, modulo [`STAMP_TAGS`]. Regions configured with the
/// same set of names get different tags, up to 16 regions.
pub fn stamp_tag<'a>(own: &'a str, peers: impl IntoIterator<Item = &'a str>) -> u8 {
    let mut names: Vec<&str> = peers.into_iter().chain([own]).collect();
    names.sort_unstable();
    names.dedup();
    let position = names.iter().position(|n| *n == own).unwrap_or(0) as u64;
    (position % STAMP_TAGS) as u8
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

    /// CON-3: two regions that replicate to each other observe each other's stamps, so their
    /// clocks run in step; with one tag each they still never generate the same stamp.
    #[test]
    fn clocks_with_different_tags_never_generate_the_same_stamp() {
        let (a, b) = (VersionClock::with_tag(0), VersionClock::with_tag(1));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let (sa, sb) = (a.next(), b.next());
            assert_eq!((sa % STAMP_TAGS, sb % STAMP_TAGS), (0, 1));
            assert!(seen.insert(sa) && seen.insert(sb), "{sa} {sb}");
            // Each stores the other's version as a replica, and so observes its stamp.
            a.observe(sb);
            b.observe(sa);
        }
        // Without tags, the same exchange makes equal stamps at once.
        let (a, b) = (VersionClock::new(), VersionClock::new());
        let far = a.next() + 1_000_000;
        a.observe(far);
        b.observe(far);
        assert_eq!(a.next(), b.next(), "untagged clocks in step collide");
    }

    proptest! {
        #[test]
        fn a_tagged_stamp_is_the_least_one_allowed(tag in 0u8..16, last in 0u64..(u64::MAX / 2)) {
            let clock = VersionClock::with_tag(tag);
            clock.observe(last);
            let stamp = clock.next();
            prop_assert_eq!(stamp % STAMP_TAGS, u64::from(tag));
            prop_assert!(stamp > last);
            prop_assert!(stamp - last <= STAMP_TAGS || last < 2_000_000_000_000_000);
        }
    }

    #[test]
    fn regions_of_a_deployment_get_distinct_tags() {
        let names = ["us-east-1", "eu-west-1", "ap-south-1"];
        let tags: Vec<u8> =
            names.iter().map(|own| stamp_tag(own, names.iter().copied().filter(|n| n != own))).collect();
        assert_eq!(tags, [2, 1, 0]);
        // Listing oneself among the peers changes nothing.
        assert_eq!(stamp_tag("us-east-1", names), 2);
        assert_eq!(stamp_tag("solo", []), 0);
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
