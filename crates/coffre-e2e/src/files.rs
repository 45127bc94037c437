//! What a server or a node left on its disk, read as files: every file under a
//! directory, and the blob files of a data directory.

use std::path::{Path, PathBuf};

/// Every file under `dir`, at any depth, sorted; none if `dir` is missing.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The blob files of the server or node on `data_dir` (`DATA_DIR/blobs`,
/// one folder per first byte of the blob id): every file there counts, so
/// a leftover of a cut write is seen too.
pub fn blob_files(data_dir: &Path) -> Vec<PathBuf> {
    files_under(&data_dir.join("blobs"))
}
