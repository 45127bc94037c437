//! Files that appear whole or not at all (key files, root credentials, audit
//! hash segments): written and synced under a temporary name, then put in place.
//!
//! A crash while writing must not leave a short file that the next start
//! trusts: the bytes are written and fsynced under a temporary name beside
//! the real one, then hard-linked (never replacing an existing file) or
//! renamed (replacing it) to the real name, atomic either way, then the
//! directory is fsynced so the name survives a power cut. A crash before the
//! link or rename leaves only a stray `.tmp`, never a short file.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::flush::{parent_dir, sync_dir, sync_file};

/// Creates `path` holding `contents`, mode 0600 (secret material readable by
/// its owner only). Fails with `AlreadyExists` if `path` exists.
pub fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, contents, 0o600)?;
    let linked = std::fs::hard_link(&tmp, path);
    // The temporary name goes either way.
    let _ = std::fs::remove_file(&tmp);
    linked?;
    sync_dir(parent_dir(path))
}

/// Replaces `path` (or creates it) with `contents`: a reader sees the old
/// file or the new one, whole.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, contents, 0o666)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent_dir(path))
}

/// Writes and fsyncs `contents` under a fresh temporary name beside `path`;
/// on failure nothing is left behind.
fn write_temp(path: &Path, contents: &[u8], mode: u32) -> io::Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent_dir(path).join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(contents)?;
        sync_file(&file)
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn creates_once_privately_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        create_private(&path, b"secret").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = create_private(&path, b"other").unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret", "an existing key is never replaced");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left behind");
    }

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.hashes");
        replace(&path, b"first").unwrap();
        replace(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left behind");
    }
}
