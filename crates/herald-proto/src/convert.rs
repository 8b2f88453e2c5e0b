//! Conversions between herald-core's domain types and their wire forms.
//!
//! Decoding from the wire validates everything herald-core would, and each
//! error names the offending field, so a malformed message from another
//! process is refused at the boundary instead of travelling further.

use std::{borrow::Cow, collections::BTreeSet};

use herald_core::{
    catalog::EventType,
    channel::Channel,
    device_health::HealthSummary,
    event::{Event, parse_data},
    id::{DeviceId, EventId, TenantId},
    matching::{DeviceFilter, EventTypeFilter, Subscription},
    quota::{TenantQuotaError, TenantQuotas},
    token::Scope,
};
use time::OffsetDateTime;

use crate::v1;

/// A wire message that does not make a valid domain value.
#[derive(Debug, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct WireError {
    /// The protobuf field, e.g. `event.tenant_id`.
    pub field: Cow<'static, str>,
    pub reason: String,
}

/// What an endpoint subscribes to, as fanout and replay match events.
pub fn endpoint_subscription(endpoint: &v1::Endpoint) -> Result<Subscription, WireError> {
    let spec = endpoint.spec.clone().unwrap_or_default();
    let tenant_id = TenantId::parse(&endpoint.tenant_id)
        .map_err(|error| WireError::new("endpoint.tenant_id", error))?;
    let devices = if spec.all_devices || spec.device_ids.is_empty() {
        DeviceFilter::All
    } else {
        DeviceFilter::Only(
            spec.device_ids
                .iter()
                .map(|id| DeviceId::parse(id))
                .collect::<Result<BTreeSet<_>, _>>()
                .map_err(|error| WireError::new("endpoint.spec.device_ids", error))?,
        )
    };
    Ok(Subscription {
        tenant_id,
        devices,
        event_types: event_type_filter(&spec)?,
    })
}

/// The event types an endpoint's spec subscribes to.
pub(crate) fn event_type_filter(spec: &v1::EndpointSpec) -> Result<EventTypeFilter, WireError> {
    if spec.all_event_types || spec.event_types.is_empty() {
        return Ok(EventTypeFilter::All);
    }
    Ok(EventTypeFilter::Only(
        spec.event_types
            .iter()
            .map(|name| EventType::parse(name))
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|error| WireError::new("endpoint.spec.event_types", error))?,
    ))
}

impl WireError {
    pub(crate) fn new(field: impl Into<Cow<'static, str>>, reason: impl ToString) -> WireError {
        WireError {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl TryFrom<&v1::TenantQuotas> for TenantQuotas {
    type Error = TenantQuotaError;

    fn try_from(quotas: &v1::TenantQuotas) -> Result<TenantQuotas, TenantQuotaError> {
        TenantQuotas::new(
            quotas.events_per_second,
            quotas.events_burst,
            quotas.max_in_flight_deliveries,
            quotas.max_dead_letters,
        )
    }
}

impl From<&TenantQuotas> for v1::TenantQuotas {
    fn from(quotas: &TenantQuotas) -> v1::TenantQuotas {
        v1::TenantQuotas {
            events_per_second: quotas.events_per_second().unwrap_or_default(),
            events_burst: quotas.events_burst().unwrap_or_default(),
            max_in_flight_deliveries: quotas.max_in_flight_deliveries().unwrap_or_default(),
            max_dead_letters: quotas.max_dead_letters().unwrap_or_default(),
        }
    }
}

impl TryFrom<v1::TokenScope> for Scope {
    type Error = WireError;

    fn try_from(scope: v1::TokenScope) -> Result<Scope, WireError> {
        match scope {
            v1::TokenScope::Tenant => Ok(Scope::Tenant),
            v1::TokenScope::Read => Ok(Scope::Read),
            v1::TokenScope::Publish => Ok(Scope::Publish),
            v1::TokenScope::Unspecified => Err(WireError::new("token.scope", "must be set")),
        }
    }
}

/// The tenant's quotas as a service applies them: what the config service
/// stored was checked, so a value out of range (written by a newer release
/// with other bounds) only leaves that tenant on the defaults.
pub fn tenant_quotas(tenant: &v1::Tenant) -> TenantQuotas {
    tenant
        .quotas
        .as_ref()
        .and_then(|quotas| TenantQuotas::try_from(quotas).ok())
        .unwrap_or_default()
}

impl From<&HealthSummary> for v1::DeviceHealth {
    fn from(summary: &HealthSummary) -> v1::DeviceHealth {
        v1::DeviceHealth {
            last_webhook_at: summary.last_webhook_at.map(timestamp_to_wire),
            events_24h: summary.events_24h,
            verification_failures_24h: summary.verification_failures_24h,
            last_refusal_at: summary
                .last_refusal
                .as_ref()
                .map(|(at, _)| timestamp_to_wire(*at)),
            last_refusal_reason: summary
                .last_refusal
                .as_ref()
                .map(|(_, reason)| reason.clone())
                .unwrap_or_default(),
        }
    }
}

impl From<Channel> for v1::Channel {
    fn from(channel: Channel) -> v1::Channel {
        match channel {
            Channel::Whatsapp => v1::Channel::Whatsapp,
            Channel::Telegram => v1::Channel::Telegram,
            Channel::Waba => v1::Channel::Waba,
            Channel::Internal => v1::Channel::Internal,
        }
    }
}

impl TryFrom<v1::Channel> for Channel {
    type Error = WireError;

    fn try_from(channel: v1::Channel) -> Result<Channel, WireError> {
        match channel {
            v1::Channel::Whatsapp => Ok(Channel::Whatsapp),
            v1::Channel::Telegram => Ok(Channel::Telegram),
            v1::Channel::Waba => Ok(Channel::Waba),
            v1::Channel::Internal => Ok(Channel::Internal),
            v1::Channel::Unspecified => Err(WireError::new("channel", "must be set")),
        }
    }
}

/// Nanosecond precision survives the round trip.
pub fn timestamp_to_wire(moment: OffsetDateTime) -> prost_types::Timestamp {
    let nanos = moment.unix_timestamp_nanos();
    prost_types::Timestamp {
        seconds: moment.unix_timestamp(),
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

pub fn timestamp_from_wire(
    field: &'static str,
    timestamp: Option<prost_types::Timestamp>,
) -> Result<OffsetDateTime, WireError> {
    let timestamp = timestamp.ok_or_else(|| WireError::new(field, "must be set"))?;
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(WireError::new(field, "nanos must be within 0..1e9"));
    }
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|error| WireError::new(field, error))
}

impl From<&Event> for v1::Event {
    fn from(event: &Event) -> v1::Event {
        v1::Event {
            id: event.id.to_string(),
            tenant_id: event.tenant_id.to_string(),
            channel: v1::Channel::from(event.channel).into(),
            device_id: event
                .device_id
                .map(|device| device.to_string())
                .unwrap_or_default(),
            r#type: event.event_type.as_str().to_owned(),
            occurred_at: Some(timestamp_to_wire(event.occurred_at)),
            received_at: Some(timestamp_to_wire(event.received_at)),
            source_ref: event.source_ref.clone().unwrap_or_default(),
            idempotency_key: event.idempotency_key.clone(),
            data: bytes::Bytes::copy_from_slice(event.data.get().as_bytes()),
        }
    }
}

impl TryFrom<v1::Event> for Event {
    type Error = WireError;

    fn try_from(wire: v1::Event) -> Result<Event, WireError> {
        let channel = v1::Channel::try_from(wire.channel)
            .map_err(|_| WireError::new("event.channel", format!("unknown value {}", wire.channel)))
            .and_then(|channel| {
                Channel::try_from(channel)
                    .map_err(|error| WireError::new("event.channel", error.reason))
            })?;
        let device_id = match wire.device_id.as_str() {
            "" => None,
            device => Some(
                DeviceId::parse(device)
                    .map_err(|error| WireError::new("event.device_id", error))?,
            ),
        };
        let event = Event {
            id: EventId::parse(&wire.id).map_err(|error| WireError::new("event.id", error))?,
            tenant_id: TenantId::parse(&wire.tenant_id)
                .map_err(|error| WireError::new("event.tenant_id", error))?,
            channel,
            device_id,
            event_type: EventType::parse(&wire.r#type)
                .map_err(|error| WireError::new("event.type", error))?,
            occurred_at: timestamp_from_wire("event.occurred_at", wire.occurred_at)?,
            received_at: timestamp_from_wire("event.received_at", wire.received_at)?,
            source_ref: Some(wire.source_ref).filter(|source_ref| !source_ref.is_empty()),
            idempotency_key: wire.idempotency_key,
            data: parse_data(&wire.data).map_err(|error| WireError::new("event.data", error))?,
        };
        event
            .validate()
            .map_err(|error| WireError::new("event", error))?;
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use time::macros::datetime;

    fn sample_event() -> Event {
        Event {
            id: EventId::generate(),
            tenant_id: TenantId::generate(),
            channel: Channel::Waba,
            device_id: Some(DeviceId::generate()),
            event_type: EventType::parse("message.received").unwrap(),
            occurred_at: datetime!(2026-11-25 10:00:00.123456789 UTC),
            received_at: datetime!(2026-11-25 10:00:01 UTC),
            source_ref: Some("wamid.HBgLMTU1NTA".to_owned()),
            idempotency_key: "wamid.HBgLMTU1NTA:received".to_owned(),
            data: parse_data(br#"{"n": 12345678901234567890123, "text": "ol\u00e1 \ud83d\udc4b"}"#)
                .unwrap(),
        }
    }

    #[test]
    fn an_event_survives_encoding_byte_for_byte() {
        let event = sample_event();
        let bytes = v1::Event::from(&event).encode_to_vec();
        let decoded = Event::try_from(v1::Event::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(decoded.data.get(), event.data.get());
        assert_eq!(decoded.occurred_at, event.occurred_at);
    }

    #[test]
    fn an_event_without_device_or_source_round_trips() {
        let event = Event {
            device_id: None,
            source_ref: None,
            channel: Channel::Internal,
            ..sample_event()
        };
        let decoded = Event::try_from(v1::Event::from(&event)).unwrap();
        assert_eq!(decoded.device_id, None);
        assert_eq!(decoded.source_ref, None);
    }

    #[test]
    fn invalid_wire_events_name_the_field() {
        let valid = v1::Event::from(&sample_event());
        let cases: Vec<(&str, v1::Event)> = vec![
            (
                "event.id",
                v1::Event {
                    id: "evt_nope".into(),
                    ..valid.clone()
                },
            ),
            (
                "event.tenant_id",
                v1::Event {
                    tenant_id: String::new(),
                    ..valid.clone()
                },
            ),
            (
                "event.channel",
                v1::Event {
                    channel: 0,
                    ..valid.clone()
                },
            ),
            (
                "event.channel",
                v1::Event {
                    channel: 99,
                    ..valid.clone()
                },
            ),
            (
                "event.device_id",
                v1::Event {
                    device_id: "dev_".into(),
                    ..valid.clone()
                },
            ),
            (
                "event.type",
                v1::Event {
                    r#type: "Message.Received".into(),
                    ..valid.clone()
                },
            ),
            (
                "event.occurred_at",
                v1::Event {
                    occurred_at: None,
                    ..valid.clone()
                },
            ),
            (
                "event.data",
                v1::Event {
                    data: bytes::Bytes::from_static(b"{not json"),
                    ..valid.clone()
                },
            ),
            (
                "event",
                v1::Event {
                    idempotency_key: String::new(),
                    ..valid.clone()
                },
            ),
        ];
        for (field, wire) in cases {
            let error = Event::try_from(wire).unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn timestamps_before_1970_keep_their_nanoseconds() {
        let moment = datetime!(1969-12-31 23:59:59.25 UTC);
        let wire = timestamp_to_wire(moment);
        assert_eq!((wire.seconds, wire.nanos), (-1, 250_000_000));
        assert_eq!(timestamp_from_wire("t", Some(wire)).unwrap(), moment);
    }
}
