//! Runs Herald as its users do: the real `herald` binary as a child process,
//! against a real NATS JetStream and real databases.
#![allow(clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

mod collector;
mod exposition;
pub mod herald_all;
mod receiver;
pub mod stack;

pub use collector::{CollectedSpan, Collector};
pub use exposition::{Exposition, MetricFamily, Sample};
pub use herald_testkit::{NatsServer, free_port, http_get, postgres_url, wait_for};
pub use receiver::{Received, Receiver};

/// A running `herald` process, killed when dropped.
#[derive(Debug)]
pub struct HeraldProcess {
    child: Child,
    pub ops_addr: SocketAddr,
    pub config_addr: SocketAddr,
    pub ingest_addr: SocketAddr,
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
        let child = herald_command(args, &[])
            .env("HERALD_OPS_ADDR", ops_addr.to_string())
            .env("HERALD_CONFIG_ADDR", config_addr.to_string())
            .env("HERALD_INGEST_ADDR", ingest_addr.to_string())
            .env("HERALD_STATE_DIR", state_dir.path())
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        HeraldProcess {
            child,
            ops_addr,
            config_addr,
            ingest_addr,
            _state_dir: state_dir,
        }
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

/// POSTs `body` over plain HTTP/1.1 and returns the status and body text.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap();
    let text = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, text)
}

/// Scrapes and parses a process's `/metrics`.
pub fn scrape(ops_addr: SocketAddr) -> Exposition {
    let (status, text) = http_get(ops_addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{text}");
    Exposition::parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}
