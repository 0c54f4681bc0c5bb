//! Where blob files live: ids, paths, fan-out directories, temp files, directory fsyncs.
//!
//! ```text
//! <dir>/tmp/<id>.tmp     a blob being written (swept at open)
//! <dir>/<id[0..2]>/<id>  a finished blob; 256 fan-out directories created on first use
//! ```
//! An id is 32 lowercase hex characters (128 random bits). Ids come from [`new_id`] only, never
//! from object keys, and ids read back from metadata are checked by [`check_id`] before they
//! become paths.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::BlobError;
use crate::error::io_error;
use crate::recent::RecentBlobs;

/// Length of a blob id in characters.
pub(crate) const ID_LEN: usize = 32;
/// Name of the directory holding blobs being written.
const TMP_DIR: &str = "tmp";
/// Suffix of temp files.
const TMP_SUFFIX: &str = ".tmp";
/// Number of fan-out directories (the first two hex characters of the id).
const FANOUT: usize = 256;

/// Paths and directory state of one blob directory.
#[derive(Debug)]
pub(crate) struct Layout {
    root: PathBuf,
    tmp: PathBuf,
    /// Fan-out directories known to exist durably (created or seen, and the root fsynced since).
    known_dirs: [AtomicBool; FANOUT],
    /// Bytes of blobs just written, for the read that follows (see [`crate::recent`]). Here
    /// because writers and readers share the layout.
    pub(crate) recent: RecentBlobs,
}

impl Layout {
    /// Creates `root` and its temp directory if needed, removes leftover temp files and makes
    /// the directories durable.
    pub(crate) fn open(root: &Path) -> Result<Self, BlobError> {
        fs::create_dir_all(root).map_err(|e| io_error(format!("create blob dir {}", root.display()), e))?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let tmp = root.join(TMP_DIR);
        match fs::create_dir(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(format!("create temp dir {}", tmp.display()), e)),
        }
        sync_dir(root)?;
        let layout = Self {
            root: root.to_path_buf(),
            tmp,
            known_dirs: std::array::from_fn(|_| AtomicBool::new(false)),
            recent: RecentBlobs::default(),
        };
        layout.sweep_temp_files()?;
        Ok(layout)
    }

    /// The blob directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Every finished blob, as `(id, length)`. Walks the fan-out directories; entries that
    /// are not blob files are skipped.
    pub(crate) fn list_all(&self) -> Result<Vec<(String, u64)>, BlobError> {
        let read = |dir: &Path| fs::read_dir(dir).map_err(|e| io_error(format!("list {}", dir.display()), e));
        let mut out = Vec::new();
        for fanout in read(&self.root)? {
            let fanout = fanout.map_err(|e| io_error(format!("list {}", self.root.display()), e))?;
            let name = fanout.file_name();
            let Some(prefix) = name.to_str().filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            else {
                continue;
            };
            if !fanout.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for entry in read(&fanout.path())? {
                let Ok(entry) = entry else { continue };
                let name = entry.file_name();
                let Some(id) = name.to_str().filter(|id| check_id(id).is_ok() && id.starts_with(prefix)) else {
                    continue;
                };
                // A file deleted meanwhile is simply not listed.
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() {
                    out.push((id.to_owned(), meta.len()));
                }
            }
        }
        Ok(out)
    }

    /// Path of the temp file of a blob being written.
    pub(crate) fn temp_path(&self, id: &str) -> PathBuf {
        self.tmp.join(format!("{id}{TMP_SUFFIX}"))
    }

    /// Path of a finished blob. `id` must have passed [`check_id`].
    pub(crate) fn blob_path(&self, id: &str) -> PathBuf {
        let (dir, _) = id.split_at(2);
        self.root.join(dir).join(id)
    }

    /// The fan-out directory of a blob. `id` must have passed [`check_id`].
    pub(crate) fn fanout_dir(&self, id: &str) -> PathBuf {
        let (dir, _) = id.split_at(2);
        self.root.join(dir)
    }

    /// Makes sure the fan-out directory of `id` exists durably: created on first use, then the
    /// blob root is fsynced so the new directory entry survives a crash.
    pub(crate) fn ensure_fanout_dir(&self, id: &str) -> Result<(), BlobError> {
        let index = fanout_index(id)?;
        let known = &self.known_dirs[index];
        if known.load(Ordering::Acquire) {
            return Ok(());
        }
        let dir = self.fanout_dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            // Another writer may have created it and not fsynced the root yet: fsync anyway.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(format!("create blob dir {}", dir.display()), e)),
        }
        sync_dir(&self.root)?;
        known.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes every file in the temp directory: blobs whose writer never finished.
    fn sweep_temp_files(&self) -> Result<(), BlobError> {
        let entries = fs::read_dir(&self.tmp).map_err(|e| io_error(format!("list {}", self.tmp.display()), e))?;
        let mut removed = 0u64;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(format!("list {}", self.tmp.display()), e))?;
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                // Not ours (we only create files here): leave it, but say so.
                tracing::warn!(path = %path.display(), "unexpected directory in the blob temp dir");
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(format!("remove temp file {}", path.display()), e)),
            }
        }
        if removed > 0 {
            tracing::info!(dir = %self.tmp.display(), removed, "removed unfinished blob writes");
        }
        Ok(())
    }
}

/// A fresh random blob id.
pub(crate) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Checks that `id` is something [`new_id`] could have made, so it is safe as a file name.
pub(crate) fn check_id(id: &str) -> Result<&str, BlobError> {
    let valid = id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if valid { Ok(id) } else { Err(BlobError::Corrupt(format!("invalid blob id {id:?}"))) }
}

/// Index of the fan-out directory of a checked id.
fn fanout_index(id: &str) -> Result<usize, BlobError> {
    let (dir, _) = check_id(id)?.split_at(2);
    usize::from_str_radix(dir, 16).map_err(|_| BlobError::Corrupt(format!("invalid blob id {id:?}")))
}

/// fsyncs a directory so that entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(format!("fsync dir {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex_and_pass_the_check() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), ID_LEN);
        assert!(check_id(&a).is_ok());
    }

    #[test]
    fn check_rejects_anything_that_could_escape() {
        for bad in [
            "",
            "../../etc/passwd",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef/123456789abcdef",
            "0123456789abcdef0123456789abcdeé",
        ] {
            assert!(matches!(check_id(bad), Err(BlobError::Corrupt(_))), "{bad:?}");
        }
    }

    #[test]
    fn paths_fan_out_by_first_two_chars() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let id = "ab23456789abcdef0123456789abcdef";
        assert_eq!(layout.blob_path(id), dir.path().join("ab").join(id));
        assert_eq!(layout.temp_path(id), dir.path().join("tmp").join(format!("{id}.tmp")));
        assert_eq!(fanout_index(id).unwrap(), 0xab);
        layout.ensure_fanout_dir(id).unwrap();
        assert!(dir.path().join("ab").is_dir());
        layout.ensure_fanout_dir(id).unwrap();
    }
}
