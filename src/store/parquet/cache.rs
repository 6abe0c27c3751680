//! What readers keep between calls: the manifest, and decoded candles per (file, symbol) at
//! two rollup levels. Published files never change while the manifest that lists them stays
//! the same, so a new manifest (size or modification time) empties the cache.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::candles::Candle;
use crate::model::Symbol;
use crate::store::manifest::MANIFEST_FILE;
use crate::store::{Manifest, Result, StoreError, io_err};

/// Decoded candles kept, at most this many in all (~256 MiB): a served 1d-candles-for-a-year
/// query then rolls up memory instead of decoding 12 files.
const CACHE_MAX_CANDLES: usize = 4_000_000;

/// The two rollup levels the cache holds: stored UTC 1-minute candles, and UTC 1-hour candles
/// made from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Minutes,
    Hours,
}

#[derive(Debug, Default)]
pub struct Cache {
    manifest: Mutex<Option<(SystemTime, u64, Arc<Manifest>)>>,
    candles: Mutex<CandleCache>,
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
    /// The manifest of the dataset in `dir`, read again only when its file changed.
    pub fn manifest(&self, dir: &Path) -> Result<Arc<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Empty(dir.display().to_string()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let stamp = (meta.modified().map_err(io_err(&path))?, meta.len());
        let mut cached = lock(&self.manifest);
        if let Some((modified, len, m)) = cached.as_ref()
            && (*modified, *len) == stamp
        {
            return Ok(m.clone());
        }
        let m = Arc::new(
            Manifest::read(dir)?.ok_or_else(|| StoreError::Empty(dir.display().to_string()))?,
        );
        *cached = Some((stamp.0, stamp.1, m.clone()));
        *lock(&self.candles) = CandleCache::default();
        Ok(m)
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
