//! The master key and data keys.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::chunks::SegmentCipher;

/// Bytes of a key (AES-256).
pub(crate) const KEY_BYTES: usize = 32;
/// Bytes of a wrapped data key: nonce ‖ encrypted key ‖ tag.
pub const WRAPPED_KEY_BYTES: usize = NONCE_LEN + KEY_BYTES + 16;
/// The label of a version's inline body (blob files are labelled by their id).
pub const INLINE_LABEL: &[u8] = b"inline";
/// The id of a region's first master key; stored with every wrapped key, so that after a
/// rotation ([`Keyring`]) each data key opens with the master key that wrapped it.
pub const FIRST_KEY_ID: u32 = 1;
/// Domain separation of wrapped data keys (their AAD, with the master key id).
const WRAP_AAD: &[u8] = b"xregion sse data key v1";
/// Domain separation of piece keys (the HKDF salt).
const SEGMENT_SALT: &[u8] = b"xregion sse segment v1";

/// Domain separation of the key check value.
const CHECK_LABEL: &[u8] = b"xregion sse key check v1";

/// A region's master key: wraps and unwraps data keys.
pub struct MasterKey {
    id: u32,
    key: LessSafeKey,
    /// HMAC-SHA256 of [`CHECK_LABEL`] under the key: tells keys apart without revealing them.
    check: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Reads the key file at `path`, or creates it with a new random key if there is none
    /// (mode 0600, fsynced with its directory before this returns, so a key that encrypted
    /// an acknowledged write is on disk). The file holds the key as 64 hex digits.
    ///
    /// Blocking: call it at startup.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, CryptoError> {
        Self::load_or_create_with_id(path, FIRST_KEY_ID)
    }

    /// [`MasterKey::load_or_create`] for the key of id `id` (a rotated key, [`Keyring`]).
    pub fn load_or_create_with_id(path: &Path, id: u32) -> Result<MasterKey, CryptoError> {
        let shown = path.display().to_string();
        let io_err = |source: io::Error| CryptoError::KeyFile { path: shown.clone(), source };
        match fs::read_to_string(path) {
            Ok(text) => {
                return Self::from_hex_with_id(text.trim(), id)
                    .map_err(|reason| CryptoError::BadKeyFile { path: shown, reason });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| CryptoError::Internal("random generator"))?;
        let text = Zeroizing::new(format!("{}\n", hex::encode(&key[..])));
        write_durably(path, text.as_bytes()).map_err(io_err)?;
        Self::from_bytes(id, &key[..])
    }

    /// Checks this key against the check file at `path`, which records the key a region's
    /// data was encrypted with, or records it there if there is none yet (durably). Fails
    /// with [`CryptoError::WrongKey`] for another key: a replaced or regenerated key file
    /// would otherwise leave every encrypted object unreadable, and encrypt new ones under a
    /// key the old ones do not open with. Blocking: call it at startup.
    pub fn check_or_record(&self, path: &Path) -> Result<(), CryptoError> {
        let shown = path.display().to_string();
        match fs::read_to_string(path) {
            Ok(text) if text.trim() == self.check => Ok(()),
            Ok(_) => Err(CryptoError::WrongKey { path: shown }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_durably(path, format!("{}\n", self.check).as_bytes())
                    .map_err(|source| CryptoError::KeyFile { path: shown, source })
            }
            Err(source) => Err(CryptoError::KeyFile { path: shown, source }),
        }
    }

    /// A first master key from its 64 hex digits.
    pub fn from_hex(text: &str) -> Result<MasterKey, String> {
        Self::from_hex_with_id(text, FIRST_KEY_ID)
    }

    /// The master key of id `id` from its 64 hex digits.
    pub fn from_hex_with_id(text: &str, id: u32) -> Result<MasterKey, String> {
        let bytes = Zeroizing::new(hex::decode(text).map_err(|_| "expected 64 hex digits".to_owned())?);
        if bytes.len() != KEY_BYTES {
            return Err(format!("expected 64 hex digits (a 256-bit key), found {}", text.len()));
        }
        Self::from_bytes(id, &bytes).map_err(|e| e.to_string())
    }

    fn from_bytes(id: u32, bytes: &[u8]) -> Result<MasterKey, CryptoError> {
        let check = hex::encode(&hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, bytes), CHECK_LABEL).as_ref()[..16]);
        // AES-256-GCM-SIV: wrapping takes a random nonce per data key, and a region may wrap
        // billions of them over its life; with SIV a repeated nonce reveals only that two
        // wrapped keys are equal (random keys never are), where plain GCM would leak the key
        // stream and allow forgeries.
        let key = UnboundKey::new(&AES_256_GCM_SIV, bytes).map_err(|_| CryptoError::Internal("master key"))?;
        Ok(Self { id, key: LessSafeKey::new(key), check })
    }

    /// The id stored with the keys this key wraps.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// A new random data key, and its wrapped form to store (nonce ‖ ciphertext ‖ tag).
    pub fn new_data_key(&self) -> Result<(DataKey, Vec<u8>), CryptoError> {
        let key = DataKey::random()?;
        let wrapped = self.wrap(&key.0)?;
        Ok((key, wrapped))
    }

    fn wrap(&self, key: &[u8; KEY_BYTES]) -> Result<Vec<u8>, CryptoError> {
        wrap_with(&self.key, self.aad(self.id), key)
    }

    /// The data key inside `wrapped`, made by [`MasterKey::new_data_key`] with the master key
    /// `key_id`. Fails if it was wrapped by another key or the bytes were changed.
    pub fn unwrap_key(&self, key_id: u32, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        if key_id != self.id {
            return Err(CryptoError::Unwrap { key_id });
        }
        unwrap_with(&self.key, self.aad(key_id), wrapped).ok_or(CryptoError::Unwrap { key_id })
    }

    fn aad(&self, key_id: u32) -> Aad<Vec<u8>> {
        let mut aad = WRAP_AAD.to_vec();
        aad.extend_from_slice(&key_id.to_be_bytes());
        Aad::from(aad)
    }
}

/// Wraps a data key under `key` (AES-256-GCM-SIV) with a random nonce: nonce ‖ ciphertext ‖
/// tag, [`WRAPPED_KEY_BYTES`] bytes.
pub(crate) fn wrap_with(
    key: &LessSafeKey,
    aad: Aad<Vec<u8>>,
    data_key: &[u8; KEY_BYTES],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Internal("random generator"))?;
    let mut out = Vec::with_capacity(WRAPPED_KEY_BYTES);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(data_key);
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), aad, &mut out[NONCE_LEN..])
        .map_err(|_| CryptoError::Internal("seal data key"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The data key [`wrap_with`] wrapped under `key` with `aad`; `None` if another key or AAD
/// wrapped it, or the bytes were changed.
pub(crate) fn unwrap_with(key: &LessSafeKey, aad: Aad<Vec<u8>>, wrapped: &[u8]) -> Option<DataKey> {
    if wrapped.len() != WRAPPED_KEY_BYTES {
        return None;
    }
    let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    let plain = key.open_in_place(nonce, aad, &mut buf[..]).ok()?;
    let mut data_key = Zeroizing::new([0u8; KEY_BYTES]);
    data_key.copy_from_slice(plain);
    Some(DataKey(data_key))
}

/// Every master key a region has had: the newest (highest id) wraps new data keys, and each
/// stored data key opens with the key whose id it names. A rotation adds a key and never
/// removes one, as AWS KMS keeps every version of a rotated key's material: objects keep
/// their data keys, so nothing is re-encrypted and old keys stay needed.
#[derive(Debug)]
pub struct Keyring {
    /// By id; never empty.
    keys: std::collections::BTreeMap<u32, MasterKey>,
}

impl Keyring {
    /// The keys of a region. At least one; ids distinct, and so are the keys (a rotation to
    /// the same key would protect nothing while looking done).
    pub fn new(keys: impl IntoIterator<Item = MasterKey>) -> Result<Self, String> {
        let mut by_id = std::collections::BTreeMap::new();
        for key in keys {
            if by_id.values().any(|k: &MasterKey| k.check == key.check) {
                return Err(format!("master key {} is the same key as another of the region's", key.id));
            }
            let id = key.id;
            if by_id.insert(id, key).is_some() {
                return Err(format!("two master keys with id {id}"));
            }
        }
        if by_id.is_empty() {
            return Err("no master key".to_owned());
        }
        Ok(Self { keys: by_id })
    }

    /// The key that wraps new data keys (the highest id).
    pub fn current(&self) -> &MasterKey {
        // `new` refuses an empty ring.
        self.keys.values().next_back().unwrap_or_else(|| unreachable!("a keyring is never empty"))
    }

    /// The keys' ids, lowest first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// A new data key wrapped by the current master key: the key, its wrapped form and the
    /// wrapping key's id (both to store with the version).
    pub fn new_data_key(&self) -> Result<(DataKey, Vec<u8>, u32), CryptoError> {
        let current = self.current();
        let (key, wrapped) = current.new_data_key()?;
        Ok((key, wrapped, current.id))
    }

    /// The data key inside `wrapped`, with the master key `key_id` names.
    pub fn unwrap_key(&self, key_id: u32, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        match self.keys.get(&key_id) {
            Some(key) => key.unwrap_key(key_id, wrapped),
            None => Err(CryptoError::Unwrap { key_id }),
        }
    }

    /// The same data key wrapped by the current master key, and that key's id; `None` if
    /// `key_id` is the current key already. The data key itself does not change, so nothing it
    /// sealed is touched.
    pub fn rewrap(&self, key_id: u32, wrapped: &[u8]) -> Result<Option<(Vec<u8>, u32)>, CryptoError> {
        let current = self.current();
        if key_id == current.id {
            return Ok(None);
        }
        let key = self.unwrap_key(key_id, wrapped)?;
        Ok(Some((current.wrap(&key.0)?, current.id)))
    }
}

/// Writes a small file of the key directory (a key, a check or retirement record) so that a
/// crash leaves either none or the whole of it: a temp file (mode 0600) written and fsynced,
/// renamed into place, the directory fsynced.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = path.with_extension("tmp");
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    File::open(dir).and_then(|d| d.sync_all())
}

/// The key of one encrypted version (or multipart upload). Wiped from memory when dropped.
pub struct DataKey(pub(crate) Zeroizing<[u8; KEY_BYTES]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A new random key.
    pub(crate) fn random() -> Result<DataKey, CryptoError> {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| CryptoError::Internal("random generator"))?;
        Ok(DataKey(key))
    }

    /// The cipher of one piece of the version: a blob file (`label` = its id) or the inline
    /// body ([`INLINE_LABEL`]). Distinct labels give unrelated keys (HKDF-SHA256).
    pub fn segment(&self, label: &[u8]) -> Result<SegmentCipher, CryptoError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SEGMENT_SALT).extract(&self.0[..]);
        let info = [label];
        let okm = prk.expand(&info, hkdf::HKDF_SHA256).map_err(|_| CryptoError::Internal("derive piece key"))?;
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        okm.fill(&mut key[..]).map_err(|_| CryptoError::Internal("derive piece key"))?;
        SegmentCipher::new(&key[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/sse-master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (key, wrapped) = first.new_data_key().unwrap();
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), text, "an existing key file is never replaced");
        let unwrapped = again.unwrap_key(again.id(), &wrapped).unwrap();
        assert_eq!(*key.0, *unwrapped.0);
    }

    #[test]
    fn the_check_file_tells_keys_apart() {
        let dir = tempfile::tempdir().unwrap();
        let check = dir.path().join("keys/sse-master.check");
        let a = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        let b = MasterKey::from_hex(&"22".repeat(32)).unwrap();
        a.check_or_record(&check).unwrap();
        let recorded = fs::read_to_string(&check).unwrap();
        assert!(!recorded.contains(&"11".repeat(8)), "the check value does not show the key");
        a.check_or_record(&check).unwrap();
        assert!(matches!(b.check_or_record(&check), Err(CryptoError::WrongKey { .. })));
        assert_eq!(fs::read_to_string(&check).unwrap(), recorded, "a wrong key changes nothing");
    }

    #[test]
    fn a_bad_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        for bad in ["", "zz", &"ab".repeat(31)] {
            fs::File::create(&path).unwrap().write_all(bad.as_bytes()).unwrap();
            assert!(matches!(MasterKey::load_or_create(&path), Err(CryptoError::BadKeyFile { .. })), "{bad:?}");
        }
    }

    #[test]
    fn wrapped_keys_open_only_with_their_master_key_and_unchanged() {
        let a = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        let b = MasterKey::from_hex(&"22".repeat(32)).unwrap();
        let (key, wrapped) = a.new_data_key().unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_BYTES);
        assert_eq!(*a.unwrap_key(1, &wrapped).unwrap().0, *key.0);
        assert!(matches!(b.unwrap_key(1, &wrapped), Err(CryptoError::Unwrap { key_id: 1 })));
        assert!(a.unwrap_key(2, &wrapped).is_err(), "another key id");
        for i in 0..wrapped.len() {
            let mut changed = wrapped.clone();
            changed[i] ^= 1;
            assert!(a.unwrap_key(1, &changed).is_err(), "byte {i} changed");
        }
        assert!(a.unwrap_key(1, &wrapped[..WRAPPED_KEY_BYTES - 1]).is_err());
    }

    #[test]
    fn data_keys_are_random_and_pieces_get_distinct_keys() {
        let master = MasterKey::from_hex(&"33".repeat(32)).unwrap();
        let (k1, w1) = master.new_data_key().unwrap();
        let (k2, w2) = master.new_data_key().unwrap();
        assert_ne!(*k1.0, *k2.0);
        assert_ne!(w1, w2);
        let plain = b"the same bytes".to_vec();
        let a = k1.segment(b"blob-a").unwrap().seal_all(&plain).unwrap();
        let b = k1.segment(b"blob-b").unwrap().seal_all(&plain).unwrap();
        assert_ne!(a, b, "two pieces of one version never share a key stream");
        assert!(k1.segment(b"blob-b").unwrap().open_all(&a).is_err());
    }

    #[test]
    fn a_keyring_wraps_with_its_newest_key_and_opens_with_each() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(&dir.path().join("k1")).unwrap();
        let (old, old_wrapped) = first.new_data_key().unwrap();
        let second = MasterKey::load_or_create_with_id(&dir.path().join("k2"), 2).unwrap();
        let ring = Keyring::new([second, first]).unwrap();
        assert_eq!((ring.ids(), ring.current().id()), (vec![1, 2], 2));
        let (new, new_wrapped, id) = ring.new_data_key().unwrap();
        assert_eq!(id, 2);
        assert_eq!(ring.unwrap_key(1, &old_wrapped).unwrap().0[..], old.0[..]);
        assert_eq!(ring.unwrap_key(2, &new_wrapped).unwrap().0[..], new.0[..]);
        // A wrapped key names its master key: another id does not open it.
        assert!(matches!(ring.unwrap_key(2, &old_wrapped), Err(CryptoError::Unwrap { key_id: 2 })));
        assert!(matches!(ring.unwrap_key(3, &new_wrapped), Err(CryptoError::Unwrap { key_id: 3 })));
        // Re-wrapped: the same data key, now under key 2; a key-2 wrapping stays as it is.
        let (rewrapped, id) = ring.rewrap(1, &old_wrapped).unwrap().expect("re-wrapped");
        assert_eq!(id, 2);
        assert_eq!(ring.unwrap_key(2, &rewrapped).unwrap().0[..], old.0[..]);
        assert!(ring.rewrap(2, &new_wrapped).unwrap().is_none());
        assert!(ring.rewrap(1, &new_wrapped).is_err(), "bytes wrapped by another key");
    }

    #[test]
    fn a_keyring_refuses_duplicates_and_emptiness() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(&dir.path().join("k1")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("k1")).unwrap();
        let same_bytes = MasterKey::from_hex_with_id(text.trim(), 2).unwrap();
        assert!(Keyring::new([first, same_bytes]).unwrap_err().contains("same key"));
        let a = MasterKey::load_or_create(&dir.path().join("a")).unwrap();
        let b = MasterKey::load_or_create(&dir.path().join("b")).unwrap();
        assert!(Keyring::new([a, b]).unwrap_err().contains("two master keys with id 1"));
        assert!(Keyring::new([]).is_err());
    }
}
