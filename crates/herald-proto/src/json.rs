//! Any Herald message as JSON, following the protobuf JSON mapping (with the
//! proto field names), by reflection over the descriptor set, so no type
//! needs hand-written serde support.

use std::sync::OnceLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    SerializeOptions,
};

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("the embedded descriptor set does not decode: {0}")]
    Descriptors(String),
    #[error("no message type named {0} in the descriptor set")]
    UnknownType(String),
    #[error("cannot convert {name} to JSON: {reason}")]
    Convert { name: String, reason: String },
}

fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).map_err(|error| error.to_string())
    })
    .as_ref()
    .map_err(|error| JsonError::Descriptors(error.clone()))
}

/// `message`, whose protobuf type is `full_name` (e.g. `herald.v1.Endpoint`),
/// as JSON; every field is present, with its default when unset.
pub fn to_json<M: prost::Message>(
    full_name: &str,
    message: &M,
) -> Result<serde_json::Value, JsonError> {
    let descriptor = pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownType(full_name.to_owned()))?;
    let convert = |reason: String| JsonError::Convert {
        name: full_name.to_owned(),
        reason,
    };
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|error| convert(error.to_string()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|error| convert(error.to_string()))
}

/// `message` as JSON like [`to_json`], but with every enum value by its
/// short lower-case name (`pending_test` for `ENDPOINT_STATUS_PENDING_TEST`):
/// the names the JSON API, the console and heraldctl's tables use, so one
/// state reads the same wherever it is shown.
pub fn to_readable_json<M: prost::Message>(
    full_name: &str,
    message: &M,
) -> Result<serde_json::Value, JsonError> {
    let mut value = to_json(full_name, message)?;
    let descriptor = pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownType(full_name.to_owned()))?;
    shorten_message(&descriptor, &mut value);
    Ok(value)
}

/// The short name of an enum value: without the enum's own name as a prefix
/// (the protobuf style guide's convention), in lower case.
pub fn short_enum_name(enum_name: &str, value_name: &str) -> String {
    let mut prefix = String::with_capacity(enum_name.len() + 4);
    for (index, character) in enum_name.chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 {
            prefix.push('_');
        }
        prefix.push(character.to_ascii_uppercase());
    }
    prefix.push('_');
    value_name
        .strip_prefix(&prefix)
        .unwrap_or(value_name)
        .to_ascii_lowercase()
}

fn shorten_message(descriptor: &MessageDescriptor, value: &mut serde_json::Value) {
    // Well-known types have JSON forms of their own (timestamps, durations).
    if descriptor.package_name() == "google.protobuf" {
        return;
    }
    let serde_json::Value::Object(fields) = value else {
        return;
    };
    for (name, field_value) in fields.iter_mut() {
        if let Some(field) = descriptor.get_field_by_name(name) {
            shorten_field(&field, field_value);
        }
    }
}

fn shorten_field(field: &FieldDescriptor, value: &mut serde_json::Value) {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return;
        };
        let value_field = entry.map_entry_value_field();
        if let serde_json::Value::Object(entries) = value {
            for entry_value in entries.values_mut() {
                shorten_single(&value_field.kind(), entry_value);
            }
        }
    } else if field.is_list() {
        if let serde_json::Value::Array(items) = value {
            for item in items {
                shorten_single(&field.kind(), item);
            }
        }
    } else {
        shorten_single(&field.kind(), value);
    }
}

fn shorten_single(kind: &Kind, value: &mut serde_json::Value) {
    match kind {
        Kind::Enum(descriptor) => shorten_enum(descriptor, value),
        Kind::Message(descriptor) => shorten_message(descriptor, value),
        _ => {}
    }
}

fn shorten_enum(descriptor: &EnumDescriptor, value: &mut serde_json::Value) {
    // A value this build does not know stays the number the mapping gave it.
    if let serde_json::Value::String(name) = value {
        *name = short_enum_name(descriptor.name(), name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn messages_become_json_with_proto_names_and_enum_names() {
        let endpoint = v1::Endpoint {
            id: "ep_1".into(),
            status: v1::EndpointStatus::Active.into(),
            spec: Some(v1::EndpointSpec {
                name: "Orders".into(),
                ..Default::default()
            }),
            revision: 12,
            ..Default::default()
        };
        let json = to_json("herald.v1.Endpoint", &endpoint).unwrap();
        assert_eq!(json["id"], "ep_1");
        assert_eq!(json["status"], "ENDPOINT_STATUS_ACTIVE");
        assert_eq!(json["spec"]["name"], "Orders");
        assert_eq!(json["tenant_id"], "");
        assert_eq!(
            json["revision"], "12",
            "64-bit integers are strings in the JSON mapping"
        );
    }

    #[test]
    fn readable_json_shortens_every_enum_and_nothing_else() {
        let job = v1::RecoveryJob {
            kind: v1::DeliveryTrigger::Redrive.into(),
            state: v1::RecoveryJobState::Succeeded.into(),
            error: "ENDPOINT_STATUS_ACTIVE".into(),
            ..Default::default()
        };
        let json = to_readable_json("herald.v1.RecoveryJob", &job).unwrap();
        assert_eq!(json["kind"], "redrive");
        assert_eq!(json["state"], "succeeded");
        assert_eq!(
            json["error"], "ENDPOINT_STATUS_ACTIVE",
            "only enum fields change"
        );
        let letter = v1::DeadLetter {
            attempts: vec![v1::Attempt {
                status: v1::AttemptStatus::Dead.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = to_readable_json("herald.v1.DeadLetter", &letter).unwrap();
        assert_eq!(json["attempts"][0]["status"], "dead");
        let created = v1::CreateEndpointResponse {
            endpoint: Some(v1::Endpoint {
                status: v1::EndpointStatus::PendingTest.into(),
                spec: Some(v1::EndpointSpec {
                    signing_scheme: v1::SigningScheme::Sha256Hex.into(),
                    ..Default::default()
                }),
                created_at: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            secret: "whsec_x".into(),
            test: None,
        };
        let json = to_readable_json("herald.v1.CreateEndpointResponse", &created).unwrap();
        assert_eq!(json["endpoint"]["status"], "pending_test");
        assert_eq!(json["endpoint"]["spec"]["signing_scheme"], "sha256_hex");
        assert_eq!(json["endpoint"]["created_at"], "1970-01-01T00:00:01Z");
    }

    #[test]
    fn short_names_drop_the_enum_name() {
        assert_eq!(
            short_enum_name("EndpointStatus", "ENDPOINT_STATUS_PENDING_TEST"),
            "pending_test"
        );
        assert_eq!(short_enum_name("Channel", "CHANNEL_WABA"), "waba");
        assert_eq!(short_enum_name("Channel", "OTHER"), "other");
    }

    #[test]
    fn an_unknown_type_is_named() {
        let error = to_json("herald.v1.Nope", &v1::Endpoint::default()).unwrap_err();
        assert!(error.to_string().contains("herald.v1.Nope"));
    }
}
