//! The benchmark's webhook receiver: answers at once or after a set delay
//! (200, or 500 when told to fail), counts, and measures each successful
//! delivery's latency from the send time the event carries (`data.t`, or
//! `data.original.t` for a channel message, whose original is kept).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    failing: AtomicBool,
    delay_ms: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
}

#[derive(Debug)]
pub struct BenchReceiver {
    addr: SocketAddr,
    counters: Arc<Counters>,
}

impl BenchReceiver {
    pub async fn start() -> anyhow::Result<BenchReceiver> {
        let counters = Arc::new(Counters::default());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(counters.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("benchmark receiver failed: {error}");
            }
        });
        Ok(BenchReceiver { addr, counters })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Requests answered 2xx since the last reset.
    pub fn received(&self) -> u64 {
        self.counters.received.load(Ordering::Relaxed)
    }

    /// From now on answer 500 (`true`) or 200 (`false`).
    pub fn fail(&self, failing: bool) {
        self.counters.failing.store(failing, Ordering::Relaxed);
    }

    /// From now on answer each request only after `delay`.
    pub fn delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.counters.delay_ms.store(millis, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.counters.received.store(0, Ordering::Relaxed);
        if let Ok(mut latencies) = self.counters.latencies_ms.lock() {
            latencies.clear();
        }
    }

    pub fn latencies_ms(&self) -> Vec<f64> {
        self.counters
            .latencies_ms
            .lock()
            .map(|latencies| latencies.clone())
            .unwrap_or_default()
    }
}

async fn receive(State(counters): State<Arc<Counters>>, body: Bytes) -> StatusCode {
    let delay_ms = counters.delay_ms.load(Ordering::Relaxed);
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    if counters.failing.load(Ordering::Relaxed) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    counters.received.fetch_add(1, Ordering::Relaxed);
    let sent = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|envelope| {
            let data = &envelope["data"];
            data["t"]
                .as_i64()
                .or_else(|| data["original"]["t"].as_i64())
        });
    if let (Some(sent), Ok(mut latencies)) = (sent, counters.latencies_ms.lock()) {
        latencies.push((now - i128::from(sent)) as f64 / 1e6);
    }
    StatusCode::OK
}
