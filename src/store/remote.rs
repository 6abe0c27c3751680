//! A data directory on object storage (`s3://`, `az://`, `gs://`), through Apache Arrow's
//! `object_store` crate, the storage layer of InfluxDB 3 and DataFusion.
//!
//! The same layout as a local data directory, published the object store's way:
//! - a file becomes visible by one PUT of the whole file, which an object store makes visible
//!   whole or not at all, so no temporary names and nothing half-written is ever listed;
//! - the manifest is committed with a conditional PUT, `If-None-Match: *` to create it and
//!   `If-Match` on the ETag read to replace it: a writer that loses the race (412, or 409 from
//!   stores that answer so) reads the manifest again, merges its partitions in, and tries again
//!   after a backoff with jitter ([`Remote::commit_manifest`]), so loaders on many machines
//!   never lose each other's partitions;
//! - reads fetch a file's footer once (kept while the manifest stays the same), then only the
//!   byte ranges of the column chunks of the row groups a query needs ([`Remote::fetch`]).
//!
//! Credentials and endpoint come from the environment as each cloud's tools read them
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, ...; `AZURE_STORAGE_ACCOUNT_NAME`, ...;
//! `GOOGLE_APPLICATION_CREDENTIALS`, ...); they are never printed: errors name the URL and
//! the object only.
//!
//! The store's client is asynchronous and our [`super::Store`] is not: calls block on a
//! runtime of the module's own, never dropped, entered from any thread (a request handler's
//! blocking thread included).

use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};

use super::manifest::{MANIFEST_FILE, Manifest};
use super::{Backend, Result, StoreError};

/// How many times a manifest commit that lost a race is tried again before giving up.
const COMMIT_ATTEMPTS: u32 = 64;
/// How many times a request [`cut_off`] on the way is tried again, beyond the client's own
/// retries, before the error is the caller's: with the commit's backoff, for 7 to 15 s,
/// so that a server (or the proxy in front of it) that drops connections while it restarts
/// is waited for, as one that refuses them is by the client.
const INTERRUPTIONS: u32 = 12;
/// The first wait before trying a lost commit again; it doubles, up to [`COMMIT_MAX_WAIT`],
/// and each wait is drawn at random between half and all of it.
const COMMIT_FIRST_WAIT: Duration = Duration::from_millis(20);
const COMMIT_MAX_WAIT: Duration = Duration::from_secs(2);
/// Bytes read from the end of a file for its footer: the whole footer of our files in one
/// request (a few KiB per hundred row groups); a bigger one takes a second request.
const FOOTER_GUESS: u64 = 64 * 1024;

/// A data directory on object storage.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// The directory's prefix in the bucket (empty for the bucket's root).
    prefix: ObjectPath,
    /// `s3://bucket/prefix`, as errors and logs name it.
    url: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the credentials: only the URL is shown.
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

/// True for a data directory given as a URL of anything but the local file system
/// (`file://`): an object store's, or one this build does not know, which [`Remote::open`]
/// refuses rather than taking `hdfs://host/data` for a local path.
pub fn is_url(dir: &str) -> bool {
    dir.split_once("://").is_some_and(|(scheme, _)| {
        scheme != "file"
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// An object store service, by the schemes of its URLs.
struct Cloud {
    kind: CloudKind,
    /// The prefix of the environment variables configuring its client.
    variables: &'static str,
    /// The variables naming an endpoint other than the cloud's own.
    endpoints: &'static [&'static str],
}

enum CloudKind {
    S3,
    Azure,
    Google,
}

impl Cloud {
    fn of(scheme: &str) -> Option<Cloud> {
        let (kind, variables, endpoints): (_, _, &'static [&'static str]) = match scheme {
            "s3" | "s3a" => (CloudKind::S3, "AWS_", &["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]),
            "az" | "abfs" | "abfss" | "adl" | "azure" => (
                CloudKind::Azure,
                "AZURE_",
                &["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"],
            ),
            "gs" => (CloudKind::Google, "GOOGLE_", &["GOOGLE_BASE_URL"]),
            _ => return None,
        };
        Some(Cloud {
            kind,
            variables,
            endpoints,
        })
    }

    /// The client of `url`, configured with `config`: (key, value) pairs, each key as the
    /// variable's name in lower case; keys its builder does not know are left out.
    fn build(
        &self,
        url: &str,
        config: impl Iterator<Item = (String, String)>,
    ) -> object_store::Result<Arc<dyn ObjectStore>> {
        Ok(match self.kind {
            CloudKind::S3 => Arc::new(
                config
                    .fold(AmazonS3Builder::new(), |b, (key, value)| {
                        match key.parse() {
                            Ok(key) => b.with_config(key, value),
                            Err(_) => b,
                        }
                    })
                    .with_url(url)
                    .build()?,
            ),
            CloudKind::Azure => Arc::new(
                config
                    .fold(MicrosoftAzureBuilder::new(), |b, (key, value)| {
                        match key.parse() {
                            Ok(key) => b.with_config(key, value),
                            Err(_) => b,
                        }
                    })
                    .with_url(url)
                    .build()?,
            ),
            CloudKind::Google => Arc::new(
                config
                    .fold(
                        GoogleCloudStorageBuilder::new(),
                        |b, (key, value)| match key.parse() {
                            Ok(key) => b.with_config(key, value),
                            Err(_) => b,
                        },
                    )
                    .with_url(url)
                    .build()?,
            ),
        })
    }
}

/// The runtime every remote call blocks on.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ohlcv-object-store")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| {
            StoreError::io(
                PathBuf::from("object store runtime"),
                std::io::Error::new(e.kind(), e.to_string()),
            )
        })
}

/// Runs `f` to completion from synchronous code, on the module's runtime. From inside another
/// multi-threaded runtime's worker, the worker first hands its other tasks away.
fn block_on<F: Future>(f: F) -> Result<F::Output> {
    let rt = runtime()?;
    Ok(match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| rt.block_on(f))
        }
        _ => rt.block_on(f),
    })
}

impl Remote {
    /// The data directory at `url` (`s3://bucket/prefix`, `az://...`, `gs://...`), configured
    /// from the environment.
    pub fn open(url: &str) -> Result<Remote> {
        Self::open_with(url, std::env::vars())
    }

    /// The data directory at `url`, configured from the variables of its cloud among `vars`
    /// (the environment, or settings a caller gives itself): `AWS_*` for `s3://`, `AZURE_*`
    /// for `az://` (and `abfs[s]://`, `adl://`, `azure://`), `GOOGLE_*` for `gs://`, each as
    /// that cloud's own tools read them. Plain HTTP is allowed when the endpoint is an
    /// `http://` URL (a local server or emulator); S3 requests are path-style unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` says otherwise. One exception reads the process's
    /// environment whatever `vars` holds: with `AZURE_STORAGE_USE_EMULATOR`, `object_store`
    /// takes Azurite's endpoint from `AZURITE_BLOB_STORAGE_URL` itself.
    pub fn open_with(
        url: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Remote> {
        let url = url.trim_end_matches('/');
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let prefix = rest.split_once('/').map_or("", |(_, prefix)| prefix);
        let Some(cloud) = Cloud::of(scheme) else {
            return Err(StoreError::Missing(Backend::Content {
                path: PathBuf::from(url),
                detail: "not an object store URL this build knows (s3://, az://, gs://)".into(),
            }));
        };
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(key, _)| key.starts_with(cloud.variables))
            .collect();
        let plain_http = vars.iter().any(|(key, value)| {
            cloud.endpoints.contains(&key.as_str()) && value.starts_with("http://")
        });
        let config = vars
            .into_iter()
            .map(|(key, value)| (key.to_ascii_lowercase(), value))
            .chain(plain_http.then(|| ("allow_http".to_string(), "true".to_string())));
        let store = cloud.build(url, config).map_err(|e| object_err(url, e))?;
        Ok(Remote {
            store,
            prefix: ObjectPath::from(prefix),
            url: url.to_string(),
        })
    }

    /// The directory `rel` inside this one (a generation directory).
    pub fn join(&self, rel: &str) -> Remote {
        if rel.is_empty() {
            return self.clone();
        }
        Remote {
            store: self.store.clone(),
            prefix: self.key(rel),
            url: format!("{}/{rel}", self.url),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, rel: &str) -> ObjectPath {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |key, part| key.clone().join(part))
    }

    fn err(&self, rel: &str) -> impl FnOnce(object_store::Error) -> StoreError {
        let name = format!("{}/{rel}", self.url);
        move |e| object_err(&name, e)
    }

    /// The object `rel`, with the version a conditional PUT replacing it names (the ETag,
    /// and on Google Cloud Storage the generation); `None` if there is none.
    pub fn get(&self, rel: &str) -> Result<Option<(Bytes, UpdateVersion)>> {
        let key = self.key(rel);
        let got = block_on(again(|| async {
            let result = self.store.get(&key).await?;
            let version = UpdateVersion {
                e_tag: result.meta.e_tag.clone(),
                version: result.meta.version.clone(),
            };
            Ok((result.bytes().await?, version))
        }))?;
        match got {
            Ok(got) => Ok(Some(got)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// Size and a version stamp of the object `rel`; `None` if there is none.
    pub fn head(&self, rel: &str) -> Result<Option<(u64, String)>> {
        let key = self.key(rel);
        match block_on(again(|| self.store.head(&key)))? {
            Ok(meta) => Ok(Some((
                meta.size,
                meta.e_tag
                    .unwrap_or_else(|| meta.last_modified.to_rfc3339()),
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// Publishes `bytes` as the object `rel` with one PUT: readers see all of it or nothing.
    pub fn put(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let key = self.key(rel);
        let payload = PutPayload::from(bytes);
        block_on(again(|| self.store.put(&key, payload.clone())))?
            .map(|_| ())
            .map_err(self.err(rel))
    }

    /// Every object under `rel`, as (path relative to this directory, size).
    pub fn list(&self, rel: &str) -> Result<Vec<(String, u64)>> {
        let key = self.key(rel);
        let metas: Vec<object_store::ObjectMeta> =
            block_on(again(|| self.store.list(Some(&key)).try_collect()))?
                .map_err(self.err(rel))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.prefix_match(&self.prefix)?;
                let rel: Vec<String> = name.map(|p| p.as_ref().to_string()).collect();
                Some((rel.join("/"), m.size))
            })
            .collect())
    }

    /// Deletes every object under `rel`.
    pub fn delete_all(&self, rel: &str) -> Result<()> {
        for (name, _) in self.list(rel)? {
            let key = self.key(&name);
            match block_on(again(|| self.store.delete(&key)))? {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(&name)(e)),
            }
        }
        Ok(())
    }

    /// The manifest, if there is one.
    pub fn read_manifest(&self) -> Result<Option<Manifest>> {
        self.get(MANIFEST_FILE)?
            .map(|(bytes, _)| Manifest::parse(&bytes, format!("{}/{MANIFEST_FILE}", self.url)))
            .transpose()
    }

    /// Commits the manifest `merge` makes of the one found (`None` if there is none yet), with
    /// a conditional PUT on the version found; `merge` returning `None` leaves it as it is.
    /// Returns the manifest committed or left. A commit that lost the race to another writer
    /// is merged again from the new manifest and tried again.
    pub fn commit_manifest(
        &self,
        mut merge: impl FnMut(Option<&Manifest>) -> Option<Manifest>,
    ) -> Result<Option<Manifest>> {
        let origin = format!("{}/{MANIFEST_FILE}", self.url);
        let mut wait = COMMIT_FIRST_WAIT;
        let mut interrupted = 0;
        for _ in 0..COMMIT_ATTEMPTS {
            let (found, version) = match self.get(MANIFEST_FILE)? {
                Some((bytes, version)) => (Some(Manifest::parse(&bytes, &origin)?), version),
                None => (
                    None,
                    UpdateVersion {
                        e_tag: None,
                        version: None,
                    },
                ),
            };
            let Some(next) = merge(found.as_ref()) else {
                return Ok(found);
            };
            let mode = match &found {
                None => PutMode::Create,
                Some(_) if version.e_tag.is_some() || version.version.is_some() => {
                    PutMode::Update(version)
                }
                Some(_) => {
                    return Err(StoreError::corrupt(
                        PathBuf::from(&origin),
                        "the store gave the manifest no ETag, so it cannot be updated safely",
                    ));
                }
            };
            let key = self.key(MANIFEST_FILE);
            let payload = PutPayload::from(Bytes::from(next.to_json_pretty()));
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            match block_on(self.store.put_opts(&key, payload, options))? {
                Ok(_) => return Ok(Some(next)),
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) => {}
                // The client does not retry a conditional PUT cut off on the way (a server
                // restarting): it may have been applied. Merging is idempotent, so reading the
                // manifest again and merging into it is safe either way.
                Err(e) if cut_off(&e) => {
                    interrupted += 1;
                    if interrupted > INTERRUPTIONS {
                        return Err(self.err(MANIFEST_FILE)(e));
                    }
                }
                Err(e) => return Err(self.err(MANIFEST_FILE)(e)),
            }
            // Another writer committed first, or the server went away: wait a while, drawn at
            // random so that writers that collided do not collide again, and merge again.
            std::thread::sleep(wait.mul_f64(jitter()));
            wait = (wait * 2).min(COMMIT_MAX_WAIT);
        }
        Err(StoreError::Unavailable(Backend::Content {
            path: PathBuf::from(origin),
            detail: format!("{COMMIT_ATTEMPTS} commits in a row lost to other writers"),
        }))
    }

    /// The footer of the Parquet file `rel`, and its size.
    pub fn footer(&self, rel: &str) -> Result<(u64, Arc<ParquetMetaData>)> {
        let origin = || PathBuf::from(format!("{}/{rel}", self.url));
        let (size, _) = self.head(rel)?.ok_or_else(|| {
            StoreError::Missing(Backend::Content {
                path: origin(),
                detail: "listed in the manifest but not in the store".into(),
            })
        })?;
        let corrupt = |source| {
            StoreError::Corrupt(Backend::Parquet {
                path: origin(),
                source,
            })
        };
        let mut tail = self.range(rel, size.saturating_sub(FOOTER_GUESS)..size)?;
        // The last 8 bytes: the footer's length (little-endian u32), then "PAR1".
        let footer_len = tail
            .1
            .len()
            .checked_sub(8)
            .and_then(|at| tail.1.get(at..at + 4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u64::from(u32::from_le_bytes(b)) + 8)
            .ok_or_else(|| corrupt(ParquetError::General("shorter than a footer".into())))?;
        if footer_len > tail.1.len() as u64 && footer_len <= size {
            tail = self.range(rel, size - footer_len..size)?;
        }
        let fetched = Fetched {
            len: size,
            ranges: vec![tail],
        };
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&fetched)
            .map_err(corrupt)?;
        Ok((size, Arc::new(metadata)))
    }

    fn range(&self, rel: &str, range: Range<u64>) -> Result<(u64, Bytes)> {
        let key = self.key(rel);
        let start = range.start;
        let bytes = block_on(again(|| self.store.get_range(&key, range.clone())))?
            .map_err(self.err(rel))?;
        Ok((start, bytes))
    }

    /// The byte `ranges` of the file `rel` of `size` bytes, fetched at once (the client
    /// merges neighbouring ranges into one request), as a reader the Parquet decoder reads.
    pub fn fetch(&self, rel: &str, size: u64, ranges: Vec<Range<u64>>) -> Result<Fetched> {
        let key = self.key(rel);
        let starts: Vec<u64> = ranges.iter().map(|r| r.start).collect();
        let bytes =
            block_on(again(|| self.store.get_ranges(&key, &ranges)))?.map_err(self.err(rel))?;
        Ok(Fetched {
            len: size,
            ranges: starts.into_iter().zip(bytes).collect(),
        })
    }
}

/// True for a request or an answer cut off on the way (a server restarting), which the client
/// retries for neither a conditional PUT nor an answer's body. Not for a server that cannot
/// be reached at all: the client has already retried that for as long as it is configured to.
fn cut_off(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(http) = error.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Interrupted | HttpErrorKind::Timeout
            );
        }
        source = error.source();
    }
    false
}

/// The result of `request`, made again after a wait (that doubles, with jitter) while it
/// is [`cut_off`], [`INTERRUPTIONS`] times at most. Only for requests that can
/// be repeated with the same effect.
async fn again<T, F, Fut>(mut request: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut wait = COMMIT_FIRST_WAIT;
    let mut tries = 0;
    loop {
        match request().await {
            Err(e) if cut_off(&e) && tries < INTERRUPTIONS => {
                tries += 1;
                tokio::time::sleep(wait.mul_f64(jitter())).await;
                wait = (wait * 2).min(COMMIT_MAX_WAIT);
            }
            done => return done,
        }
    }
}

/// A number in [0.5, 1) that differs between processes and calls, to spread retries.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let key = format!("{}-{nanos}", std::process::id());
    let h = crate::generator::seeds::fnv1a(key.as_bytes());
    0.5 + (h >> 11) as f64 / (1u64 << 54) as f64
}

/// An object store error on `name` (a URL), by what a caller can do about it.
fn object_err(name: &str, source: object_store::Error) -> StoreError {
    let backend = Backend::Object {
        name: name.to_string(),
        source: Box::new(source),
    };
    match &backend {
        Backend::Object { source, .. } => match source.as_ref() {
            object_store::Error::NotFound { .. } => StoreError::Missing(backend),
            object_store::Error::Unauthenticated { .. }
            | object_store::Error::PermissionDenied { .. } => StoreError::Unauthorized(backend),
            _ => StoreError::Unavailable(backend),
        },
        _ => StoreError::Unavailable(backend),
    }
}

/// Byte ranges of one file fetched from the store, read by the Parquet decoder as if they
/// were the file: it reads only what the row groups it was given span.
pub struct Fetched {
    len: u64,
    /// (offset in the file, bytes from there), any order.
    ranges: Vec<(u64, Bytes)>,
}

impl Fetched {
    /// The bytes from `start`, `length` of them or to the end of the range holding them.
    /// Neighbouring ranges meet, so a range ending at `start` does not hold it.
    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        for (offset, bytes) in &self.ranges {
            let end = offset + bytes.len() as u64;
            if *offset <= start && (start < end || length == Some(0)) {
                let from = (start - offset) as usize;
                let to = length.map_or(bytes.len(), |l| from + l);
                if to <= bytes.len() {
                    return Ok(bytes.slice(from..to));
                }
            }
        }
        Err(ParquetError::General(format!(
            "bytes {start}..{} were not fetched",
            length.map_or(self.len, |l| start + l as u64)
        )))
    }
}

impl Length for Fetched {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Fetched {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_each_cloud_are_object_stores_and_others_paths() {
        for url in [
            "s3://bucket/prefix",
            "s3a://bucket",
            "az://container/prefix",
            "abfss://fs@account.dfs.core.windows.net/prefix",
            "gs://bucket/prefix",
            "hdfs://host/data",
        ] {
            assert!(is_url(url), "{url}");
        }
        for dir in ["/data", "data", "file:///data", "./a://b"] {
            assert!(!is_url(dir), "{dir}");
        }
        let err = Remote::open_with("hdfs://host/data", []).unwrap_err();
        assert!(err.to_string().contains("hdfs://"), "{err}");
    }

    #[test]
    fn a_gcs_client_is_configured_from_google_variables_and_never_shows_them() {
        let vars = [
            ("GOOGLE_BEARER_TOKEN", "token-not-to-show"),
            ("GOOGLE_BASE_URL", "http://127.0.0.1:9"),
            ("AWS_SECRET_ACCESS_KEY", "another-cloud's"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let gs = Remote::open_with("gs://bucket/prefix/", vars).unwrap();
        assert_eq!(gs.url(), "gs://bucket/prefix");
        assert_eq!(gs.join("load-1").url(), "gs://bucket/prefix/load-1");
        let shown = format!("{gs:?}");
        assert!(!shown.contains("token-not-to-show"), "{shown}");
        // Nothing listens there: the error names the URL, not the token.
        let err = gs.head("manifest.json").unwrap_err().to_string();
        assert!(err.contains("gs://bucket/prefix/manifest.json"), "{err}");
        assert!(!err.contains("token-not-to-show"), "{err}");
    }
}
