//! Files of secret material (master key, KEKs, the audit signing key, root
//! credentials) that appear whole or not at all, readable by their owner only.
//!
//! A crash while writing must not leave a short key file that the next start
//! trusts: the bytes are written and fsynced under a temporary name, then
//! hard-linked to the real name (atomic, and never replacing an existing
//! file), then the directory is fsynced so the name survives a power cut.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Creates `path` holding `contents`, mode 0600. Fails with `AlreadyExists`
/// if `path` exists.
pub fn create(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    // The temporary name goes either way; a crash before this leaves only a
    // stray `.tmp`, never a short file under the real name.
    let _ = std::fs::remove_file(&tmp);
    written?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn creates_once_privately_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        create(&path, b"secret").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = create(&path, b"other").unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret", "an existing key is never replaced");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left behind");
    }
}
