//! `ohlcv serve` as a process of its own, configured only through the environment given, in a
//! temporary working directory (its `./data` is the default data directory), on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{DEADLINE, free_port, poll_until};

pub struct ServeProcess {
    child: Child,
    pub url: String,
    log: PathBuf,
    dir: tempfile::TempDir,
}

/// `ohlcv` with exactly `env` as its environment, in `dir`; only the coverage tool's own
/// variable passes through, so a run under `cargo llvm-cov` still counts.
pub fn ohlcv(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ohlcv"));
    c.env_clear().envs(env.iter().copied()).current_dir(dir);
    if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
        c.env("LLVM_PROFILE_FILE", profile);
    }
    c
}

impl ServeProcess {
    /// Starts `ohlcv serve ARGS` with `PORT` and `env` only, and waits until it answers.
    pub fn start(env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().to_string();
        // Logs go to a file: a pipe nobody reads would block the server once full.
        let log = dir.path().join("serve.log");
        let mut env = env.to_vec();
        env.push(("PORT", &port));
        let child = ohlcv(dir.path(), &env)
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ohlcv runs");
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            dir,
        };
        poll_until(
            "ohlcv serve to answer /health",
            DEADLINE,
            || {
                let exited = server.child.try_wait().unwrap();
                assert!(exited.is_none(), "ohlcv serve exited: {}", server.log());
                reqwest::blocking::get(format!("{}/health", server.url)).is_ok()
            },
            |up| *up,
        );
        server
    }

    /// Its working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Waits until its log holds `text`.
    pub fn wait_for_log(&self, text: &str) {
        poll_until(
            &format!("ohlcv serve to log {text:?}"),
            DEADLINE,
            || self.log(),
            |log| log.contains(text),
        );
    }

    /// Sends `signal` (`TERM`, `INT`, ...).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }

    /// Waits for it to exit, for at most the deadline.
    pub fn wait(&mut self) -> Option<std::process::ExitStatus> {
        poll_until(
            "ohlcv serve to exit",
            DEADLINE,
            || self.child.try_wait().unwrap(),
            Option::is_some,
        )
    }
}

impl ServeProcess {
    /// Sends SIGTERM and waits for the exit: the graceful shutdown a service manager asks for
    /// (and the one that lets a coverage run write its counts). SIGKILL if it has not ended
    /// by the deadline.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        let give_up = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < give_up {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}
