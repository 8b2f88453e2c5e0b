//! What the three channel receivers share once a body is authenticated and
//! parsed: turning normalised events into canonical ones and publishing them.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use herald_bus::{Bus, Claim, DedupeKeys};
use herald_core::{
    channel::Channel,
    event::{Event, EventError},
    id::{DeviceId, EventId, TenantId},
};
use herald_proto::v1::Device;
use herald_watch::ConfigCache;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{
    device_health::HealthRecorder,
    metrics::IngestMetrics,
    normalise::{NormalisedEvent, idempotency_key},
    publish::publish_all,
    quota::EventQuotas,
};

/// Everything the HTTP and gRPC edges share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub bus: Bus,
    pub cache: ConfigCache,
    pub synced: watch::Receiver<bool>,
    pub metrics: IngestMetrics,
    pub max_body_bytes: usize,
    pub dedupe: DedupeKeys,
    pub horizons: DedupeHorizons,
    pub quotas: EventQuotas,
    pub health: Arc<HealthRecorder>,
}

/// How long each channel's idempotency keys are remembered: as long as the
/// channel retries a webhook that was not answered 200.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DedupeHorizons {
    pub waba: Duration,
    pub telegram: Duration,
    pub whatsapp: Duration,
}

impl DedupeHorizons {
    fn of(&self, channel: Channel) -> Duration {
        match channel {
            Channel::Waba => self.waba,
            Channel::Telegram => self.telegram,
            // Herald's own events never come through a receiver.
            Channel::Whatsapp | Channel::Internal => self.whatsapp,
        }
    }
}

impl Shared {
    /// Whether a complete configuration is held: before that an unknown
    /// device may simply not have been learned yet.
    pub(crate) fn synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Takes `count` events from the tenant's events quota, its own as the
    /// cache holds it now, or says how long to wait before they would fit.
    pub(crate) fn take_quota(&self, tenant: &TenantId, count: usize) -> Result<(), Duration> {
        let own = self
            .cache
            .snapshot()
            .tenants
            .get(tenant.as_str())
            .map(herald_proto::tenant_quotas)
            .unwrap_or_default();
        self.quotas.take(tenant, &own, count)
    }
}

/// The device a webhook came through, resolved from the configuration.
#[derive(Clone, Debug)]
pub(crate) struct DeviceContext {
    pub tenant: TenantId,
    pub device: DeviceId,
    pub channel: Channel,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DeviceError {
    #[error("device {device} has an invalid {field} in the configuration")]
    Corrupt { device: String, field: &'static str },
}

impl DeviceContext {
    pub(crate) fn new(device: &Device, channel: Channel) -> Result<DeviceContext, DeviceError> {
        let corrupt = |field| DeviceError::Corrupt {
            device: device.id.clone(),
            field,
        };
        Ok(DeviceContext {
            tenant: TenantId::parse(&device.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            device: DeviceId::parse(&device.id).map_err(|_| corrupt("id"))?,
            channel,
        })
    }
}

/// Canonical events from normalised ones, each checked against the event
/// rules (its data must fit what fanout and delivery accept).
pub(crate) fn canonical(
    normalised: Vec<NormalisedEvent>,
    device: &DeviceContext,
    now: OffsetDateTime,
) -> Result<Vec<Event>, EventError> {
    normalised
        .into_iter()
        .map(|event| {
            let event = Event {
                id: EventId::generate(),
                tenant_id: device.tenant,
                channel: device.channel,
                device_id: Some(device.device),
                event_type: event.event_type,
                occurred_at: event.occurred_at.unwrap_or(now),
                received_at: now,
                source_ref: event.source_ref,
                idempotency_key: idempotency_key(
                    device.channel.as_str(),
                    device.device.as_str(),
                    &event.source_key,
                ),
                data: event.data,
            };
            event.validate()?;
            Ok(event)
        })
        .collect()
}

/// Publishes a request's events; `Err` (with the bus's reason) unless every
/// one was stored. A retry of the same webhook republishes only what is not
/// stored yet: within the stream's duplicate window JetStream drops repeated
/// message ids, and beyond it, for the channel's retry horizon, the claimed
/// idempotency keys do (see [`claim_keys`]).
pub(crate) async fn publish_request(
    shared: &Arc<Shared>,
    events: Vec<Event>,
) -> Result<(), String> {
    let events = claim_keys(shared, events).await?;
    let results = publish_all(&shared.bus, &events).await;
    let mut failure = None;
    for (event, result) in events.iter().zip(results) {
        match result {
            Ok(acked) if !acked.duplicate => {
                shared
                    .metrics
                    .event_accepted(event.channel, &event.event_type);
            }
            Ok(_) => {}
            Err(error) => failure = Some(error),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The events still to publish: each claims its idempotency key first, and
/// one whose key an earlier event holds is left out if that event is stored.
/// A key can be held by an event that was never stored (the process died
/// between claim and publish): that event is published now, under the id
/// the claim names, so a key still maps to one event.
async fn claim_keys(shared: &Shared, events: Vec<Event>) -> Result<Vec<Event>, String> {
    let claims = join_all(events.iter().map(|event| {
        shared.dedupe.claim(
            &event.idempotency_key,
            event.id.as_str(),
            shared.horizons.of(event.channel),
        )
    }))
    .await;
    let mut to_publish = Vec::with_capacity(events.len());
    for (mut event, claim) in events.into_iter().zip(claims) {
        match claim.map_err(|error| error.to_string())? {
            Claim::New => to_publish.push(event),
            Claim::Held(holder) => {
                let Ok(holder) = EventId::parse(&holder) else {
                    return Err(format!(
                        "the deduplication bucket names an invalid event id {holder:?}"
                    ));
                };
                let stored = shared
                    .bus
                    .find_event(&event.tenant_id, &holder)
                    .await
                    .map_err(|error| error.to_string())?;
                if stored.is_none() {
                    event.id = holder;
                    to_publish.push(event);
                }
            }
        }
    }
    Ok(to_publish)
}
