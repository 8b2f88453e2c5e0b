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
//! default; fan-out 1 with the config service on PostgreSQL; the path users
//! see, from the client's call (gRPC `Publish`, signed WABA webhooks) to the
//! receiver's 2xx; and delivery's memory with a large backlog for one slow
//! endpoint. Every figure issue 17 sets a target for is printed with it,
//! and `bench-results.json` holds each under a stable key (and the targets
//! under `targets`).
#![allow(clippy::unwrap_used)]

mod ceilings;
mod receiver;
mod stack;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use herald_bus::async_nats::{self, jetstream};
use serde_json::json;

use crate::{
    ceilings::{bare_latency, bare_pipeline, http_ceiling, jetstream_ceiling},
    receiver::BenchReceiver,
    stack::{ClientCall, Database, Durability, Latency, Stack},
};

/// Fixed rates (events per second) latency is measured at.
const LATENCY_RATES: [u64; 3] = [100, 1_000, 5_000];
/// How long each latency run publishes.
const LATENCY_SECONDS: u64 = 5;
/// The rate of the half-failing comparison.
const FAILING_RATE: u64 = 1_000;
/// The rate the client-path latencies are measured at.
const CLIENT_LATENCY_RATE: u64 = 1_000;
/// Client calls in flight for one-event calls.
const CLIENT_IN_FLIGHT: usize = 64;
/// Client calls in flight for batches of 100.
const CLIENT_BATCH_IN_FLIGHT: usize = 4;
/// Jobs queued for the slow endpoint of the backlog case.
const BACKLOG_JOBS: usize = 200_000;
/// How long the backlog case's receiver takes to answer.
const BACKLOG_RECEIVER_DELAY: Duration = Duration::from_millis(200);
/// How long delivery works on the backlog after fanout queued it all.
const BACKLOG_HOLD: Duration = Duration::from_secs(5);
/// The transformation of the `transform` case: ten lines that rename,
/// reformat and add a header, as a receiver migrating from another product
/// would; `data` stays, so latencies can still be read.
const BENCH_TRANSFORMATION: &str = r#"function handler(webhook) {
  const event = webhook.event;
  webhook.event = {
    type: event.event,
    organization: event.organizationId,
    occurredAt: new Date(event.timestamp).toISOString(),
    data: event.data,
  };
  webhook.headers = { "X-Bench-Kind": event.event.split(".")[0] };
  return webhook;
}"#;

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
    /// The cases to run (the ceilings always run).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ingest,fanout,transform,postgres,client,failing,backlog,durable,replicated"
    )]
    cases: Vec<Case>,
    /// The fan-outs of the `fanout` case.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    fanouts: Vec<usize>,
    /// The PostgreSQL server of the `postgres` case: a database of its own
    /// is created there and dropped afterwards (with `psql`).
    #[arg(
        long,
        env = "HERALD_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Case {
    /// Ingest alone: gRPC PublishStream and signed WABA batches.
    Ingest,
    /// Bus accept -> receiver 2xx at each fan-out, latency, memory.
    Fanout,
    /// Fan-out 1 with a 10-line transformation on every delivery, beside
    /// the plain fan-out 1.
    Transform,
    /// Fan-out 1 with the config service on PostgreSQL.
    Postgres,
    /// Client call -> receiver 2xx: gRPC Publish and WABA webhooks.
    Client,
    /// Latency with half of the endpoints failing.
    Failing,
    /// Delivery's memory with a large backlog for one slow endpoint.
    Backlog,
    /// The durable JetStream configuration.
    Durable,
    /// Fan-out 1 on a 3-node NATS cluster with streams replicated 3 times,
    /// beside the single server's figure.
    Replicated,
}

/// Issue 17's goal for a figure.
#[derive(Clone, Copy, Debug)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(target) => value >= target,
            Target::AtMost(target) => value <= target,
        }
    }

    fn shown(self, unit: &str) -> String {
        match self {
            Target::AtLeast(target) => format!(">= {}", shown(target, unit)),
            Target::AtMost(target) => format!("<= {}", shown(target, unit)),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("cannot install the TLS provider"))?;
    let duration = Duration::from_secs(args.seconds);
    let latency_duration = Duration::from_secs(LATENCY_SECONDS);
    let runs = |case: Case| args.cases.contains(&case);
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
    let bare_latencies = if runs(Case::Fanout) || runs(Case::Client) {
        let nats = Durability::Default.nats_server();
        let client = async_nats::connect(nats.url()).await?;
        bare_latency(
            &jetstream::new(client),
            &receiver,
            &LATENCY_RATES,
            latency_duration,
        )
        .await?
    } else {
        Vec::new()
    };
    for (rate, latency) in LATENCY_RATES.iter().zip(&bare_latencies) {
        report.latency(
            &format!("ceiling.bare_pipeline_latency_ms_at_{rate}_per_second"),
            &format!("bare pipeline latency at {} msgs/s", thousands(*rate)),
            *latency,
        );
    }
    let bare_latency_at = |rate: u64| {
        LATENCY_RATES
            .iter()
            .zip(&bare_latencies)
            .find(|(at, _)| **at == rate)
            .map(|(_, latency)| *latency)
    };

    let herald_binary = std::env::current_exe()?
        .parent()
        .context("the bench binary has a directory")?
        .join("herald");

    if runs(Case::Ingest) {
        report.section("Herald ingest (no endpoint subscribes)");
        let stack =
            Stack::start(&herald_binary, &[], Durability::Default, &Database::Sqlite).await?;
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
            Some(Target::AtLeast(0.5)),
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
            Some(Target::AtLeast(0.5)),
        );
        report.track_memory("ingest", &stack);
    }

    let mut default_throughput = None;
    let mut default_latency_1000 = None;
    if runs(Case::Fanout) {
        report.section("Herald end to end (bus accept -> receiver 2xx)");
        for &fanout in &args.fanouts {
            let urls = vec![receiver.url(); fanout];
            let stack = Stack::start(
                &herald_binary,
                &urls,
                Durability::Default,
                &Database::Sqlite,
            )
            .await?;
            let events = (args.deliveries / fanout.max(1)).max(100);
            let rate = throughput(
                &mut report,
                &stack,
                &receiver,
                events,
                &format!("herald.fanout_{fanout}"),
                &format!("fan-out {fanout}"),
                default_ceilings.bare,
                Some(Target::AtLeast(0.4)),
            )
            .await?;
            if fanout == 1 {
                default_throughput = Some(rate);
                for (rate, bare) in LATENCY_RATES.iter().zip(&bare_latencies) {
                    let latency = stack.latency(&receiver, *rate, latency_duration).await?;
                    let key = format!("herald.latency_ms_at_{rate}_per_second");
                    report.latency(
                        &key,
                        &format!("latency at {} events/s", thousands(*rate)),
                        latency,
                    );
                    let target = match rate {
                        1_000 => Some(Target::AtMost(2.0)),
                        5_000 => Some(Target::AtMost(4.0)),
                        _ => None,
                    };
                    report.ratio(
                        &format!("{key}.p99_ratio_of_bare_pipeline"),
                        "p99 as a multiple of the bare pipeline's",
                        latency.p99 / bare.p99,
                        target,
                    );
                    if *rate == 1_000 {
                        default_latency_1000 = Some(latency);
                    }
                }
                let memory = stack.memory_mib();
                for (service, _, peak) in &memory {
                    report.figure(
                        &format!("herald.peak_resident_mib.{service}"),
                        &format!("peak resident memory, herald {service}"),
                        *peak,
                        " MiB",
                    );
                }
                report.figure(
                    "herald.resident_mib",
                    "resident memory now, all Herald processes",
                    memory.iter().map(|(_, now, _)| now).sum(),
                    " MiB",
                );
            }
            report.track_memory(&format!("fan-out {fanout}"), &stack);
        }
    }

    if runs(Case::Transform) {
        report.section("Transformations, fan-out 1 (bus accept -> receiver 2xx)");
        let plain = match default_throughput {
            Some(rate) => rate,
            None => {
                let stack = Stack::start(
                    &herald_binary,
                    &[receiver.url()],
                    Durability::Default,
                    &Database::Sqlite,
                )
                .await?;
                throughput(
                    &mut report,
                    &stack,
                    &receiver,
                    args.deliveries,
                    "herald.fanout_1",
                    "fan-out 1, no transformation",
                    default_ceilings.bare,
                    None,
                )
                .await?
            }
        };
        let stack = Stack::start_transformed(
            &herald_binary,
            &[receiver.url()],
            Durability::Default,
            &Database::Sqlite,
            Some(BENCH_TRANSFORMATION),
        )
        .await?;
        let transformed = throughput(
            &mut report,
            &stack,
            &receiver,
            args.deliveries,
            "transform.fanout_1",
            "fan-out 1, a 10-line transformation on every delivery",
            default_ceilings.bare,
            None,
        )
        .await?;
        report.ratio(
            "transform.fanout_1.ratio_of_plain",
            "of fan-out 1 without a transformation",
            transformed / plain,
            Some(Target::AtLeast(0.7)),
        );
        report.track_memory("fan-out 1, transformed", &stack);
    }

    if runs(Case::Postgres) {
        report.section(
            "Herald end to end, config service on PostgreSQL (bus accept -> receiver 2xx)",
        );
        let database = PostgresDatabase::create(&args.postgres_url)?;
        let stack = Stack::start(
            &herald_binary,
            &[receiver.url()],
            Durability::Default,
            &Database::Postgres {
                url: database.url.clone(),
            },
        )
        .await?;
        throughput(
            &mut report,
            &stack,
            &receiver,
            args.deliveries,
            "herald.postgres.fanout_1",
            "fan-out 1",
            default_ceilings.bare,
            Some(Target::AtLeast(0.35)),
        )
        .await?;
        report.track_memory("PostgreSQL fan-out 1", &stack);
        drop(stack);
        drop(database);
    }

    if runs(Case::Client) {
        report.section("The path users see, fan-out 1 (client call -> receiver 2xx)");
        let stack = Stack::start(
            &herald_binary,
            &[receiver.url()],
            Durability::Default,
            &Database::Sqlite,
        )
        .await?;
        let calls = [
            (
                "publish_1",
                format!("gRPC Publish, 1 event per call, {CLIENT_IN_FLIGHT} in flight"),
                ClientCall::Publish { events: 1 },
                u64::try_from(args.deliveries)?,
                CLIENT_IN_FLIGHT,
                Some(Target::AtLeast(0.3)),
            ),
            (
                "publish_100",
                format!("gRPC Publish, 100 events per call, {CLIENT_BATCH_IN_FLIGHT} in flight"),
                ClientCall::Publish { events: 100 },
                u64::try_from(args.deliveries / 100)?.max(1),
                CLIENT_BATCH_IN_FLIGHT,
                None,
            ),
            (
                "waba_1",
                format!("signed WABA webhooks, 1 event each, {CLIENT_IN_FLIGHT} in flight"),
                ClientCall::Waba,
                u64::try_from(args.deliveries / 2)?,
                CLIENT_IN_FLIGHT,
                None,
            ),
        ];
        for (name, label, call, count, in_flight, target) in calls {
            let key = format!("herald.client.{name}");
            let before = stack.cpu_seconds_by_service();
            let nats_before = stack.cpu_seconds().1;
            let (rate, deliveries) = stack
                .client_throughput(&receiver, call, count, in_flight)
                .await?;
            report.figure(
                &format!("{key}.deliveries_per_second"),
                &format!("{label} ({} deliveries)", thousands(deliveries)),
                rate,
                "/s",
            );
            report.ratio(
                &format!("{key}.ratio_of_bare_pipeline"),
                "of the bare pipeline",
                rate / default_ceilings.bare,
                target,
            );
            report.cpu_by_service(&key, &stack, &before, nats_before, deliveries, None);
            let latency = stack
                .client_latency(&receiver, call, CLIENT_LATENCY_RATE, latency_duration)
                .await?;
            let latency_key = format!("{key}.latency_ms_at_{CLIENT_LATENCY_RATE}_per_second");
            report.latency(
                &latency_key,
                &format!("  latency at {} events/s", thousands(CLIENT_LATENCY_RATE)),
                latency,
            );
            if let Some(bare) = bare_latency_at(CLIENT_LATENCY_RATE) {
                report.ratio(
                    &format!("{latency_key}.p99_ratio_of_bare_pipeline"),
                    "p99 as a multiple of the bare pipeline's",
                    latency.p99 / bare.p99,
                    None,
                );
            }
        }
        report.track_memory("client path", &stack);
    }

    if runs(Case::Failing) {
        report.section(&format!(
            "Half of the endpoints failing (fan-out 2, {} events/s)",
            thousands(FAILING_RATE)
        ));
        half_failing(&mut report, &herald_binary, &receiver, latency_duration).await?;
    }

    if runs(Case::Backlog) {
        report.section(&format!(
            "Backlog: {} jobs for one endpoint answering after {} ms",
            thousands(u64::try_from(BACKLOG_JOBS)?),
            BACKLOG_RECEIVER_DELAY.as_millis()
        ));
        backlog(&mut report, &herald_binary).await?;
    }

    if runs(Case::Replicated) {
        report.section("Herald on a 3-node NATS cluster, streams replicated 3 times");
        let stack = Stack::start(
            &herald_binary,
            &[receiver.url()],
            Durability::Replicated,
            &Database::Sqlite,
        )
        .await?;
        let replicated = throughput(
            &mut report,
            &stack,
            &receiver,
            (args.deliveries / 2).max(1_000),
            "replicated.herald.fanout_1",
            "fan-out 1, R3",
            default_ceilings.bare,
            None,
        )
        .await?;
        if let Some(default_throughput) = default_throughput {
            report.ratio(
                "replicated.herald.fanout_1.ratio_of_r1",
                "of fan-out 1 on one server (R1)",
                replicated / default_throughput,
                None,
            );
        }
        report.track_memory("fan-out 1, R3", &stack);
    }

    if runs(Case::Durable) {
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
        let stack = Stack::start(
            &herald_binary,
            &[receiver.url()],
            Durability::SyncAlways,
            &Database::Sqlite,
        )
        .await?;
        let durable = throughput(
            &mut report,
            &stack,
            &receiver,
            (args.deliveries / 4).max(1_000),
            "durable.herald.fanout_1",
            "fan-out 1",
            durable_ceilings.bare,
            Some(Target::AtLeast(0.75)),
        )
        .await?;
        if let Some(default_throughput) = default_throughput {
            report.ratio(
                "durable.herald.fanout_1.ratio_of_default",
                "of Herald on the default configuration",
                durable / default_throughput,
                None,
            );
        }
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
                None,
            );
        }
        report.track_memory("durable fan-out 1", &stack);
    }

    report.section("Memory through the whole bench");
    let (peak_total, peak_stack) = report.peak_total.clone();
    report.figure_with_target(
        "herald.peak_resident_mib_total",
        &format!("peak resident memory, all Herald processes ({peak_stack})"),
        peak_total,
        " MiB",
        Some(Target::AtMost(256.0)),
    );

    report.summary();
    let mut results = report.results;
    results.insert(
        "targets".to_owned(),
        serde_json::Value::Object(report.targets),
    );
    std::fs::write(
        &args.output,
        serde_json::to_string_pretty(&serde_json::Value::Object(results))?,
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
/// the CPU time Herald (each service apart) and NATS spent per 1,000
/// deliveries.
#[allow(clippy::too_many_arguments)]
async fn throughput(
    report: &mut Report,
    stack: &Stack,
    receiver: &BenchReceiver,
    events: usize,
    key: &str,
    label: &str,
    bare: f64,
    target: Option<Target>,
) -> anyhow::Result<f64> {
    let before = stack.cpu_seconds_by_service();
    let nats_before = stack.cpu_seconds().1;
    let (rate, deliveries) = stack.throughput(receiver, events).await?;
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
        target,
    );
    let cpu_target = (key == "herald.fanout_1").then_some(Target::AtMost(0.10));
    report.cpu_by_service(key, stack, &before, nats_before, deliveries, cpu_target);
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
        &Database::Sqlite,
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
        "p99 with a failing neighbour / all healthy",
        degraded.p99 / baseline.p99,
        Some(Target::AtMost(2.0)),
    );
    report.track_memory("half failing", &stack);
    Ok(())
}

/// [`BACKLOG_JOBS`] jobs for one endpoint whose receiver answers slowly:
/// delivery's peak resident memory once fanout queued them all and
/// delivery worked on them for [`BACKLOG_HOLD`].
async fn backlog(report: &mut Report, herald_binary: &Path) -> anyhow::Result<()> {
    let slow = BenchReceiver::start().await?;
    slow.delay(BACKLOG_RECEIVER_DELAY);
    let stack = Stack::start(
        herald_binary,
        &[slow.url()],
        Durability::Default,
        &Database::Sqlite,
    )
    .await?;
    stack.publish_events(BACKLOG_JOBS).await?;
    stack.wait_fanned_out(Duration::from_secs(180)).await?;
    tokio::time::sleep(BACKLOG_HOLD).await;
    let memory = stack.memory_mib();
    let delivery = memory
        .iter()
        .find(|(service, _, _)| *service == "delivery")
        .map_or(0.0, |(_, _, peak)| *peak);
    report.figure_with_target(
        "herald.backlog.delivery_peak_resident_mib",
        "peak resident memory, herald delivery",
        delivery,
        " MiB",
        Some(Target::AtMost(128.0)),
    );
    report.figure(
        "herald.backlog.peak_resident_mib_total",
        "peak resident memory, all Herald processes",
        memory.iter().map(|(_, _, peak)| peak).sum(),
        " MiB",
    );
    report.figure(
        "herald.backlog.delivered",
        "  deliveries answered meanwhile",
        slow.received() as f64,
        "",
    );
    report.track_memory("backlog", &stack);
    Ok(())
}

/// A PostgreSQL database created for one stack and dropped with it.
struct PostgresDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    fn create(server_url: &str) -> anyhow::Result<PostgresDatabase> {
        let name = format!("herald_bench_{}", std::process::id());
        let (scheme, rest) = server_url
            .split_once("://")
            .context("the PostgreSQL URL has no scheme")?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let query = path.split_once('?').map(|(_, query)| query);
        let url = match query {
            Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
            None => format!("{scheme}://{authority}/{name}"),
        };
        let database = PostgresDatabase {
            server_url: server_url.to_owned(),
            name,
            url,
        };
        database.psql(&format!("DROP DATABASE IF EXISTS {}", database.name))?;
        database.psql(&format!("CREATE DATABASE {}", database.name))?;
        Ok(database)
    }

    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let output = Command::new(PathBuf::from("psql"))
            .arg(&self.server_url)
            .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
            .context("cannot run psql (the PostgreSQL case needs it)")?;
        anyhow::ensure!(
            output.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Err(error) = self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            eprintln!("cannot drop the benchmark database {}: {error}", self.name);
        }
    }
}

/// The printed table and the JSON results.
#[derive(Default)]
struct Report {
    results: serde_json::Map<String, serde_json::Value>,
    /// Each targeted figure's value, target and whether it was met.
    targets: serde_json::Map<String, serde_json::Value>,
    /// Every target, in the order measured, for the summary.
    checked: Vec<(String, String, bool)>,
    /// The highest total peak resident memory of a stack, and its name.
    peak_total: (f64, String),
}

impl Report {
    fn section(&self, title: &str) {
        println!();
        println!("{title}");
    }

    fn figure(&mut self, key: &str, label: &str, value: f64, unit: &str) {
        self.figure_with_target(key, label, value, unit, None);
    }

    fn figure_with_target(
        &mut self,
        key: &str,
        label: &str,
        value: f64,
        unit: &str,
        target: Option<Target>,
    ) {
        let shown = shown(value, unit);
        println!(
            "  {label:<62} {shown:>16}{}",
            self.check(key, value, unit, target)
        );
        self.results.insert(key.to_owned(), json!(value));
    }

    fn ratio(&mut self, key: &str, label: &str, value: f64, target: Option<Target>) {
        println!(
            "  {:<62} {:>16}{}",
            format!("  {label}"),
            format!("{value:.2}x"),
            self.check(key, value, "x", target)
        );
        self.results.insert(key.to_owned(), json!(value));
    }

    /// Records a target and returns how it is shown after the figure.
    fn check(&mut self, key: &str, value: f64, unit: &str, target: Option<Target>) -> String {
        let Some(target) = target else {
            return String::new();
        };
        let met = target.met(value);
        let (bound, limit) = match target {
            Target::AtLeast(limit) => ("at_least", limit),
            Target::AtMost(limit) => ("at_most", limit),
        };
        self.targets.insert(
            key.to_owned(),
            json!({"value": value, bound: limit, "met": met}),
        );
        let verdict = if met { "met" } else { "MISSED" };
        let summary = format!(
            "{} {} (target {})",
            key,
            shown(value, unit),
            target.shown(unit)
        );
        self.checked.push((summary, verdict.to_owned(), met));
        format!("  target {:<12} {verdict}", target.shown(unit))
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

    /// CPU seconds per 1,000 deliveries since `before`: Herald's total
    /// (against `target`), nats-server's beside it, then each service with
    /// its share of Herald's.
    fn cpu_by_service(
        &mut self,
        key: &str,
        stack: &Stack,
        before: &[(&'static str, f64)],
        nats_before: f64,
        deliveries: u64,
        target: Option<Target>,
    ) {
        let thousands_delivered = (deliveries as f64 / 1_000.0).max(f64::MIN_POSITIVE);
        let after = stack.cpu_seconds_by_service();
        let spent: Vec<(&str, f64)> = after
            .iter()
            .map(|(service, seconds)| {
                let earlier = before
                    .iter()
                    .find(|(name, _)| name == service)
                    .map_or(0.0, |(_, seconds)| *seconds);
                (*service, seconds - earlier)
            })
            .collect();
        let herald: f64 = spent.iter().map(|(_, seconds)| seconds).sum();
        self.figure_with_target(
            &format!("{key}.herald_cpu_seconds_per_1000_deliveries"),
            "  CPU seconds per 1,000 deliveries, Herald",
            herald / thousands_delivered,
            " s",
            target,
        );
        self.figure(
            &format!("{key}.nats_cpu_seconds_per_1000_deliveries"),
            "  CPU seconds per 1,000 deliveries, nats-server",
            (stack.cpu_seconds().1 - nats_before) / thousands_delivered,
            " s",
        );
        for (service, seconds) in spent {
            let share = if herald > 0.0 { seconds / herald } else { 0.0 };
            println!(
                "  {:<62} {:>16}",
                format!("    herald {service}"),
                format!(
                    "{:.3} s, {:.0} %",
                    seconds / thousands_delivered,
                    share * 100.0
                )
            );
            self.results.insert(
                format!("{key}.cpu_seconds_per_1000_deliveries.{service}"),
                json!(seconds / thousands_delivered),
            );
            self.results
                .insert(format!("{key}.cpu_share.{service}"), json!(share));
        }
    }

    /// Keeps the highest total peak resident memory of any stack so far.
    fn track_memory(&mut self, name: &str, stack: &Stack) {
        let total: f64 = stack.memory_mib().iter().map(|(_, _, peak)| peak).sum();
        if total > self.peak_total.0 {
            self.peak_total = (total, name.to_owned());
        }
    }

    /// Every target, met or missed, once more at the end.
    fn summary(&self) {
        if self.checked.is_empty() {
            return;
        }
        let missed = self.checked.iter().filter(|(_, _, met)| !met).count();
        println!();
        println!(
            "Targets of issue 17: {} met, {missed} missed",
            self.checked.len() - missed
        );
        for (summary, verdict, _) in &self.checked {
            println!("  {verdict:<7} {summary}");
        }
    }
}

/// A value with its unit, rounded for reading.
fn shown(value: f64, unit: &str) -> String {
    if value >= 100.0 {
        format!("{}{unit}", thousands(value.round() as u64))
    } else {
        format!("{value:.2}{unit}")
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
