//! Which chunks are written: a chunk is acknowledged once every batch holding its lines is,
//! and the checkpoint lists acknowledged chunks, keyed by the target, the load's settings and
//! the shard, so `--resume` never mixes two loads.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::super::{IngestError, Result, Shard};
use crate::generator::{GENERATOR_VERSION, GeneratorConfig};
use crate::store::publish;

/// A poisoned lock means a producer panicked; the counts it left are whole, and the load
/// fails on that panic anyway.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct ChunkState {
    /// Batches holding some of the chunk's lines, not yet acknowledged.
    pending: u32,
    /// All of the chunk's lines are in batches.
    produced: bool,
}

/// Tracks when chunks are fully acknowledged.
#[derive(Default)]
pub(super) struct Tracker {
    chunks: Mutex<HashMap<u32, ChunkState>>,
    done: Mutex<BTreeSet<u32>>,
}

impl Tracker {
    pub fn batch_created(&self, chunk: u32) {
        lock(&self.chunks).entry(chunk).or_default().pending += 1;
    }

    fn settle(&self, chunk: u32, map: &mut HashMap<u32, ChunkState>) {
        if map
            .get(&chunk)
            .is_some_and(|s| s.produced && s.pending == 0)
        {
            map.remove(&chunk);
            lock(&self.done).insert(chunk);
        }
    }

    pub fn chunk_produced(&self, chunk: u32) {
        let mut map = lock(&self.chunks);
        map.entry(chunk).or_default().produced = true;
        self.settle(chunk, &mut map);
    }

    pub fn batch_acknowledged(&self, chunks: &[u32]) {
        let mut map = lock(&self.chunks);
        for c in chunks {
            if let Some(s) = map.get_mut(c) {
                s.pending -= 1;
            }
            self.settle(*c, &mut map);
        }
    }

    /// Chunks acknowledged so far.
    pub fn done(&self) -> BTreeSet<u32> {
        lock(&self.done).clone()
    }
}

/// The checkpoint file: which chunks of a load are acknowledged by a target.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    target: String,
    generator_version: u32,
    load: GeneratorConfig,
    shard: Shard,
    done: BTreeSet<u32>,
}

pub(super) struct Checkpoint {
    path: PathBuf,
    file: CheckpointFile,
}

impl Checkpoint {
    /// The checkpoint of (`target`, `load`, `shard`) in `dir`: what an earlier run recorded if
    /// `resume`, else empty.
    pub fn open(
        dir: &Path,
        target: String,
        load: &GeneratorConfig,
        shard: Shard,
        resume: bool,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| IngestError::Checkpoint(crate::store::StoreError::io(dir, e)))?;
        #[allow(
            clippy::expect_used,
            reason = "serialising strings, numbers and dates to JSON cannot fail"
        )]
        let key = serde_json::to_string(&(&target, GENERATOR_VERSION, load, shard))
            .expect("strings and numbers serialise");
        let hash = crate::generator::seeds::fnv1a(key.as_bytes());
        let path = dir.join(format!("influx-checkpoint-{hash:016x}.json"));
        let mut file = CheckpointFile {
            target,
            generator_version: GENERATOR_VERSION,
            load: load.clone(),
            shard,
            done: BTreeSet::new(),
        };
        // An unreadable checkpoint only costs rewriting its chunks, which is safe.
        if resume
            && let Ok(bytes) = std::fs::read(&path)
            && let Ok(previous) = serde_json::from_slice::<CheckpointFile>(&bytes)
        {
            file.done = previous.done;
        }
        Ok(Self { path, file })
    }

    pub fn is_done(&self, chunk: u32) -> bool {
        self.file.done.contains(&chunk)
    }

    /// Adds `done` and writes the checkpoint atomically.
    pub fn save(&mut self, done: BTreeSet<u32>) -> Result<()> {
        self.file.done.extend(done);
        #[allow(
            clippy::expect_used,
            reason = "serialising strings, numbers and dates to JSON cannot fail"
        )]
        let json = serde_json::to_vec(&self.file).expect("strings and numbers serialise");
        publish::write_atomically(&self.path, &json).map_err(IngestError::Checkpoint)
    }
}
