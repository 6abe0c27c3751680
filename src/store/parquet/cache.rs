//! What readers keep between calls: the manifest, decoded candles per (file, symbol) at two
//! rollup levels, and, on object storage, each file's footer. Published files never change
//! while the manifest that lists them stays the same, so a new manifest (size and modification
//! time, or ETag) empties the cache.

use std::collections::HashMap;
use std::fs;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parquet::file::metadata::ParquetMetaData;

use crate::candles::Candle;
use crate::model::Symbol;
use crate::store::manifest::MANIFEST_FILE;
use crate::store::{DataDir, Manifest, Result, StoreError, io_err};

/// Decoded candles kept, at most this many in all (~256 MiB): a served 1d-candles-for-a-year
/// query then rolls up memory instead of decoding 12 files.
const CACHE_MAX_CANDLES: usize = 4_000_000;

/// How stale a manifest read from object storage may be: checking it is a request (a local
/// one is a `stat`), which would otherwise be one more round trip on every query. A new load
/// is served at most this much later.
pub const REMOTE_MANIFEST_CHECK: Duration = Duration::from_secs(1);

/// The two rollup levels the cache holds: stored UTC 1-minute candles, and UTC 1-hour candles
/// made from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Minutes,
    Hours,
}

#[derive(Debug, Default)]
pub struct Cache {
    /// The manifest, with the stamp (size and modification time, or ETag) it was read at and
    /// when that stamp was last checked.
    manifest: Mutex<Option<(String, Instant, Arc<Manifest>)>>,
    candles: Mutex<CandleCache>,
    /// Object storage: each file's size and footer, by path.
    footers: Mutex<HashMap<String, (u64, Arc<ParquetMetaData>)>>,
}

#[derive(Debug, Default)]
struct CandleCache {
    /// Candles held, over all entries.
    len: usize,
    entries: HashMap<(Level, String, Symbol), Arc<Vec<Candle>>>,
}

/// A poisoned lock only means another reader panicked mid-call; what the cache holds is
/// whole entries either way, so readers carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cache {
    /// The manifest of the dataset in `dir`, read again only when its file changed. On object
    /// storage a change is looked for at most every [`REMOTE_MANIFEST_CHECK`].
    pub fn manifest(&self, dir: &DataDir) -> Result<Arc<Manifest>> {
        if let DataDir::Remote(_) = dir
            && let Some((_, checked, m)) = lock(&self.manifest).as_ref()
            && checked.elapsed() < REMOTE_MANIFEST_CHECK
        {
            return Ok(m.clone());
        }
        let empty = || StoreError::Empty(dir.describe());
        let stamp = match dir {
            DataDir::Local(dir) => {
                let path = dir.join(MANIFEST_FILE);
                let meta = match fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(empty()),
                    Err(e) => return Err(io_err(&path)(e)),
                };
                format!(
                    "{:?} {}",
                    meta.modified().map_err(io_err(&path))?,
                    meta.len()
                )
            }
            DataDir::Remote(remote) => {
                let (size, version) = remote.head(MANIFEST_FILE)?.ok_or_else(empty)?;
                format!("{version} {size}")
            }
        };
        let mut cached = lock(&self.manifest);
        if let Some((at, checked, m)) = cached.as_mut()
            && *at == stamp
        {
            *checked = Instant::now();
            return Ok(m.clone());
        }
        let read = match dir {
            DataDir::Local(dir) => Manifest::read(dir)?,
            DataDir::Remote(remote) => remote.read_manifest()?,
        };
        let m = Arc::new(read.ok_or_else(empty)?);
        *cached = Some((stamp, Instant::now(), m.clone()));
        *lock(&self.candles) = CandleCache::default();
        lock(&self.footers).clear();
        Ok(m)
    }

    /// The size and footer of the file `key`, fetched by `fetch` on a miss.
    pub fn footer(
        &self,
        key: &str,
        fetch: impl FnOnce() -> Result<(u64, Arc<ParquetMetaData>)>,
    ) -> Result<(u64, Arc<ParquetMetaData>)> {
        if let Some(hit) = lock(&self.footers).get(key) {
            return Ok(hit.clone());
        }
        let footer = fetch()?;
        lock(&self.footers).insert(key.to_string(), footer.clone());
        Ok(footer)
    }

    /// The entry of (`level`, `file`, `symbol`), computed by `compute` on a miss. The lock is
    /// not held while computing: two racing misses compute the same candles twice.
    pub fn candles(
        &self,
        level: Level,
        file: &str,
        symbol: &Symbol,
        compute: impl FnOnce() -> Result<Vec<Candle>>,
    ) -> Result<Arc<Vec<Candle>>> {
        let key = (level, file.to_string(), symbol.clone());
        if let Some(hit) = lock(&self.candles).entries.get(&key) {
            return Ok(hit.clone());
        }
        let candles = Arc::new(compute()?);
        let mut cache = lock(&self.candles);
        if cache.len + candles.len() > CACHE_MAX_CANDLES {
            *cache = CandleCache::default();
        }
        cache.len += candles.len();
        cache.entries.insert(key, candles.clone());
        Ok(candles)
    }
}
