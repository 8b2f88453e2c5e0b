//! A customer's webhook receiver, for tests: records every request and
//! answers what the test scripts.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};

/// One request as the receiver saw it, and the status it answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The envelope's `data`, as JSON.
    pub fn data(&self) -> serde_json::Value {
        let envelope: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        envelope["data"].clone()
    }
}

#[derive(Debug, Default)]
struct Shared {
    received: Vec<Received>,
    delay: Duration,
    /// Answered to every request unless a random failure applies.
    status: u16,
    /// The share of requests answered 500 at random.
    failure_rate: f64,
    /// xorshift state for the random failures: reproducible, no dependency.
    random: u64,
}

impl Shared {
    fn next_random(&mut self) -> f64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// An HTTP receiver on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to every POST, after `delay`.
    pub async fn start(delay: Duration) -> Receiver {
        let shared = Arc::new(Mutex::new(Shared {
            received: Vec::new(),
            delay,
            status: 200,
            failure_rate: 0.0,
            random: 0x9E37_79B9_7F4A_7C15,
        }));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers `status` to every request from now on.
    pub fn answer(&self, status: u16) {
        self.shared.lock().unwrap().status = status;
    }

    /// Answers after `delay` from now on.
    pub fn delay(&self, delay: Duration) {
        self.shared.lock().unwrap().delay = delay;
    }

    /// Answers 500 to this share of requests, at random.
    pub fn fail_randomly(&self, rate: f64) {
        self.shared.lock().unwrap().failure_rate = rate;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Runs `look` over everything received so far without copying it
    /// (requests wait meanwhile), for receivers that got many.
    pub fn inspect<T>(&self, look: impl FnOnce(&[Received]) -> T) -> T {
        look(&self.shared.lock().unwrap().received)
    }

    /// How many times each webhook-id arrived.
    pub fn counts_by_webhook_id(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for received in self.received() {
            *counts
                .entry(received.header("webhook-id").to_owned())
                .or_default() += 1;
        }
        counts
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (delay, status) = {
        let mut shared = shared.lock().unwrap();
        let status = if shared.failure_rate > 0.0 && shared.next_random() < shared.failure_rate {
            500
        } else {
            shared.status
        };
        shared.received.push(Received {
            headers,
            body,
            at: Instant::now(),
            status,
        });
        (shared.delay, status)
    };
    tokio::time::sleep(delay).await;
    StatusCode::from_u16(status).unwrap()
}
