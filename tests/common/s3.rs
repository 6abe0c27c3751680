//! Starts a real S3-compatible server (moto's, from PyPI's `moto[server]`, which
//! `scripts/test.sh` installs) on a free loopback port, and stops it on drop. moto answers
//! conditional PUTs (`If-None-Match: *`, `If-Match`) with 412 as S3 does, which is what the
//! manifest commit relies on. When the server cannot be started the tests using it say so and
//! pass without running, as a machine without Python cannot run them.

use std::process::{Child, Command, Stdio};

use super::{DEADLINE, free_port, poll_until};

pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

/// The credentials the tests use: moto accepts any.
pub const KEY_ID: &str = "test-key";
pub const SECRET: &str = "test-secret";

impl S3Server {
    /// A started server, or `None` (and a line saying why) when moto is not installed.
    pub fn start(test: &str) -> Option<Self> {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            println!("{test}: skipped, python3 cannot be run (scripts/test.sh installs moto)");
            return None;
        };
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::blocking::Client::new();
        let (ready, exited) = poll_until(
            "the S3 server to answer",
            DEADLINE,
            || {
                (
                    client.get(&server.endpoint).send().is_ok(),
                    server.child.try_wait().unwrap(),
                )
            },
            |(ready, exited)| *ready || exited.is_some(),
        );
        if !ready {
            println!(
                "{test}: skipped, the S3 server exited ({exited:?}): `pip install \"moto[server]\"` \
                 (scripts/test.sh does)"
            );
            return None;
        }
        Some(server)
    }

    /// Creates `bucket` and returns its URL with `prefix`.
    pub fn bucket(&self, bucket: &str, prefix: &str) -> String {
        let created = reqwest::blocking::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .unwrap();
        assert!(created.status().is_success(), "{created:?}");
        format!("s3://{bucket}/{prefix}")
    }

    /// The variables a client of this server is configured with.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &self.endpoint),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The data directory `url` on this server.
    pub fn data_dir(&self, url: &str) -> ohlcv::store::DataDir {
        ohlcv::store::DataDir::Remote(
            ohlcv::store::remote::Remote::open_with(url, self.env()).unwrap(),
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
