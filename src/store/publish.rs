//! How a dataset is published, and by whom.
//!
//! A file becomes visible by being written whole under a temporary name, fsynced, renamed into
//! place, and the rename made durable. Readers see the old file or the whole new one, never
//! part of it, whatever crashes when. Partition files and manifests, in every store that keeps
//! files, and load checkpoints are all published this way.
//!
//! Only one load may write into a data directory at a time: a load holds the directory's
//! [`DirLock`] from before it reads what the directory holds until it returns. The shards of
//! one load (`--shard K/N`) hold it together ([`DirLock::join`]) and publish their manifest
//! changes one at a time under the directory's [`CommitLock`], each merging its partitions
//! into the manifest it finds. Readers take no lock; publishing is what keeps them safe.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError, io_err};

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

/// Prefix of the generation directories of a data directory.
pub const GENERATION_PREFIX: &str = "load-";

/// The generation directory, relative to the data directory, a load that replaces another is
/// written in: named by the load's fingerprint, so the same replace interrupted and run again
/// finds what it published there.
///
/// Replacing a dataset follows from publishing files: the new load's files are published in
/// its generation directory while the manifest keeps naming the old load; the manifest naming
/// the new one ([`super::Manifest::root`]) is then published like any file, and that rename
/// is the swap. Readers see the old load, complete, or the new one, complete, never a mix.
/// Only then is the old load's directory removed; a generation directory no manifest names is
/// the leftover of an interrupted replace, removed by the next load unless that load is the
/// same replace resuming.
pub fn generation_dir(fingerprint: &str) -> String {
    format!("{GENERATION_PREFIX}{fingerprint}")
}

/// Whether `name` is what [`generation_dir`] makes: the prefix and 16 hex digits.
pub fn is_generation_dir(name: &str) -> bool {
    name.strip_prefix(GENERATION_PREFIX)
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes every generation directory in `dir` but those named in `keep`; returns how many.
pub fn remove_generations_except(dir: &Path, keep: &[&str]) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(GENERATION_PREFIX) && !keep.contains(&name) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates `dir` and its missing ancestors, and makes their entries durable, as a rename is
/// made durable: the parent of every directory from `dir` up to `within` (a data directory or
/// a generation of one) is fsynced, whoever created it, so a manifest committed later never
/// names a file whose directory a crash could lose, even when another writer created that
/// directory a moment before and has yet to fsync it.
pub fn create_dirs(dir: &Path, within: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut current = dir;
    loop {
        let parent = current
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
        if current == within || !current.starts_with(within) {
            return Ok(());
        }
        current = parent;
    }
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

/// The lock file of a data directory, as InfluxDB and RocksDB name theirs.
pub const LOCK_FILE: &str = "LOCK";

/// How many times, a millisecond apart, a refused writer reads the lock file for the holder's
/// name before giving up on it.
const HOLDER_READS: u32 = 50;

/// The process holding a [`DirLock`], as it wrote itself into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// The program and its subcommand, e.g. `ohlcv load`; never the other arguments, which
    /// may hold credentials.
    pub command: String,
    /// When it took the lock.
    pub since: DateTime<Utc>,
    /// A shard's load fingerprint ([`super::Manifest::fingerprint`]): the shards of that load
    /// may join the lock; nobody else may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}) started {}",
            self.pid,
            self.command,
            self.since.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// The exclusive right to write a data directory, held until dropped.
///
/// Contract:
/// - At most one `DirLock` on a directory exists at a time, across processes and within one:
///   it is an advisory lock (`flock(2)` on Unix, through [`fs::File::try_lock`]) on the file
///   [`LOCK_FILE`] in the directory, and such locks belong to an open file description, so
///   even a second [`DirLock::acquire`] in the same process is refused.
/// - Acquiring never waits for the lock: a directory already locked is [`StoreError::Locked`]
///   at once, naming the [`Holder`], which the holder writes into the lock file right after
///   locking it (a writer refused in that instant waits at most some 50 ms for the name).
/// - The lock is released when the guard is dropped or the process ends in any way, SIGKILL
///   included (the kernel drops it with the last descriptor): a dead writer leaves no stale
///   lock, at most a lock file naming it, which nobody trusts without holding the lock.
/// - The lock file is never deleted, by this type or by a store's housekeeping: a second
///   writer could otherwise lock a new file of that name while the first still holds the
///   old one. Readers and directory walkers ignore it.
/// - It guards writers against each other only. Readers take no lock: they read what the
///   manifest lists, which [`publish`] makes visible whole.
/// - It is as good as `flock(2)` on the directory's file system: reliable on local ones,
///   dependent on the server's lock support on network ones.
#[derive(Debug)]
#[must_use = "the directory is unlocked as soon as the guard is dropped"]
pub struct DirLock {
    file: fs::File,
    /// Held with other shards of the same load: releasing it leaves the holder's name to them.
    shared: bool,
}

impl DirLock {
    /// Locks `dir` (created if missing) for the calling process, which `command` names (the
    /// program and subcommand only), or says who holds it.
    pub fn acquire(dir: &Path, command: &str) -> Result<DirLock> {
        let (file, path) = Self::open(dir)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Self::locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        let lock = DirLock {
            file,
            shared: false,
        };
        lock.name_self(&path, command, None)?;
        Ok(lock)
    }

    /// Locks `dir` for one shard of the load `fingerprint`, shared with the other shards of
    /// that load; returns the lock and whether no other writer held it (so the shard may do
    /// the housekeeping that only a lone writer can, such as removing temporary files).
    ///
    /// The same contract as [`DirLock::acquire`], with one difference: a lock held by shards of
    /// the same load is joined instead of refused. Anything else holding it, a load of the
    /// whole dataset or shards of another load, refuses at once. Joining happens under
    /// `commit`, so that the shards' holder record names a shard of the load that holds the
    /// lock. Two processes given the same shard both join: they write the same files.
    pub fn join(
        dir: &Path,
        command: &str,
        fingerprint: &str,
        _commit: &CommitLock,
    ) -> Result<(DirLock, bool)> {
        let (file, path) = Self::open(dir)?;
        let alone = match file.try_lock() {
            // Nobody writes: become the first shard. Turning the exclusive lock into a shared
            // one is not atomic, so a whole-dataset load can win the instant in between.
            Ok(()) => match file.try_lock_shared() {
                Ok(()) => true,
                Err(fs::TryLockError::WouldBlock) => return Err(Self::locked(dir)),
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
            },
            Err(fs::TryLockError::WouldBlock) => {
                let joins = Self::holder(dir).and_then(|h| h.load).as_deref() == Some(fingerprint);
                if !joins {
                    return Err(Self::locked(dir));
                }
                match file.try_lock_shared() {
                    Ok(()) => false,
                    Err(fs::TryLockError::WouldBlock) => return Err(Self::locked(dir)),
                    Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
                }
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        };
        let lock = DirLock { file, shared: true };
        lock.name_self(&path, command, Some(fingerprint.to_string()))?;
        Ok((lock, alone))
    }

    /// Opens (creating it and `dir` if missing) the lock file, never truncating it: until we
    /// hold the lock, the contents are the holder's.
    fn open(dir: &Path) -> Result<(fs::File, PathBuf)> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((file, path))
    }

    fn locked(dir: &Path) -> StoreError {
        StoreError::Locked {
            target: dir.display().to_string(),
            holder: Self::name_holder(dir),
        }
    }

    /// Writes the calling process into the lock file it holds.
    fn name_self(&self, path: &Path, command: &str, load: Option<String>) -> Result<()> {
        let holder = Holder {
            pid: std::process::id(),
            command: command.to_string(),
            since: Utc::now(),
            load,
        };
        #[allow(
            clippy::expect_used,
            reason = "serialising numbers and strings to JSON cannot fail"
        )]
        let json = serde_json::to_vec(&holder).expect("a holder is numbers and strings");
        // One write of a few dozen bytes into an empty file: a refused writer reading it
        // concurrently sees nothing or the whole line. Not fsynced: it only matters while
        // this process lives. Shards rewrite it under the commit lock, one at a time.
        self.file
            .set_len(0)
            .and_then(|()| (&self.file).write_all(&json))
            .map_err(io_err(path))
    }

    /// The holder of `dir`'s lock, as the refused writer's message names it. The holder writes
    /// its name right after locking, so a writer started in the same instant can find the file
    /// still empty: it reads again for a few milliseconds (nothing signals the write) before
    /// saying the holder is unknown.
    fn name_holder(dir: &Path) -> String {
        for _ in 0..HOLDER_READS {
            if let Some(holder) = Self::holder(dir) {
                return holder.to_string();
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        "a process that has not written its pid yet".to_string()
    }

    /// The holder recorded in `dir`'s lock file, if it names one. Meaningful only while the
    /// directory is locked: the file of a writer that was killed still names it.
    pub fn holder(dir: &Path) -> Option<Holder> {
        let bytes = fs::read(dir.join(LOCK_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Forget the holder before closing the file releases the lock, so that after a clean
        // exit the file names nobody. Failing to is harmless: nobody trusts the name unlocked.
        // A shard leaves it: other shards of its load may still hold the lock and be named.
        if !self.shared {
            let _ = self.file.set_len(0);
        }
    }
}

/// The file shards lock, one at a time, to change a data directory's manifest.
pub const COMMIT_LOCK_FILE: &str = "LOCK-commit";

/// The right to change a data directory's manifest, held for the moment of one commit (read,
/// merge, publish) and released when dropped.
///
/// Unlike [`DirLock`] it waits: every holder keeps it for a few file operations. Like it, it is
/// an advisory `flock(2)` released by the kernel if the holder dies, and its file is never
/// deleted.
#[derive(Debug)]
#[must_use = "the manifest is unlocked as soon as the guard is dropped"]
pub struct CommitLock {
    _file: fs::File,
}

impl CommitLock {
    pub fn acquire(dir: &Path) -> Result<CommitLock> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(COMMIT_LOCK_FILE);
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(CommitLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_created_with_their_missing_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let generation = dir.path().join("load-x");
        let deep = generation.join("trades/month=2024-01");
        create_dirs(&deep, &generation).unwrap();
        assert!(deep.is_dir());
        create_dirs(&deep, &generation).unwrap();
        let blocked = dir.path().join("file");
        fs::write(&blocked, b"").unwrap();
        let err = create_dirs(&blocked.join("sub"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("file"), "{err}");
    }

    #[test]
    fn a_second_lock_is_refused_at_once_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DirLock::acquire(&data, "ohlcv load").unwrap();
        let holder = DirLock::holder(&data).unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.command, "ohlcv load");
        assert!((Utc::now() - holder.since).num_seconds() < 60, "{holder:?}");

        // Same process, its own open of the file: flock still refuses it.
        let err = DirLock::acquire(&data, "ohlcv serve").unwrap_err();
        let StoreError::Locked {
            target,
            holder: named,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(target, &data.display().to_string());
        assert_eq!(named, &holder.to_string());
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {} (ohlcv load) started ", std::process::id())),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
        // The refused writer left the holder's record alone.
        assert_eq!(DirLock::holder(&data), Some(holder));

        drop(first);
        assert_eq!(DirLock::holder(&data), None, "a released lock names nobody");
        assert!(data.join(LOCK_FILE).is_file(), "the lock file stays");
        let second = DirLock::acquire(&data, "ohlcv serve").unwrap();
        assert_eq!(DirLock::holder(&data).unwrap().command, "ohlcv serve");
        drop(second);
    }

    #[test]
    fn a_holder_that_has_not_named_itself_is_reported_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path(), "ohlcv load").unwrap();
        // As in the instant between the holder's flock and its write.
        fs::File::options()
            .write(true)
            .open(dir.path().join(LOCK_FILE))
            .unwrap()
            .set_len(0)
            .unwrap();
        let err = DirLock::acquire(dir.path(), "ohlcv load").unwrap_err();
        assert!(
            err.to_string()
                .contains(": a process that has not written its pid yet;"),
            "{err}"
        );
        drop(lock);
    }

    #[test]
    fn a_lock_file_left_naming_a_dead_process_does_not_lock() {
        let dir = tempfile::tempdir().unwrap();
        let stale = Holder {
            pid: u32::MAX,
            command: "ohlcv load".into(),
            since: Utc::now(),
            load: None,
        };
        fs::write(
            dir.path().join(LOCK_FILE),
            serde_json::to_vec(&stale).unwrap(),
        )
        .unwrap();
        let lock = DirLock::acquire(dir.path(), "ohlcv load").unwrap();
        assert_eq!(DirLock::holder(dir.path()).unwrap().pid, std::process::id());
        drop(lock);
    }

    #[test]
    fn shards_of_one_load_join_the_lock_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let join = |load: &str| {
            let commit = CommitLock::acquire(dir.path()).unwrap();
            DirLock::join(dir.path(), "ohlcv load", load, &commit)
        };
        let (first, alone) = join("aaaa").unwrap();
        assert!(alone);
        assert_eq!(
            DirLock::holder(dir.path()).unwrap().load.as_deref(),
            Some("aaaa")
        );
        let (second, alone) = join("aaaa").unwrap();
        assert!(!alone);
        assert!(matches!(join("bbbb"), Err(StoreError::Locked { .. })));
        assert!(matches!(
            DirLock::acquire(dir.path(), "ohlcv load"),
            Err(StoreError::Locked { .. })
        ));
        drop(first);
        drop(second);
        // The last shard leaves its name, which nobody trusts unlocked.
        assert!(DirLock::holder(dir.path()).is_some());
        let whole = DirLock::acquire(dir.path(), "ohlcv load").unwrap();
        assert!(matches!(join("aaaa"), Err(StoreError::Locked { .. })));
        drop(whole);
        assert!(join("bbbb").unwrap().1);
    }
}
