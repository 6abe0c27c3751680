//! The manifest: which load a store holds, with which settings, and which partitions are
//! complete. In a data directory it is `manifest.json`, published like every file
//! ([`super::publish`]); in InfluxDB it is a point ([`super::influx::line_protocol`]).

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Backend, Result, StoreError, io_err, publish};
use crate::generator::{GENERATOR_VERSION, GeneratorConfig};
use crate::model::{Nanos, Symbol};

/// 2: prices in units of $0.001 (decimal(18,3) in Parquet, notional in those units in
/// both stores); 1 had whole cents.
pub const FORMAT_VERSION: u32 = 2;
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub generator_version: u32,
    /// The load's settings: together with the generator version they fix every trade.
    pub load: GeneratorConfig,
    /// True once every partition of the load is written. (Manifests written before the
    /// embedded store dropped retention also carry `retention_days`, which reads ignore.)
    pub complete: bool,
    /// In a data directory: the directory, relative to it, the partition files are under;
    /// empty for the data directory itself. A load that replaces another is built in a
    /// generation directory of its own ([`super::publish::generation_dir`]) and published by
    /// the manifest naming it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root: String,
    pub partitions: Vec<Partition>,
}

/// One month of trades (and its 1-minute candles) for a group of symbols. Where its files are
/// follows from its month and group ([`super::layout::PartitionFiles`]).
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
}

impl Manifest {
    pub fn new(load: GeneratorConfig) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            generator_version: GENERATOR_VERSION,
            load,
            complete: false,
            root: String::new(),
            partitions: Vec::new(),
        }
    }

    /// True when `other` describes the same trades: resuming into it is safe.
    pub fn same_load(&self, other: &Manifest) -> bool {
        self.format_version == other.format_version
            && self.generator_version == other.generator_version
            && self.load == other.load
    }

    /// A short name of the trades this manifest describes, equal for two manifests exactly when
    /// [`Manifest::same_load`] holds (short of a 64-bit hash collision): the shards of one load
    /// share it. InfluxDB loads tag their claims with it.
    pub fn fingerprint(&self) -> String {
        #[allow(
            clippy::expect_used,
            reason = "serialising strings, numbers and dates to JSON cannot fail"
        )]
        let key = serde_json::to_string(&(self.format_version, self.generator_version, &self.load))
            .expect("a manifest is strings, numbers and dates");
        format!("{:016x}", crate::generator::seeds::fnv1a(key.as_bytes()))
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

    /// Parses a manifest read from `origin` (a path, or an InfluxDB target). Its `root` is
    /// joined to the data directory, so anything but a generation directory's name is refused:
    /// a path could lead reads, writes and deletions out of it.
    pub fn parse(json: &[u8], origin: impl Into<std::path::PathBuf>) -> Result<Manifest> {
        let path = origin.into();
        let manifest: Manifest = serde_json::from_slice(json).map_err(|source| {
            StoreError::Corrupt(Backend::Manifest {
                path: path.clone(),
                source,
            })
        })?;
        if !manifest.root.is_empty() && !publish::is_generation_dir(&manifest.root) {
            return Err(StoreError::Corrupt(Backend::Manifest {
                path,
                source: serde::de::Error::custom(format!(
                    "root {:?} is not a generation directory",
                    manifest.root
                )),
            }));
        }
        Ok(manifest)
    }

    /// The manifest as one line of JSON (InfluxDB keeps it in a string field).
    pub fn to_json(&self) -> String {
        #[allow(
            clippy::expect_used,
            reason = "serialising strings, numbers and dates to JSON cannot fail"
        )]
        let json = serde_json::to_string(self).expect("a manifest is strings, numbers and dates");
        json
    }

    /// The manifest as the file holds it: indented JSON.
    pub fn to_json_pretty(&self) -> Vec<u8> {
        #[allow(
            clippy::expect_used,
            reason = "serialising strings, numbers and dates to JSON cannot fail"
        )]
        let json =
            serde_json::to_vec_pretty(self).expect("a manifest is strings, numbers and dates");
        json
    }

    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        match fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        publish::write_atomically(&dir.join(MANIFEST_FILE), &self.to_json_pretty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_equal_exactly_for_the_same_load() {
        let load = GeneratorConfig::default();
        let a = Manifest::new(load.clone());
        // Progress and completion do not change which trades a load writes.
        let mut b = Manifest::new(load.clone());
        b.complete = true;
        assert!(a.same_load(&b));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);

        let mut others = vec![
            Manifest::new(GeneratorConfig {
                seed: load.seed + 1,
                ..load.clone()
            }),
            Manifest::new(GeneratorConfig {
                trades: load.trades + 1,
                ..load.clone()
            }),
        ];
        let mut newer = a.clone();
        newer.generator_version += 1;
        others.push(newer);
        for other in others {
            assert!(!a.same_load(&other));
            assert_ne!(a.fingerprint(), other.fingerprint());
        }
    }

    #[test]
    fn manifests_from_before_retention_was_dropped_still_read() {
        let mut old = serde_json::to_value(Manifest::new(GeneratorConfig::default())).unwrap();
        old["retention_days"] = 3650.into();
        let read = Manifest::parse(old.to_string().as_bytes(), "manifest.json").unwrap();
        assert_eq!(read, Manifest::new(GeneratorConfig::default()));
    }

    #[test]
    fn a_root_that_is_not_a_generation_directory_is_refused() {
        let mut m = serde_json::to_value(Manifest::new(GeneratorConfig::default())).unwrap();
        for root in [
            "../elsewhere",
            "/etc",
            "load-0123456789abcdef/../..",
            "load-xyz",
        ] {
            m["root"] = root.into();
            let parsed = Manifest::parse(m.to_string().as_bytes(), "manifest.json");
            assert!(matches!(parsed, Err(StoreError::Corrupt(_))), "{root}");
        }
        m["root"] = "load-0123456789abcdef".into();
        assert!(Manifest::parse(m.to_string().as_bytes(), "manifest.json").is_ok());
    }
}
