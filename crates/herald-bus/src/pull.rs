//! How every consumer of Herald pulls.
//!
//! async-nats's defaults (a 30 s pull expiry and no idle heartbeat) let a
//! lost pull request stall a consumer for 35 s: a pull answered "no
//! responders" while a replicated consumer elects its leader, or dropped by
//! a server that restarted, is only replaced once it would have expired,
//! plus 5 s. Here a pull expires after a few seconds, the server sends idle
//! heartbeats meanwhile, and any failure (no responders, a missed
//! heartbeat, a pull refused) drops the pull and sends a fresh one after at
//! most a second.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{PullConsumer, pull},
};
use futures::{Stream, StreamExt, stream::BoxStream};

/// How long one pull request waits at the server for messages.
const PULL_EXPIRY: Duration = Duration::from_secs(5);
/// The same for a consumer with a pinned client (see
/// [`crate::FIFO_FANOUT_PIN_TIMEOUT`]).
const PINNED_PULL_EXPIRY: Duration = Duration::from_secs(2);
/// The server says it still holds the pull this often while it has nothing
/// to send; two missed in a row mean the pull is gone.
const IDLE_HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a consumer's info may take before it is asked again.
const INFO_TIMEOUT: Duration = Duration::from_secs(1);
/// First and longest pause before pulling again after a failed pull.
const REPULL_FIRST: Duration = Duration::from_millis(50);
const REPULL_LONGEST: Duration = Duration::from_secs(1);

/// Which consumers of a process have a pull standing, by durable name.
pub(crate) type PullingConsumers = Arc<Mutex<HashMap<String, bool>>>;

/// A consumer's messages, as [`crate::Bus::pull`] pulls them. It never ends:
/// a failed pull is replaced, so readers loop over it until they stop.
pub struct Pull {
    messages: BoxStream<'static, jetstream::Message>,
}

impl Pull {
    pub(crate) fn new(consumer: PullConsumer, batch: usize, pulling: PullingConsumers) -> Pull {
        let state = Puller {
            name: consumer.cached_info().name.clone(),
            consumer,
            batch: batch.max(1),
            messages: None,
            wait: REPULL_FIRST,
            pulling,
        };
        let messages = futures::stream::unfold(state, |mut state| async move {
            let message = state.next().await;
            Some((message, state))
        });
        Pull {
            messages: messages.boxed(),
        }
    }
}

impl Stream for Pull {
    type Item = jetstream::Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.messages.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pull").finish_non_exhaustive()
    }
}

struct Puller {
    consumer: PullConsumer,
    name: String,
    batch: usize,
    messages: Option<pull::Stream>,
    /// The pause before the next pull if this one fails.
    wait: Duration,
    pulling: PullingConsumers,
}

impl Puller {
    async fn next(&mut self) -> jetstream::Message {
        loop {
            let messages = match &mut self.messages {
                Some(messages) => messages,
                None => match self.open().await {
                    Ok(messages) => {
                        self.set_pulling(true);
                        self.messages.insert(messages)
                    }
                    Err(error) => {
                        self.failed(error).await;
                        continue;
                    }
                },
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    self.wait = REPULL_FIRST;
                    return message;
                }
                Some(Err(error)) => self.failed(error.to_string()).await,
                None => self.failed("the pull ended".to_owned()).await,
            }
        }
    }

    /// A consumer info answered proves the consumer and its leader are
    /// there, so the pull that follows has someone to answer it.
    async fn open(&mut self) -> Result<pull::Stream, String> {
        // Asked again soon rather than waited on: while the consumer elects
        // a leader nobody answers, and the pull should start as soon as
        // one does.
        tokio::time::timeout(INFO_TIMEOUT, self.consumer.info())
            .await
            .map_err(|_| format!("the consumer's info did not come within {INFO_TIMEOUT:?}"))?
            .map_err(|error| format!("cannot read the consumer's info: {error}"))?;
        let pull = self
            .consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .heartbeat(IDLE_HEARTBEAT);
        // A consumer pinned to one client per priority group loses the pin
        // to another client when its pulls lapse for the group's timeout:
        // they expire well within it.
        let pull = match self.consumer.cached_info().config.priority_groups.first() {
            Some(group) => pull.group(group.clone()).expires(PINNED_PULL_EXPIRY),
            None => pull.expires(PULL_EXPIRY),
        };
        pull.messages()
            .await
            .map_err(|error| format!("cannot pull: {error}"))
    }

    async fn failed(&mut self, error: String) {
        self.messages = None;
        self.set_pulling(false);
        if self.wait == REPULL_FIRST {
            tracing::warn!(consumer = %self.name, %error, "a pull failed; pulling again");
        } else {
            tracing::debug!(consumer = %self.name, %error, retry_in = ?self.wait, "a pull failed again; pulling again");
        }
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(REPULL_LONGEST);
    }

    fn set_pulling(&self, pulling: bool) {
        if let Ok(mut consumers) = self.pulling.lock() {
            consumers.insert(self.name.clone(), pulling);
        }
    }
}

impl Drop for Puller {
    fn drop(&mut self) {
        if let Ok(mut consumers) = self.pulling.lock() {
            consumers.remove(&self.name);
        }
    }
}
