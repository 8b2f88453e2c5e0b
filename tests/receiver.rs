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

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Shared {
    received: Vec<Received>,
    delay: Duration,
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

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
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
    let delay = {
        let mut shared = shared.lock().unwrap();
        shared.received.push(Received {
            headers,
            body,
            at: Instant::now(),
        });
        shared.delay
    };
    tokio::time::sleep(delay).await;
    StatusCode::OK
}
