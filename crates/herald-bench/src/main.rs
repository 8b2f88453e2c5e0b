//! `make bench`: measures Herald end to end beside the raw ceilings of the
//! same machine, in one run, and prints a table plus `bench-results.json`.
//!
//! Ceilings: a plain HTTP client POSTing to the benchmark receiver,
//! JetStream publish-with-ack (pipelined) and consume, and a bare single-hop
//! pipeline (pull consumer, POST, publish a small record, ack), its
//! throughput and its latency at fixed rates. Herald: the release
//! `herald config`, `ingest`, `fanout` and `delivery` binaries as separate
//! processes, with events published on the bus as ingest does: throughput
//! at fan-out 1, 10 and 100 with the CPU time it took, latency at fixed
//! rates, memory, latency with half of the endpoints failing, and the
//! durable JetStream configuration (`sync_interval: always`) beside the
//! default.
#![allow(clippy::unwrap_used)]

mod ceilings;
mod receiver;
mod stack;

use std::{path::Path, time::Duration};

use anyhow::Context;
use clap::Parser;
use herald_bus::async_nats::{self, jetstream};
use serde_json::json;

use crate::{
    ceilings::{bare_latency, bare_pipeline, http_ceiling, jetstream_ceiling},
    receiver::BenchReceiver,
    stack::{Durability, Latency, Stack},
};

/// Fixed rates (events per second) latency is measured at.
const LATENCY_RATES: [u64; 3] = [100, 1_000, 5_000];
/// How long each latency run publishes.
const LATENCY_SECONDS: u64 = 5;
/// The rate of the half-failing comparison.
const FAILING_RATE: u64 = 1_000;

#[derive(Debug, Parser)]
#[command(about = "Herald's throughput and latency beside this machine's raw ceilings")]
struct Args {
    /// Seconds each ceiling is measured for.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Events for the end-to-end throughput runs (divided by the fan-out).
    #[arg(long, default_value_t = 20_000)]
    deliveries: usize,
    /// Where to write the machine-readable results.
    #[arg(long, default_value = "bench-results.json")]
    output: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("cannot install the TLS provider"))?;
    let duration = Duration::from_secs(args.seconds);
    let latency_duration = Duration::from_secs(LATENCY_SECONDS);
    let mut report = Report::default();
    let receiver = BenchReceiver::start().await?;

    println!(
        "Herald benchmark on {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        time::OffsetDateTime::now_utc().date()
    );

    report.section("Ceilings");
    let http = http_ceiling(&receiver, duration).await?;
    report.figure(
        "ceiling.http_post_per_second",
        "plain reqwest POSTs to the receiver (64 concurrent)",
        http,
        "/s",
    );
    let default_ceilings = Ceilings::measure(
        &mut report,
        "ceiling",
        Durability::Default,
        &receiver,
        50_000,
        20_000,
    )
    .await?;
    let bare_latencies = {
        let nats = Durability::Default.nats_server();
        let client = async_nats::connect(nats.url()).await?;
        bare_latency(
            &jetstream::new(client),
            &receiver,
            &LATENCY_RATES,
            latency_duration,
        )
        .await?
    };
    for (rate, latency) in LATENCY_RATES.iter().zip(&bare_latencies) {
        report.latency(
            &format!("ceiling.bare_pipeline_latency_ms_at_{rate}_per_second"),
            &format!("bare pipeline latency at {} msgs/s", thousands(*rate)),
            *latency,
        );
    }

    let herald_binary = std::env::current_exe()?
        .parent()
        .context("the bench binary has a directory")?
        .join("herald");

    report.section("Herald ingest (no endpoint subscribes)");
    let stack = Stack::start(&herald_binary, &[], Durability::Default).await?;
    let grpc = stack.ingest_grpc(args.deliveries).await?;
    report.figure(
        "herald.ingest.grpc_publish_stream_per_second",
        "gRPC PublishStream (100 per message)",
        grpc,
        "/s",
    );
    report.ratio(
        "herald.ingest.grpc_ratio_of_jetstream_publish",
        "of JetStream publish with ack",
        grpc / default_ceilings.publish,
    );
    let waba = stack.ingest_waba(args.deliveries).await?;
    report.figure(
        "herald.ingest.waba_http_per_second",
        "signed WABA webhooks (50 per request)",
        waba,
        "/s",
    );
    report.ratio(
        "herald.ingest.waba_ratio_of_jetstream_publish",
        "of JetStream publish with ack",
        waba / default_ceilings.publish,
    );
    drop(stack);

    report.section("Herald end to end (bus accept -> receiver 2xx)");
    let mut default_throughput = 0.0;
    let mut default_latency_1000 = None;
    for fanout in [1_usize, 10, 100] {
        let urls = vec![receiver.url(); fanout];
        let stack = Stack::start(&herald_binary, &urls, Durability::Default).await?;
        let events = (args.deliveries / fanout).max(100);
        let rate = throughput(
            &mut report,
            &stack,
            &receiver,
            events,
            &format!("herald.fanout_{fanout}"),
            &format!("fan-out {fanout}"),
            default_ceilings.bare,
        )
        .await?;
        if fanout == 1 {
            default_throughput = rate;
            for (rate, bare) in LATENCY_RATES.iter().zip(&bare_latencies) {
                let latency = stack.latency(&receiver, *rate, latency_duration).await?;
                let key = format!("herald.latency_ms_at_{rate}_per_second");
                report.latency(
                    &key,
                    &format!("latency at {} events/s", thousands(*rate)),
                    latency,
                );
                report.ratio(
                    &format!("{key}.p99_ratio_of_bare_pipeline"),
                    "p99 as a multiple of the bare pipeline's",
                    latency.p99 / bare.p99,
                );
                if *rate == 1_000 {
                    default_latency_1000 = Some(latency);
                }
            }
            let memory = stack.memory_mib();
            let mut total_peak = 0.0;
            for (service, _, peak) in &memory {
                report.figure(
                    &format!("herald.peak_resident_mib.{service}"),
                    &format!("peak resident memory, herald {service}"),
                    *peak,
                    " MiB",
                );
                total_peak += peak;
            }
            report.figure(
                "herald.peak_resident_mib_total",
                "peak resident memory, all Herald processes",
                total_peak,
                " MiB",
            );
            report.figure(
                "herald.resident_mib",
                "resident memory now, all Herald processes",
                memory.iter().map(|(_, now, _)| now).sum(),
                " MiB",
            );
        }
        drop(stack);
    }

    report.section(&format!(
        "Half of the endpoints failing (fan-out 2, {} events/s)",
        thousands(FAILING_RATE)
    ));
    half_failing(&mut report, &herald_binary, &receiver, latency_duration).await?;

    report.section("Durable JetStream (sync_interval: always)");
    let durable_ceilings = Ceilings::measure(
        &mut report,
        "durable.ceiling",
        Durability::SyncAlways,
        &receiver,
        10_000,
        5_000,
    )
    .await?;
    let stack = Stack::start(&herald_binary, &[receiver.url()], Durability::SyncAlways).await?;
    let durable = throughput(
        &mut report,
        &stack,
        &receiver,
        (args.deliveries / 4).max(1_000),
        "durable.herald.fanout_1",
        "fan-out 1",
        durable_ceilings.bare,
    )
    .await?;
    report.ratio(
        "durable.herald.fanout_1.ratio_of_default",
        "of Herald on the default configuration",
        durable / default_throughput,
    );
    let latency = stack.latency(&receiver, 1_000, latency_duration).await?;
    report.latency(
        "durable.herald.latency_ms_at_1000_per_second",
        "latency at 1,000 events/s",
        latency,
    );
    if let Some(default) = default_latency_1000 {
        report.ratio(
            "durable.herald.latency_ms_at_1000_per_second.p99_ratio_of_default",
            "p99 as a multiple of the default configuration's",
            latency.p99 / default.p99,
        );
    }
    drop(stack);

    std::fs::write(
        &args.output,
        serde_json::to_string_pretty(&serde_json::Value::Object(report.results))?,
    )
    .with_context(|| format!("cannot write {}", args.output))?;
    println!();
    println!("wrote {}", args.output);
    Ok(())
}

/// The JetStream and bare-pipeline ceilings on one NATS server.
struct Ceilings {
    publish: f64,
    bare: f64,
}

impl Ceilings {
    async fn measure(
        report: &mut Report,
        prefix: &str,
        durability: Durability,
        receiver: &BenchReceiver,
        messages: usize,
        pipeline_messages: usize,
    ) -> anyhow::Result<Ceilings> {
        let nats = durability.nats_server();
        let client = async_nats::connect(nats.url()).await?;
        let jetstream = jetstream::new(client);
        let (publish, consume) = jetstream_ceiling(&jetstream, messages).await?;
        report.figure(
            &format!("{prefix}.jetstream_publish_per_second"),
            "JetStream publish with ack, pipelined (256 B)",
            publish,
            "/s",
        );
        report.figure(
            &format!("{prefix}.jetstream_consume_per_second"),
            "JetStream pull consume + ack (batches of 150)",
            consume,
            "/s",
        );
        let bare = bare_pipeline(&jetstream, receiver, pipeline_messages).await?;
        report.figure(
            &format!("{prefix}.bare_pipeline_per_second"),
            "bare pipeline: pull -> POST -> publish record -> ack",
            bare,
            "/s",
        );
        Ok(Ceilings { publish, bare })
    }
}

/// Sustained deliveries per second of `events` published at once, with
/// the CPU time Herald and NATS spent per 1,000 deliveries.
async fn throughput(
    report: &mut Report,
    stack: &Stack,
    receiver: &BenchReceiver,
    events: usize,
    key: &str,
    label: &str,
    bare: f64,
) -> anyhow::Result<f64> {
    let (herald_before, nats_before) = stack.cpu_seconds();
    let (rate, deliveries) = stack.throughput(receiver, events).await?;
    let (herald_after, nats_after) = stack.cpu_seconds();
    report.figure(
        &format!("{key}.deliveries_per_second"),
        &format!("{label} ({} deliveries)", thousands(deliveries)),
        rate,
        "/s",
    );
    report.ratio(
        &format!("{key}.ratio_of_bare_pipeline"),
        "of the bare pipeline",
        rate / bare,
    );
    let thousands_delivered = deliveries as f64 / 1_000.0;
    report.figure(
        &format!("{key}.herald_cpu_seconds_per_1000_deliveries"),
        "  CPU seconds per 1,000 deliveries, Herald",
        (herald_after - herald_before) / thousands_delivered,
        " s",
    );
    report.figure(
        &format!("{key}.nats_cpu_seconds_per_1000_deliveries"),
        "  CPU seconds per 1,000 deliveries, nats-server",
        (nats_after - nats_before) / thousands_delivered,
        " s",
    );
    Ok(rate)
}

/// One healthy and one failing endpoint: the healthy one's latency with
/// every endpoint healthy, then with the other answering 500.
async fn half_failing(
    report: &mut Report,
    herald_binary: &Path,
    healthy: &BenchReceiver,
    duration: Duration,
) -> anyhow::Result<()> {
    let failing = BenchReceiver::start().await?;
    let stack = Stack::start(
        herald_binary,
        &[healthy.url(), failing.url()],
        Durability::Default,
    )
    .await?;
    let baseline = stack.latency(healthy, FAILING_RATE, duration).await?;
    report.latency(
        "herald.half_failing.baseline_latency_ms",
        "healthy endpoint latency, both endpoints healthy",
        baseline,
    );
    failing.fail(true);
    let degraded = stack.latency(healthy, FAILING_RATE, duration).await?;
    report.latency(
        "herald.half_failing.latency_ms",
        "healthy endpoint latency, the other answering 500",
        degraded,
    );
    report.ratio(
        "herald.half_failing.p99_ratio",
        "p99 with a failing neighbour / all healthy (target <= 2)",
        degraded.p99 / baseline.p99,
    );
    drop(stack);
    Ok(())
}

/// The printed table and the JSON results.
#[derive(Default)]
struct Report {
    results: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn section(&self, title: &str) {
        println!();
        println!("{title}");
    }

    fn figure(&mut self, key: &str, label: &str, value: f64, unit: &str) {
        let shown = if value >= 100.0 {
            format!("{}{unit}", thousands(value.round() as u64))
        } else {
            format!("{value:.2}{unit}")
        };
        println!("  {label:<62} {shown:>16}");
        self.results.insert(key.to_owned(), json!(value));
    }

    fn ratio(&mut self, key: &str, label: &str, value: f64) {
        println!(
            "  {:<62} {:>16}",
            format!("  {label}"),
            format!("{value:.2}x")
        );
        self.results.insert(key.to_owned(), json!(value));
    }

    fn latency(&mut self, key: &str, label: &str, latency: Latency) {
        let shown = format!(
            "{:.2} / {:.2} / {:.1} ms",
            latency.p50, latency.p99, latency.max
        );
        println!("  {:<62} {shown:>16}", format!("{label}, p50 / p99 / max"));
        for (name, value) in [
            ("p50", latency.p50),
            ("p99", latency.p99),
            ("max", latency.max),
        ] {
            self.results.insert(format!("{key}.{name}"), json!(value));
        }
    }
}

/// `12345` as `12,345`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut shown = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            shown.push(',');
        }
        shown.push(digit);
    }
    shown
}
