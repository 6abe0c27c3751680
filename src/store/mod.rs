//! Where trades and 1-minute candles live once generated.
//!
//! [`Store`] is the read side every query goes through. Two implementations:
//! - [`parquet::ParquetStore`], the embedded Parquet dataset (the default), which also has the
//!   partition writer the load pipeline uses;
//! - [`influx`], InfluxDB over HTTP: one client (configuration, credentials, writes with retry,
//!   both query transports), administration, and a `Store` each for InfluxQL and Flux.
//!
//! Both lay a load out the same way ([`layout`]), describe it with the same [`Manifest`], and
//! publish files through [`publish`], where a load also locks the data directory it writes
//! ([`publish::DirLock`]).
//!
//! Errors are backend-neutral kinds ([`StoreError`]) with the backend's own error as their
//! source, so callers decide what to do once per kind, whatever the store.

pub mod influx;
pub mod layout;
pub mod manifest;
pub mod parquet;
pub mod publish;
pub mod remote;

use std::path::PathBuf;

use crate::candles::Candle;
use crate::model::{Nanos, Symbol, TradeColumns};
pub use manifest::{Manifest, Partition};

/// What went wrong in a store, by what a caller can do about it.
///
/// The kinds with a backend error display that error (it already says what and where), and
/// keep it as their source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store holds no load (yet).
    #[error("no load found in {0}: run `ohlcv load` first")]
    Empty(String),
    /// A load is asked for into a store holding a different one.
    #[error(
        "{target} holds a different load ({existing}); pass --replace to delete it and load anew"
    )]
    DifferentLoad { target: String, existing: String },
    /// Another load is writing the store now; this one stopped before reading or changing
    /// anything. `holder` names it: the process holding a data directory's
    /// [`publish::DirLock`], or the load whose claim an InfluxDB target holds.
    #[error("another load is writing {target}: {holder}; try again once it has finished")]
    Locked { target: String, holder: String },
    /// The store cannot be reached or read now; trying again later may work.
    #[error(transparent)]
    Unavailable(Backend),
    /// The store refused our credentials.
    #[error(transparent)]
    Unauthorized(Backend),
    /// What the store was told to use (a bucket, a database, a file) does not exist.
    #[error(transparent)]
    Missing(Backend),
    /// The store refused what we wrote.
    #[error(transparent)]
    Rejected(Backend),
    /// The store answered with something we cannot read.
    #[error(transparent)]
    Corrupt(Backend),
}

/// A backend's own error, the source of a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum Backend {
    #[error(transparent)]
    Influx(#[from] influx::InfluxError),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    #[error("{}: bad manifest", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: unexpected content: {detail}", path.display())]
    Content { path: PathBuf, detail: String },
    /// An object store's error on `name`, a URL without credentials. Shown on one line: the
    /// server's XML answer, which the error quotes, spans several.
    #[error("{name}: {}", source.to_string().split_whitespace().collect::<Vec<_>>().join(" "))]
    Object {
        name: String,
        #[source]
        source: Box<object_store::Error>,
    },
}

/// Where a data directory is: a local directory, or a prefix on object storage
/// ([`remote`]). Both hold the same layout and manifest.
#[derive(Debug, Clone)]
pub enum DataDir {
    Local(PathBuf),
    Remote(remote::Remote),
}

impl DataDir {
    /// The data directory `dir` names: `s3://bucket/prefix`, `az://container/prefix` or
    /// `gs://bucket/prefix` (credentials and endpoint from the environment), `file:///path`,
    /// or a plain path.
    pub fn open(dir: &str) -> Result<DataDir> {
        if remote::is_url(dir) {
            return Ok(DataDir::Remote(remote::Remote::open(dir)?));
        }
        let path = dir.strip_prefix("file://").unwrap_or(dir);
        Ok(DataDir::Local(PathBuf::from(path)))
    }

    /// The directory `rel` inside this one.
    pub fn join(&self, rel: &str) -> DataDir {
        match self {
            DataDir::Local(dir) => DataDir::Local(dir.join(rel)),
            DataDir::Remote(remote) => DataDir::Remote(remote.join(rel)),
        }
    }

    /// The directory or URL, for messages.
    pub fn describe(&self) -> String {
        match self {
            DataDir::Local(dir) => dir.display().to_string(),
            DataDir::Remote(remote) => remote.url().to_string(),
        }
    }
}

impl From<PathBuf> for DataDir {
    fn from(dir: PathBuf) -> Self {
        DataDir::Local(dir)
    }
}

impl From<&PathBuf> for DataDir {
    fn from(dir: &PathBuf) -> Self {
        DataDir::Local(dir.clone())
    }
}

impl From<&std::path::Path> for DataDir {
    fn from(dir: &std::path::Path) -> Self {
        DataDir::Local(dir.to_path_buf())
    }
}

impl StoreError {
    /// An I/O error on `path`: a file listed but gone means the dataset is damaged; anything
    /// else (permissions, a full disk, a failing device) is the store being unavailable.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let backend = Backend::Io {
            path: path.into(),
            source,
        };
        match &backend {
            Backend::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                StoreError::Missing(backend)
            }
            _ => StoreError::Unavailable(backend),
        }
    }

    /// Content at `path` that is not what we wrote.
    pub fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        StoreError::Corrupt(Backend::Content {
            path: path.into(),
            detail: detail.into(),
        })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// `map_err` adapter for I/O on `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::io(path, source)
}

/// The read side of a store.
///
/// Contract: every range is half-open, `[start, end)`, in UTC nanoseconds; results are ordered
/// by time (and trade id); a symbol the store does not hold yields an empty result, not an
/// error. Implementations are safe to share between threads.
pub trait Store: Send + Sync {
    /// Trades of `symbol` with `start <= time < end`, at most `limit` of them (the first ones).
    fn trades(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        limit: Option<usize>,
    ) -> Result<TradeColumns>;

    /// Stored UTC 1-minute candles of `symbol` whose minute starts in `[start, end)`.
    fn minute_candles(&self, symbol: &Symbol, start: Nanos, end: Nanos) -> Result<Vec<Candle>>;

    /// The same candles as [`Store::minute_candles`], handed to `visit` in time-ordered
    /// slices; a store that holds them in memory lends them instead of copying.
    fn visit_minute_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        visit(&self.minute_candles(symbol, start, end)?);
        Ok(())
    }

    /// UTC 1-hour candles of `symbol` whose hour starts in `[start, end)`, both whole UTC
    /// hours, rolled up from the 1-minute candles, in time-ordered slices.
    fn visit_hour_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        visit(&crate::candles::hour_candles(
            &self.minute_candles(symbol, start, end)?,
        ));
        Ok(())
    }

    /// The close of the last 1-minute candle of `symbol` that starts before `before`.
    fn previous_close(&self, symbol: &Symbol, before: Nanos) -> Result<Option<i64>>;

    /// How many trades of `symbol` fall in each of `ranges` (sorted and disjoint), counted
    /// from the stored trades themselves.
    fn count_trades(&self, symbol: &Symbol, ranges: &[(Nanos, Nanos)]) -> Result<Vec<u64>>;

    /// What was loaded. [`StoreError::Empty`] when nothing was.
    fn manifest(&self) -> Result<Manifest>;

    /// True when the store holds a complete load: what a server may present as the data.
    /// [`StoreError::Empty`] when it holds none.
    fn complete(&self) -> Result<bool> {
        Ok(self.manifest()?.complete)
    }
}
