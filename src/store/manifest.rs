//! The manifest: which load a data directory holds, with which settings, and which partitions
//! are complete. Written atomically (temporary file, fsync, rename), like every partition.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Result, StoreError, io_err};
use crate::generator::{GENERATOR_VERSION, GeneratorConfig};
use crate::model::{Nanos, Symbol};

pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub generator_version: u32,
    /// The load's settings: together with the generator version they fix every trade.
    pub load: GeneratorConfig,
    /// True once every partition of the load not beyond retention is written.
    pub complete: bool,
    /// Retention in days; partitions ending before `now - retention` are removed on load.
    pub retention_days: u32,
    pub partitions: Vec<Partition>,
}

/// One month of trades (and its 1-minute candles) for a group of symbols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// `YYYY-MM`.
    pub month: String,
    pub group: u32,
    pub symbols: Vec<Symbol>,
    /// First session open and last session close of the month within the load.
    pub start: Nanos,
    pub end: Nanos,
    pub trades: u64,
    /// Paths relative to the data directory.
    pub trades_file: String,
    pub candles_file: String,
}

impl Manifest {
    pub fn new(load: GeneratorConfig, retention_days: u32) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            generator_version: GENERATOR_VERSION,
            load,
            complete: false,
            retention_days,
            partitions: Vec::new(),
        }
    }

    /// True when `other` describes the same trades: resuming into it is safe.
    pub fn same_load(&self, other: &Manifest) -> bool {
        self.format_version == other.format_version
            && self.generator_version == other.generator_version
            && self.load == other.load
    }

    pub fn describe(&self) -> String {
        let l = &self.load;
        let symbols: Vec<&str> = l.symbols.iter().map(Symbol::as_str).collect();
        format!(
            "{} trades, {}, {}..{}, seed {}, generator v{}",
            l.trades,
            symbols.join(","),
            l.start,
            l.end,
            l.seed,
            self.generator_version
        )
    }

    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Manifest { path, source })
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        write_atomically(&dir.join(MANIFEST_FILE), |f| f.write_all(&json))
    }
}

/// Writes `path` through a temporary sibling: fsync, rename, fsync of the directory. Readers
/// see the old file or the whole new one, never part of it, whatever crashes when.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    write(&mut file).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    publish(&tmp, path)
}

/// The name a file is written under before it is complete. Readers never list these.
pub fn temp_path(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".tmp-{name}"))
}

/// Renames a complete, fsynced temporary file into place and makes the rename durable.
pub fn publish(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).map_err(io_err(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
