//! Helpers shared by Herald's integration tests.
//!
//! Tests talk to real components: each test starts its own `nats-server`
//! with JetStream on a free port (so it can stop and restart it), and uses the
//! PostgreSQL database named by `HERALD_TEST_POSTGRES_URL`.
#![allow(clippy::unwrap_used)]

mod raw_grpc;

pub use raw_grpc::raw_grpc_call;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The PostgreSQL server tests use: `HERALD_TEST_POSTGRES_URL`, or the local
/// trust-auth default.
pub fn postgres_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        // TLS to a local server only slows debug-build tests down.
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

/// A schema name no other test uses: `test_` and 16 hex digits. Tests pass
/// it as the store's schema so they run in parallel, and again, against one
/// PostgreSQL database.
pub fn fresh_postgres_schema() -> String {
    use std::{
        hash::{BuildHasher, Hasher},
        sync::atomic::{AtomicU64, Ordering},
        time::SystemTime,
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded randomly per process; hashing the time, a
    // process-wide counter and the pid on top makes names unique across
    // threads, processes and runs.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("test_{:016x}", hasher.finish())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the OS hands out an ephemeral port")
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("herald-testkit lives in crates/herald-testkit")
        .to_path_buf()
}

/// The `nats-server` tests run: `HERALD_NATS_SERVER`, else the one
/// `make nats` installs into the project's venv.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("HERALD_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join(".venv/bin/nats-server");
    assert!(
        path.is_file(),
        "nats-server not found at {}: run `make nats` (or set HERALD_NATS_SERVER)",
        path.display()
    );
    path
}

/// A `nats-server -js` owned by one test, killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    store: tempfile::TempDir,
    /// A configuration file the server reads besides its flags.
    config_file: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a server with JetStream on free ports and waits until
    /// JetStream answers its health check.
    pub fn start() -> NatsServer {
        Self::start_with_config(None)
    }

    /// Like [`NatsServer::start`], with `config` (nats-server configuration
    /// text) as its configuration file; the flags for the ports and the
    /// storage still apply. For example the durable setting that syncs
    /// every write to disk before acknowledging it:
    /// `jetstream { sync_interval: always }`.
    pub fn start_with_config(config: Option<&str>) -> NatsServer {
        let store = tempfile::tempdir().expect("temporary directory for JetStream");
        let config_file = config.map(|config| {
            let path = store.path().join("nats-server.conf");
            std::fs::write(&path, config).expect("the nats-server configuration is written");
            path
        });
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            monitor_port: free_port(),
            store,
            config_file,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Kills the server (SIGKILL); its storage stays for [`NatsServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = self.store.path().join("nats-server.log");
        let mut command = Command::new(nats_server_binary());
        if let Some(config_file) = &self.config_file {
            command.arg("-c").arg(config_file);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-m"])
            .arg(self.monitor_port.to_string())
            .args(["-js", "-sd"])
            .arg(self.store.path().join("jetstream"))
            .args(["-l"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start nats-server: {error}"));
        self.child = Some(child);
        let healthz = SocketAddr::from(([127, 0, 0, 1], self.monitor_port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_get(healthz, "/healthz?js-enabled-only=true")
                .is_some_and(|(status, _)| status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("nats-server did not become healthy within 20 s; its log:\n{log}");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three `nats-server`s routed to each other on loopback, with JetStream
/// and storage of their own: a fresh cluster, as replicated streams need.
/// Killed when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the three nodes and returns once each answers its JetStream
    /// health check; the cluster may still be electing its meta leader.
    pub fn start() -> NatsCluster {
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let configs: Vec<String> = route_ports
            .iter()
            .enumerate()
            .map(|(index, port)| {
                format!(
                    "server_name: node-{index}\n\
                     cluster {{\n  name: herald-test\n  listen: \"127.0.0.1:{port}\"\n  routes: [{routes}]\n}}\n"
                )
            })
            .collect();
        // A node answers its health check before its routes connect, so
        // they can start one after the other.
        let nodes = configs
            .iter()
            .map(|config| NatsServer::start_with_config(Some(config)))
            .collect();
        NatsCluster { nodes }
    }

    /// Every node, comma-separated, as `NATS_URL` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A minimal blocking HTTP/1.1 GET: returns the status code and body, or
/// `None` when nothing answers. Enough to poll health endpoints from tests
/// without an HTTP client.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A minimal blocking HTTP/1.1 POST of `body` with `headers`: the status
/// code and body of the answer, or `None` when nothing answers.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `check` every 25 ms until it returns `Some`, or panics naming
/// `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The `herald` binary built next to the running test executable
/// (`cargo build --bins` builds it; `make test` does so first).
pub fn herald_binary() -> PathBuf {
    binary("herald")
}

/// The `heraldctl` binary, found like [`herald_binary`].
pub fn heraldctl_binary() -> PathBuf {
    binary("heraldctl")
}

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: build it first (`cargo build --bins`, which `make test` runs)",
        path.display()
    );
    path
}

/// Gives Herald's spans trace context, as the `herald` binary's subscriber
/// does (without exporting them), so a test of a service library can follow
/// `traceparent` from hop to hop. Installs a global subscriber once per
/// test binary; later calls do nothing.
pub fn trace_spans() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let spans = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("herald-test"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("herald", tracing::Level::INFO),
            );
        // Another subscriber installed first wins; its test then sees no
        // trace context and says so in its assertions.
        let _ = tracing_subscriber::registry().with(spans).try_init();
    });
}
