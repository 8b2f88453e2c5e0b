//! Runs Herald as its users do: the real `herald` binary as a child process,
//! against a real NATS JetStream and real databases.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

mod collector;
mod exposition;
pub mod herald_all;
pub mod signatures;
pub mod stack;

pub use collector::{CollectedSpan, Collector};
pub use exposition::{Exposition, MetricFamily, Sample};
pub use herald_testkit::{
    NatsCluster, NatsServer, free_port, http_get, http_post, postgres_url, wait_for,
};
pub use herald_testkit_stack::{CuttableProxy, Received, Receiver, eventually};

/// A running `herald` process, killed when dropped.
#[derive(Debug)]
pub struct HeraldProcess {
    child: Child,
    pub ops_addr: SocketAddr,
    pub config_addr: SocketAddr,
    pub ingest_addr: SocketAddr,
    /// The command line and environment it was started with, so
    /// [`HeraldProcess::restart`] can start it again exactly so.
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// Where the process keeps generated credentials, unless `envs` named
    /// another directory.
    _state_dir: tempfile::TempDir,
}

impl HeraldProcess {
    /// Starts `herald <args>` with its listeners on free ports and its state
    /// in a temporary directory (`envs` may override either).
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> HeraldProcess {
        let ops_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let ingest_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let state_dir = tempfile::tempdir().unwrap();
        let mut all_envs: Vec<(String, String)> = vec![
            ("HERALD_OPS_ADDR".into(), ops_addr.to_string()),
            ("HERALD_CONFIG_ADDR".into(), config_addr.to_string()),
            ("HERALD_INGEST_ADDR".into(), ingest_addr.to_string()),
            (
                "HERALD_STATE_DIR".into(),
                state_dir.path().to_str().unwrap().to_owned(),
            ),
        ];
        all_envs.extend(
            envs.iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        );
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        HeraldProcess {
            child: spawn(&args, &all_envs),
            ops_addr,
            config_addr,
            ingest_addr,
            args,
            envs: all_envs,
            _state_dir: state_dir,
        }
    }

    /// How the process ended, if it did.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Kills the process with SIGKILL, as a crash would, and starts it
    /// again with the same command line, environment and addresses (so its
    /// peers reconnect to it), and waits until it is ready.
    pub fn restart(&mut self, timeout: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.args, &self.envs);
        self.wait_until_ready(timeout);
    }

    /// The status and JSON body of an ops HTTP path.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.ops_addr, path)
    }

    pub fn wait_until_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("herald exited with {status} before it was ready");
            }
            if self.get("/readyz").is_some_and(|(status, _)| status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "herald not ready within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL, as a crash or an OOM kill would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "herald did not exit within {timeout:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String], envs: &[(String, String)]) -> Child {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    herald_command(&args, &[])
        .envs(envs.iter().map(|(key, value)| (key, value)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// `herald <args>` with a clean environment of Herald variables, so the
/// developer's own settings never leak into a test.
pub fn herald_command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(herald_testkit::herald_binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") || key == "NATS_URL" || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command
        .args(["--log-format", "json"])
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null());
    command
}

/// Runs `herald <args>` to completion (bounded by `timeout`).
pub fn run_herald(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Output {
    let state_dir = tempfile::tempdir().unwrap();
    let mut child = herald_command(args, envs)
        .env("HERALD_STATE_DIR", state_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("herald {args:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.wait_with_output().unwrap()
}

/// A SQLite URL inside `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("herald.db").display())
}

/// Scrapes and parses a process's `/metrics`.
pub fn scrape(ops_addr: SocketAddr) -> Exposition {
    let (status, text) = http_get(ops_addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{text}");
    Exposition::parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}
