//! How a file becomes visible: written whole under a temporary name, fsynced, renamed into
//! place, and the rename made durable. Readers see the old file or the whole new one, never
//! part of it, whatever crashes when. Partition files and manifests, in every store that keeps
//! files, and load checkpoints are all published this way.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Result, io_err};

/// Prefix of files not yet published. Readers never list them; a load removes leftovers.
pub const TEMP_PREFIX: &str = ".tmp-";

/// The name a file is written under before it is complete.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!("{TEMP_PREFIX}{name}"))
}

/// True for a file name under which nothing is published yet.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// Writes `path` through a temporary sibling, then [`publish`]es it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    publish(&tmp, path)
}

/// Renames a complete, fsynced temporary file into place and makes the rename durable.
pub fn publish(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).map_err(io_err(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
