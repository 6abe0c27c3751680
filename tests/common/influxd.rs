//! Starts a real `influxd` (InfluxDB 1.x, from Debian's `influxdb` package) on a free
//! loopback port with its data in a temporary directory, and stops it on drop. Installs
//! nothing: `scripts/test.sh` installs the package when `influxd` is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::free_port;

pub struct Influxd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    for candidate in ["/usr/bin/influxd", "/usr/local/bin/influxd"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!(
        "influxd not found: run `bash scripts/test.sh`, which installs Debian's influxdb package"
    );
}

impl Influxd {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            dir,
            port: free_port(),
            child: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [logging]\n  level = \"warn\"\n[monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n",
            rpc = free_port(),
            d = d.display(),
            port = self.port
        );
        let path = d.join("influxdb.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(binary())
            .args(["run", "-config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits for `/ping` to answer 204: the server's own readiness signal.
    fn wait_ready(&self) {
        let url = format!("{}/ping", self.url());
        let client = reqwest::blocking::Client::new();
        super::poll_until(
            "influxd to answer /ping with 204",
            super::DEADLINE,
            || {
                client
                    .get(&url)
                    .send()
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            },
            |answer| *answer == Ok(204),
        )
        .expect("the poll ends only on an answer");
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.kill();
    }
}
