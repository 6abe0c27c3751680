//! Where an InfluxDB is and how to talk to it: URL, API version, org and bucket (or database),
//! credentials, query language; and the URLs and headers that follow from them.
//!
//! Credentials are [`Secret`]s: they go into an `Authorization` header and nowhere else, never
//! into a URL, a log line, an error or any output.

use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{InfluxError, Result};
pub use crate::secret::Secret;

/// Which HTTP API to write and set up through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `/api/v2/write` with org and bucket (InfluxDB 2.x, 3.x).
    V2,
    /// `/write` with a database (InfluxDB 1.x, and the v1 compatibility API of 2.x and 3.x).
    V1,
}

/// Which query language reads go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum QueryLanguage {
    /// InfluxQL through `/query`: InfluxDB 1.x, 2.x (v1 compatibility) and 3.x.
    Influxql,
    /// Flux through `/api/v2/query`: InfluxDB 2.x and 1.8+.
    Flux,
}

/// The unit of the timestamps in written line protocol (`precision=` of the write APIs).
/// Coarser units make shorter lines; two trades of one series that fall in the same unit
/// would then be one point, so a coarser unit is only for loads whose times are whole units.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    /// As the write APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Ns => "ns",
            Precision::Us => "us",
            Precision::Ms => "ms",
            Precision::S => "s",
        }
    }

    /// Nanoseconds in one unit.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
        }
    }

    /// `nanos` in this unit, rounded down.
    #[inline]
    pub fn of(self, nanos: i64) -> i64 {
        nanos.div_euclid(self.nanos())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct InfluxConfig {
    pub url: reqwest::Url,
    pub api: Api,
    pub token: Option<Secret>,
    pub org: String,
    pub bucket: String,
    /// v1: the database; defaults to the bucket's name (2.4+ maps a bucket to a database).
    pub database: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub retention_days: u32,
    pub query_language: QueryLanguage,
    /// How trades and candles are laid out: a load is read with the schema it was written
    /// with.
    pub schema: super::Schema,
}

impl InfluxConfig {
    pub fn parse_url(url: &str) -> Result<reqwest::Url> {
        reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| InfluxError::Url(url.to_string()))
    }

    /// Where the data goes, as said in messages and checkpoints (no credentials).
    pub fn target(&self) -> String {
        match self.api {
            Api::V2 => format!(
                "{} org {} bucket {}",
                self.public_url(),
                self.org,
                self.bucket
            ),
            Api::V1 => format!("{} database {}", self.public_url(), self.database),
        }
    }

    /// The thing a 404 means is missing.
    pub fn missing_target(&self) -> String {
        match self.api {
            Api::V2 => format!("bucket {:?} in org {:?}", self.bucket, self.org),
            Api::V1 => format!("database {:?}", self.database),
        }
    }

    /// The database InfluxQL reads (a v2 bucket is mapped to a database of its name).
    pub fn read_database(&self) -> &str {
        match self.api {
            Api::V1 => &self.database,
            Api::V2 => &self.bucket,
        }
    }

    /// The URL without any user or password it may carry, for showing to clients.
    pub fn public_url(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.to_string()
    }

    pub fn auth_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = if let Some(token) = &self.token {
            Some(format!("Token {}", token.expose()))
        } else if let (Some(user), Some(password)) = (&self.username, &self.password) {
            use base64::Engine;
            let pair = format!("{user}:{}", password.expose());
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        } else {
            None
        };
        if let Some(mut v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        headers
    }

    /// Where writes with timestamps in `precision` go.
    pub fn write_url(&self, precision: Precision) -> reqwest::Url {
        let mut url = self.endpoint(match self.api {
            Api::V2 => "api/v2/write",
            Api::V1 => "write",
        });
        {
            let mut pairs = url.query_pairs_mut();
            match self.api {
                Api::V2 => pairs
                    .append_pair("org", &self.org)
                    .append_pair("bucket", &self.bucket),
                Api::V1 => pairs.append_pair("db", &self.database),
            };
            // 1.x's /write spells microseconds `u` (and takes `us` for nanoseconds).
            let precision = match (self.api, precision) {
                (Api::V1, Precision::Us) => "u",
                (_, precision) => precision.as_str(),
            };
            pairs.append_pair("precision", precision);
        }
        url
    }

    pub fn endpoint(&self, path: &str) -> reqwest::Url {
        let mut url = self.url.clone();
        url.set_path(&format!("{}/{path}", self.url.path().trim_end_matches('/')));
        url
    }

    /// `/health` on 2.x, `/ping` on 1.x: answers when the server can take writes again.
    pub fn health_url(&self) -> reqwest::Url {
        self.endpoint(match self.api {
            Api::V2 => "health",
            Api::V1 => "ping",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(api: Api) -> InfluxConfig {
        InfluxConfig {
            url: InfluxConfig::parse_url("http://127.0.0.1:8086/prefix/").unwrap(),
            api,
            token: Some(Secret::new("s3cr3t-token")),
            org: "ohlcv poc".into(),
            bucket: "trades".into(),
            database: "trades".into(),
            username: None,
            password: None,
            retention_days: 3650,
            query_language: QueryLanguage::Influxql,
            schema: crate::store::influx::Schema::Tags,
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = config(Api::V2);
        let shown = format!("{c:?} {} {}", c.target(), c.write_url(Precision::Ns));
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let auth = c.auth_headers();
        assert!(!format!("{auth:?}").contains("s3cr3t"));
        assert_eq!(
            auth["authorization"].to_str().unwrap(),
            "Token s3cr3t-token"
        );
        // A password in the URL stays out of the target named in messages and logs.
        let with_user = InfluxConfig {
            url: InfluxConfig::parse_url("http://admin:s3cr3t-pw@127.0.0.1:8086/").unwrap(),
            ..config(Api::V1)
        };
        assert_eq!(with_user.target(), "http://127.0.0.1:8086/ database trades");
    }

    #[test]
    fn urls_carry_org_bucket_and_precision() {
        assert_eq!(
            config(Api::V2).write_url(Precision::Ns).as_str(),
            "http://127.0.0.1:8086/prefix/api/v2/write?org=ohlcv+poc&bucket=trades&precision=ns"
        );
        assert_eq!(
            config(Api::V1).write_url(Precision::Us).as_str(),
            "http://127.0.0.1:8086/prefix/write?db=trades&precision=u"
        );
        assert!(InfluxConfig::parse_url("ftp://x").is_err());
        assert!(InfluxConfig::parse_url("localhost:8086").is_err());
    }
}
