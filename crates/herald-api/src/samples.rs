//! Sample envelopes: the exact body Herald would POST for an event type,
//! built by herald-core's envelope writer around the type's sample `data`.

use herald_core::{
    catalog::EventType,
    channel::Channel,
    envelope::envelope_body,
    event::{Event, parse_data},
    id::{DeviceId, EventId, TenantId},
};
use herald_proto::v1::EventTypeDefinition;
use serde_json::value::RawValue;
use time::macros::datetime;
use uuid::Uuid;

/// The ids in samples are fixed, so a sample is the same on every call
/// (automation platforms compare them).
const SAMPLE_EVENT: u128 = 0x0193_6a1c_7b00_7c2e_9f4d_1a2b_3c4d_5e6f;
const SAMPLE_TENANT: u128 = 0x0193_0000_0000_7000_8000_0000_0000_0001;
const SAMPLE_DEVICE: u128 = 0x0193_0000_0000_7000_8000_0000_0000_0002;

/// The envelope for `definition`, with its sample `data` (`{}` when a custom
/// type registered none).
pub fn sample_envelope(definition: &EventTypeDefinition) -> Box<RawValue> {
    let data = parse_data(&definition.sample_data)
        .or_else(|_| parse_data(b"{}"))
        .unwrap_or_else(|_| empty_object());
    let event_type = EventType::parse(&definition.name)
        .unwrap_or_else(|_| EventType::from_catalog(&herald_core::catalog::CATALOG[0]));
    let from_a_device = definition.catalog && !definition.name.starts_with("endpoint.");
    let moment = datetime!(2026-11-25 12:00:00 UTC);
    let event = Event {
        id: EventId::from_uuid(Uuid::from_u128(SAMPLE_EVENT)),
        tenant_id: TenantId::from_uuid(Uuid::from_u128(SAMPLE_TENANT)),
        channel: if from_a_device {
            Channel::Waba
        } else {
            Channel::Internal
        },
        device_id: from_a_device.then(|| DeviceId::from_uuid(Uuid::from_u128(SAMPLE_DEVICE))),
        event_type,
        occurred_at: moment,
        received_at: moment,
        source_ref: None,
        idempotency_key: String::new(),
        data,
    };
    let body = envelope_body(&event, false);
    String::from_utf8(body)
        .ok()
        .and_then(|body| RawValue::from_string(body).ok())
        .unwrap_or_else(empty_object)
}

fn empty_object() -> Box<RawValue> {
    // A literal that is valid JSON: this cannot fail.
    RawValue::from_string("{}".to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_samples_are_envelopes_with_their_data() {
        for entry in herald_core::catalog::CATALOG {
            let definition = EventTypeDefinition {
                name: entry.name.to_owned(),
                catalog: true,
                sample_data: entry.sample_data.as_bytes().to_vec().into(),
                ..Default::default()
            };
            let envelope: serde_json::Value =
                serde_json::from_str(sample_envelope(&definition).get()).unwrap();
            assert_eq!(envelope["event"], entry.name);
            assert!(envelope["id"].as_str().unwrap().starts_with("evt_"));
            assert!(
                envelope["organizationId"]
                    .as_str()
                    .unwrap()
                    .starts_with("org_")
            );
            assert_eq!(
                envelope["data"],
                serde_json::from_str::<serde_json::Value>(entry.sample_data).unwrap()
            );
        }
    }

    #[test]
    fn a_custom_type_without_sample_gets_empty_data() {
        let definition = EventTypeDefinition {
            name: "orders.shipped".to_owned(),
            ..Default::default()
        };
        let envelope: serde_json::Value =
            serde_json::from_str(sample_envelope(&definition).get()).unwrap();
        assert_eq!(envelope["data"], serde_json::json!({}));
        assert_eq!(envelope["channel"], "internal");
        assert!(envelope["deviceId"].is_null());
    }
}
