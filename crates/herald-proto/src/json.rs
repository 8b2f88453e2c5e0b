//! Any Herald message as JSON, following the protobuf JSON mapping (with the
//! proto field names), by reflection over the descriptor set, so no type
//! needs hand-written serde support.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

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
    fn an_unknown_type_is_named() {
        let error = to_json("herald.v1.Nope", &v1::Endpoint::default()).unwrap_err();
        assert!(error.to_string().contains("herald.v1.Nope"));
    }
}
