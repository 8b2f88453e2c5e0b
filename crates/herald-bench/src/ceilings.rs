//! The raw ceilings of this machine: what a plain HTTP client, JetStream
//! and a bare single-hop pipeline (pull consumer, POST, publish a small
//! record, ack) reach without any of Herald's work.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use herald_bus::async_nats::jetstream;

use crate::{
    receiver::BenchReceiver,
    stack::{Latency, paced, wait_for_count},
};

pub async fn http_ceiling(receiver: &BenchReceiver, duration: Duration) -> anyhow::Result<f64> {
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

pub async fn jetstream_ceiling(
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
pub async fn bare_pipeline(
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
                bare_step(&client, &url, &jetstream, "bare-records.attempt", message).await
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

/// What the bare pipeline does with one message: POST it, publish a record
/// of the answer and wait for its ack, then ack the message.
async fn bare_step(
    client: &reqwest::Client,
    url: &str,
    jetstream: &jetstream::Context,
    record_subject: &'static str,
    message: jetstream::Message,
) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .body(message.payload.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    jetstream
        .publish(record_subject, Bytes::from(status.to_string()))
        .await?
        .await?;
    message
        .ack()
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))
}

/// The bare pipeline's latency, publish to 2xx, at each of `rates`
/// (messages per second) for `duration`: the floor under Herald's.
pub async fn bare_latency(
    jetstream: &jetstream::Context,
    receiver: &BenchReceiver,
    rates: &[u64],
    duration: Duration,
) -> anyhow::Result<Vec<Latency>> {
    jetstream
        .create_stream(jetstream::stream::Config {
            name: "BARE_LATENCY".into(),
            subjects: vec!["bare-latency.>".into()],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await?;
    jetstream
        .create_stream(jetstream::stream::Config {
            name: "BARE_LATENCY_RECORDS".into(),
            subjects: vec!["bare-latency-records.>".into()],
            ..Default::default()
        })
        .await?;
    let consumer = jetstream
        .get_stream("BARE_LATENCY")
        .await?
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("bare-latency".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await?;
    let client = reqwest::Client::builder().build()?;
    let url = receiver.url();
    let messages = consumer
        .stream()
        .max_messages_per_batch(150)
        .messages()
        .await?;
    let worker = {
        let jetstream = jetstream.clone();
        tokio::spawn(messages.for_each_concurrent(256, move |message| {
            let (client, url, jetstream) = (client.clone(), url.clone(), jetstream.clone());
            async move {
                let outcome = match message {
                    Ok(message) => {
                        bare_step(
                            &client,
                            &url,
                            &jetstream,
                            "bare-latency-records.attempt",
                            message,
                        )
                        .await
                    }
                    Err(error) => Err(anyhow::anyhow!("{error}")),
                };
                if let Err(error) = outcome {
                    eprintln!("bare pipeline error: {error}");
                }
            }
        }))
    };
    let mut latencies = Vec::new();
    for rate in rates {
        receiver.reset();
        let count = rate * duration.as_secs();
        paced(*rate, count, |_| async {
            let sent = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
            let ack = jetstream
                .publish(
                    "bare-latency.jobs",
                    Bytes::from(format!(r#"{{"data":{{"t":{sent}}}}}"#)),
                )
                .await?;
            tokio::spawn(async move { ack.await });
            Ok(())
        })
        .await?;
        wait_for_count(receiver, count, Duration::from_secs(60)).await?;
        latencies.push(Latency::of(receiver.latencies_ms())?);
    }
    worker.abort();
    Ok(latencies)
}
