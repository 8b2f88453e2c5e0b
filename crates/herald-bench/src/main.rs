//! `make bench`: measures Herald end to end beside the raw ceilings of the
//! same machine, in one run, and prints a table plus `bench-results.json`.
//!
//! Ceilings: a plain HTTP client POSTing to the benchmark receiver,
//! JetStream publish-with-ack (pipelined) and consume, and a bare single-hop
//! pipeline (pull consumer, POST, publish a small record, ack). Herald: the
//! release `herald config`, `fanout` and `delivery` binaries as separate
//! processes, with events published on the bus as ingest does.
#![allow(clippy::unwrap_used)]

mod receiver;
mod stack;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use herald_bus::async_nats::{self, jetstream};
use herald_testkit::NatsServer;
use serde_json::json;

use crate::{receiver::BenchReceiver, stack::Stack};

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
    let mut results = serde_json::Map::new();
    let receiver = BenchReceiver::start().await?;

    println!(
        "Herald benchmark on {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        time::OffsetDateTime::now_utc().date()
    );
    println!();
    println!("{:<58} {:>14}", "measurement", "result");

    let http = http_ceiling(&receiver, duration).await?;
    report(
        &mut results,
        "ceiling.http_post_per_second",
        "plain reqwest POSTs to the receiver (64 concurrent)",
        http,
        "/s",
    );

    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await?;
    let jetstream = jetstream::new(client.clone());
    let (publish, consume) = jetstream_ceiling(&jetstream, 50_000).await?;
    report(
        &mut results,
        "ceiling.jetstream_publish_per_second",
        "JetStream publish with ack, pipelined (256 B)",
        publish,
        "/s",
    );
    report(
        &mut results,
        "ceiling.jetstream_consume_per_second",
        "JetStream pull consume + ack (batches of 150)",
        consume,
        "/s",
    );

    let bare = bare_pipeline(&jetstream, &receiver, 20_000).await?;
    report(
        &mut results,
        "ceiling.bare_pipeline_per_second",
        "bare pipeline: pull -> POST -> publish record -> ack",
        bare,
        "/s",
    );
    drop(nats);

    let herald_binary = std::env::current_exe()?
        .parent()
        .context("the bench binary has a directory")?
        .join("herald");

    // Ingest on its own: no endpoint subscribes, so fanout only acknowledges.
    let stack = Stack::start(&herald_binary, &receiver, 0).await?;
    let grpc = stack.ingest_grpc(args.deliveries).await?;
    report(
        &mut results,
        "herald.ingest.grpc_publish_stream_per_second",
        "Herald ingest, gRPC PublishStream (100 per message)",
        grpc,
        "/s",
    );
    report(
        &mut results,
        "herald.ingest.grpc_ratio_of_jetstream_publish",
        "  as a share of JetStream publish with ack",
        grpc / publish,
        "",
    );
    let waba = stack.ingest_waba(args.deliveries).await?;
    report(
        &mut results,
        "herald.ingest.waba_http_per_second",
        "Herald ingest, signed WABA webhooks (50 per request)",
        waba,
        "/s",
    );
    report(
        &mut results,
        "herald.ingest.waba_ratio_of_jetstream_publish",
        "  as a share of JetStream publish with ack",
        waba / publish,
        "",
    );
    stack.stop();

    for fanout in [1_usize, 10] {
        let stack = Stack::start(&herald_binary, &receiver, fanout).await?;
        let events = (args.deliveries / fanout).max(100);
        let rate = stack.throughput(&receiver, events).await?;
        report(
            &mut results,
            &format!("herald.fanout_{fanout}.deliveries_per_second"),
            &format!(
                "Herald end to end, fan-out {fanout} ({} deliveries)",
                events * fanout
            ),
            rate,
            "/s",
        );
        report(
            &mut results,
            &format!("herald.fanout_{fanout}.ratio_of_bare_pipeline"),
            "  as a share of the bare pipeline",
            rate / bare,
            "",
        );
        if fanout == 1 {
            let latency = stack
                .latency(&receiver, 1_000, Duration::from_secs(5))
                .await?;
            for (name, value) in [
                ("p50", latency.p50),
                ("p99", latency.p99),
                ("max", latency.max),
            ] {
                report(
                    &mut results,
                    &format!("herald.latency_ms_at_1000_per_second.{name}"),
                    &format!("Herald latency at 1,000 events/s, {name} (bus accept -> 2xx)"),
                    value,
                    " ms",
                );
            }
            let memory = stack.resident_memory_mib();
            report(
                &mut results,
                "herald.resident_mib",
                "resident memory of the Herald processes",
                memory,
                " MiB",
            );
        }
        stack.stop();
    }

    std::fs::write(
        &args.output,
        serde_json::to_string_pretty(&serde_json::Value::Object(results))?,
    )
    .with_context(|| format!("cannot write {}", args.output))?;
    println!();
    println!("wrote {}", args.output);
    Ok(())
}

fn report(
    results: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    label: &str,
    value: f64,
    unit: &str,
) {
    let shown = if value >= 100.0 {
        format!("{value:.0}{unit}")
    } else {
        format!("{value:.2}{unit}")
    };
    println!("{label:<58} {shown:>14}");
    results.insert(key.to_owned(), json!(value));
}

async fn http_ceiling(receiver: &BenchReceiver, duration: Duration) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder().build()?;
    let url = receiver.url();
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, count) = (client.clone(), url.clone(), count.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if client
                        .post(&url)
                        .body(r#"{"ceiling":true}"#)
                        .send()
                        .await
                        .is_ok()
                    {
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    Ok(count.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn jetstream_ceiling(
    jetstream: &jetstream::Context,
    messages: usize,
) -> anyhow::Result<(f64, f64)> {
    jetstream
        .create_stream(jetstream::stream::Config {
            name: "CEILING".into(),
            subjects: vec!["ceiling.>".into()],
            ..Default::default()
        })
        .await?;
    let payload = Bytes::from(vec![b'x'; 256]);
    let started = Instant::now();
    let mut acks = Vec::with_capacity(1_000);
    for index in 0..messages {
        acks.push(
            jetstream
                .publish("ceiling.publish", payload.clone())
                .await?,
        );
        if acks.len() == 1_000 || index + 1 == messages {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    let publish = messages as f64 / started.elapsed().as_secs_f64();

    let stream = jetstream.get_stream("CEILING").await?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("ceiling".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut consumed = 0;
    let mut stream = consumer
        .stream()
        .max_messages_per_batch(150)
        .messages()
        .await?;
    while consumed < messages {
        let message = stream
            .next()
            .await
            .context("the consumer ended")?
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        message
            .ack()
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        consumed += 1;
    }
    let consume = messages as f64 / started.elapsed().as_secs_f64();
    Ok((publish, consume))
}

/// The least a delivery pipeline does: no fanout, signing or database.
async fn bare_pipeline(
    jetstream: &jetstream::Context,
    receiver: &BenchReceiver,
    messages: usize,
) -> anyhow::Result<f64> {
    jetstream
        .create_stream(jetstream::stream::Config {
            name: "BARE".into(),
            subjects: vec!["bare.>".into()],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await?;
    jetstream
        .create_stream(jetstream::stream::Config {
            name: "BARE_RECORDS".into(),
            subjects: vec!["bare-records.>".into()],
            ..Default::default()
        })
        .await?;
    let payload = Bytes::from(r#"{"id":"evt_bench","data":{"n":1}}"#);
    let mut acks = Vec::new();
    for _ in 0..messages {
        acks.push(jetstream.publish("bare.jobs", payload.clone()).await?);
        if acks.len() == 1_000 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    let consumer = jetstream
        .get_stream("BARE")
        .await?
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("bare".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await?;
    let client = reqwest::Client::builder().build()?;
    let url = receiver.url();
    let started = Instant::now();
    let done = consumer
        .stream()
        .max_messages_per_batch(150)
        .messages()
        .await?
        .take(messages)
        .map(|message| {
            let (client, url, jetstream) = (client.clone(), url.clone(), jetstream.clone());
            async move {
                let message = message.map_err(|error| anyhow::anyhow!("{error}"))?;
                let response = client
                    .post(&url)
                    .body(message.payload.clone())
                    .send()
                    .await?;
                let status = response.status().as_u16();
                jetstream
                    .publish("bare-records.attempt", Bytes::from(status.to_string()))
                    .await?
                    .await?;
                message
                    .ack()
                    .await
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(256)
        .fold(0_usize, |done, result| async move {
            if let Err(error) = result {
                eprintln!("bare pipeline error: {error}");
            }
            done + 1
        })
        .await;
    Ok(done as f64 / started.elapsed().as_secs_f64())
}
