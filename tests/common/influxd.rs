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
    data: String,
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
    /// Starts a server on free ports. A port found free can be taken again before influxd
    /// binds it (by another test's server or an outgoing connection), and influxd then exits:
    /// it is started again on other ports.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A server that snapshots its WAL and fully compacts a shard a second after its last
    /// write, instead of 10 minutes and 4 hours.
    pub fn start_compacting() -> Self {
        Self::start_with(
            "  cache-snapshot-write-cold-duration = \"1s\"\n  compact-full-write-cold-duration = \"1s\"\n",
        )
    }

    /// `data` goes into the `[data]` section of the configuration.
    fn start_with(data: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            dir,
            port: free_port(),
            child: None,
            data: data.to_string(),
        };
        for _ in 0..5 {
            if server.spawn() {
                return server;
            }
            server.port = free_port();
        }
        panic!("influxd exited at every start: are its ports being taken?");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap()
    }

    /// The directories holding a directory per database: its data and its WAL.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.path().join("data"), self.dir.path().join("wal")]
    }

    /// Starts the process on `self.port` and waits for it; false if it exited instead.
    fn spawn(&mut self) -> bool {
        let d = self.dir.path();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n{data}\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [logging]\n  level = \"warn\"\n[monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n",
            rpc = free_port(),
            d = d.display(),
            port = self.port,
            data = self.data
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
        self.wait_ready()
    }

    /// Waits for `/ping` to answer 204, the server's own readiness signal, or for the process
    /// to exit (a port it was given was taken meanwhile); true if it is ready.
    fn wait_ready(&mut self) -> bool {
        let url = format!("{}/ping", self.url());
        let client = reqwest::blocking::Client::new();
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        let ready = super::poll_until(
            "influxd to answer /ping with 204, or to exit",
            super::DEADLINE,
            || {
                // Exited first: whatever answers on the port is not this server.
                if !matches!(child.try_wait(), Ok(None)) {
                    return Some(false);
                }
                let answer = client.get(&url).send().map(|r| r.status().as_u16());
                answer.is_ok_and(|s| s == 204).then_some(true)
            },
            Option::is_some,
        );
        if ready != Some(true) {
            self.child = None;
        }
        ready == Some(true)
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
        assert!(
            self.spawn(),
            "influxd did not start again on port {}",
            self.port
        );
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.kill();
    }
}
