//! What the three channel receivers share once a body is authenticated and
//! parsed: turning normalised events into canonical ones and publishing them.

use std::sync::Arc;

use herald_bus::Bus;
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
    pub quotas: EventQuotas,
}

impl Shared {
    /// Whether a complete configuration is held: before that an unknown
    /// device may simply not have been learned yet.
    pub(crate) fn synced(&self) -> bool {
        *self.synced.borrow()
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
/// one was acknowledged. A retry of the same webhook republishes them all
/// and JetStream stores only the ones it lacks.
pub(crate) async fn publish_request(shared: &Arc<Shared>, events: &[Event]) -> Result<(), String> {
    let results = publish_all(&shared.bus, events).await;
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
