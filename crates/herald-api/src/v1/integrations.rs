//! `GET /api/v1/integrations/describe` (and `/api/integrations/describe`,
//! the path seed 003's customers know): what an automation platform (Zapier,
//! Make, n8n) needs to offer Herald as an app, read with the tenant's token.
//!
//! Triggers are every event type the tenant can receive (the catalog, its
//! aliases and the tenant's custom types) with label, description, the JSON
//! Schema of `data` and a sample envelope. Actions are HTTP calls described
//! by method, path and input fields, so a platform (and the test of this
//! route) can perform them from this answer alone: REST-hook subscribe and
//! unsubscribe (create and delete an endpoint, the Zapier REST Hooks
//! convention), publish an event (on the ingest service) and replay one.

use axum::{Json, extract::State};
use herald_core::catalog::{ALIASES, CATALOG};
use herald_proto::v1::{self as pb, config_service_server::ConfigService};
use serde::Serialize;
use serde_json::{json, value::RawValue};
use utoipa::ToSchema;

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    samples::sample_envelope,
};

/// Everything an automation platform needs to offer Herald's triggers and
/// actions.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IntegrationDescription {
    pub service: String,
    /// How every action authenticates.
    pub authentication: IntegrationAuthentication,
    pub triggers: Vec<IntegrationTrigger>,
    pub actions: Vec<IntegrationAction>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IntegrationAuthentication {
    /// `bearer`.
    pub r#type: String,
    /// `Authorization`.
    pub header: String,
    /// `Bearer {token}`, with the tenant token (`hrld_…`).
    pub format: String,
}

/// An event type a REST hook can subscribe to.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IntegrationTrigger {
    /// The event type name: what `event_types` of the subscribe action takes
    /// and what deliveries carry as `type`.
    pub key: String,
    /// What people call it, e.g. "Incoming Message".
    pub label: String,
    pub description: String,
    /// The channels that produce it; empty for custom types.
    pub channels: Vec<String>,
    /// For an alias (Kapso's `whatsapp.*` names): the catalog type it
    /// stands for, restricted to `channels`.
    pub alias_of: Option<String>,
    /// The JSON Schema of the delivered envelope's `data`; null for a custom
    /// type without one.
    #[schema(value_type = Option<Object>)]
    pub data_schema: Option<Box<RawValue>>,
    /// The envelope a subscriber receives, as sample data.
    #[schema(value_type = Object)]
    pub sample: Box<RawValue>,
}

/// One HTTP call.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IntegrationAction {
    /// `subscribe`, `unsubscribe`, `publish_event`, `replay_event`.
    pub key: String,
    pub label: String,
    pub description: String,
    /// `GET`, `POST`, `DELETE`…
    pub method: String,
    /// With `{name}` placeholders filled from the `path` input fields.
    pub path: String,
    /// Where `path` is served: null for this API's own origin (where this
    /// description was read); the ingest service's public URL for
    /// `publish_event`.
    pub base_url: Option<String>,
    pub input_fields: Vec<IntegrationInputField>,
    /// Values of the answer worth keeping, by name, as JSON Pointers into
    /// the response body (`id` of subscribe is what unsubscribe takes).
    pub output: std::collections::BTreeMap<String, String>,
}

/// One input of an action.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IntegrationInputField {
    pub key: String,
    pub label: String,
    /// `path` (a placeholder in the path) or `body` (a member of the JSON
    /// body).
    pub location: String,
    /// JSON type: `string`, `boolean`, `object`, `array`.
    pub r#type: String,
    pub required: bool,
    /// Sent when the user gives nothing; any JSON value.
    #[schema(value_type = Value)]
    pub default: Option<serde_json::Value>,
    pub help: String,
}

fn field(
    key: &str,
    label: &str,
    location: &str,
    kind: &str,
    required: bool,
    default: Option<serde_json::Value>,
    help: &str,
) -> IntegrationInputField {
    IntegrationInputField {
        key: key.to_owned(),
        label: label.to_owned(),
        location: location.to_owned(),
        r#type: kind.to_owned(),
        required,
        default,
        help: help.to_owned(),
    }
}

fn output(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, pointer)| ((*name).to_owned(), (*pointer).to_owned()))
        .collect()
}

fn actions(ingest_url: Option<&str>) -> Vec<IntegrationAction> {
    vec![
        IntegrationAction {
            key: "subscribe".to_owned(),
            label: "Subscribe (REST hook)".to_owned(),
            description: "Creates an endpoint delivering the chosen event types to the target \
                          URL. With test_on_save (the default here) Herald sends a test \
                          delivery at once, and a 200 or 201 from the target makes the \
                          endpoint active."
                .to_owned(),
            method: "POST".to_owned(),
            path: "/api/v1/endpoints".to_owned(),
            base_url: None,
            input_fields: vec![
                field(
                    "url",
                    "Target URL",
                    "body",
                    "string",
                    true,
                    None,
                    "The hook URL the platform gave (HTTPS, publicly reachable).",
                ),
                field(
                    "event_types",
                    "Event types",
                    "body",
                    "array",
                    false,
                    None,
                    "IntegrationTrigger keys; empty or absent subscribes to every type.",
                ),
                field(
                    "name",
                    "Name",
                    "body",
                    "string",
                    true,
                    Some(json!("Automation hook")),
                    "Shown in the dashboard and the attempt log.",
                ),
                field(
                    "test_on_save",
                    "Test on save",
                    "body",
                    "boolean",
                    false,
                    Some(json!(true)),
                    "Send a test delivery now; it activates the endpoint when the target answers 200 or 201.",
                ),
            ],
            output: output(&[
                ("id", "/endpoint/id"),
                ("status", "/endpoint/status"),
                ("secret", "/secret"),
            ]),
        },
        IntegrationAction {
            key: "unsubscribe".to_owned(),
            label: "Unsubscribe (REST hook)".to_owned(),
            description: "Deletes the endpoint a subscribe created; deliveries stop.".to_owned(),
            method: "DELETE".to_owned(),
            path: "/api/v1/endpoints/{endpoint_id}".to_owned(),
            base_url: None,
            input_fields: vec![field(
                "endpoint_id",
                "Subscription id",
                "path",
                "string",
                true,
                None,
                "The `id` output of subscribe.",
            )],
            output: output(&[]),
        },
        IntegrationAction {
            key: "publish_event".to_owned(),
            label: "Publish an event".to_owned(),
            description: "Publishes one event to every endpoint subscribed to its type. Its data \
                          must satisfy the type's schema; a violation is a 400 naming the JSON \
                          path (`data.contact.phone`)."
                .to_owned(),
            method: "POST".to_owned(),
            path: "/api/v1/events".to_owned(),
            base_url: ingest_url.map(str::to_owned),
            input_fields: vec![
                field(
                    "type",
                    "Event type",
                    "body",
                    "string",
                    true,
                    None,
                    "A catalog type or one of the tenant's custom types (not an alias).",
                ),
                field(
                    "data",
                    "Data",
                    "body",
                    "object",
                    true,
                    None,
                    "The event's data; see the trigger's data_schema.",
                ),
                field(
                    "device_id",
                    "Device",
                    "body",
                    "string",
                    false,
                    None,
                    "`dev_…`: the event is then the device's, on its channel.",
                ),
                field(
                    "idempotency_key",
                    "Idempotency key",
                    "body",
                    "string",
                    false,
                    None,
                    "The same key again publishes nothing and answers the first event's id.",
                ),
            ],
            output: output(&[("event_id", "/event_id"), ("duplicate", "/duplicate")]),
        },
        IntegrationAction {
            key: "replay_event".to_owned(),
            label: "Replay an event".to_owned(),
            description: "Sends a stored event again with its original delivery ids, to one \
                          endpoint or to every endpoint it matches now."
                .to_owned(),
            method: "POST".to_owned(),
            path: "/api/v1/events/{event_id}/replay".to_owned(),
            base_url: None,
            input_fields: vec![
                field(
                    "event_id",
                    "Event id",
                    "path",
                    "string",
                    true,
                    None,
                    "`evt_…`",
                ),
                field(
                    "endpoint_id",
                    "Endpoint",
                    "body",
                    "string",
                    false,
                    None,
                    "Only this endpoint; every matching endpoint when absent.",
                ),
            ],
            output: output(&[("job_id", "/id"), ("state", "/state")]),
        },
    ]
}

fn trigger(definition: &pb::EventTypeDefinition, alias_of: Option<String>) -> IntegrationTrigger {
    IntegrationTrigger {
        key: definition.name.clone(),
        label: definition.label.clone(),
        description: definition.description.clone(),
        channels: definition.channels.clone(),
        alias_of,
        data_schema: RawValue::from_string(definition.schema.clone()).ok(),
        sample: sample_envelope(definition),
    }
}

/// The tenant's triggers (event types, with the catalog's aliases) and the
/// actions an automation platform performs.
#[utoipa::path(operation_id = "describe_integration", get, path = "/api/v1/integrations/describe", tag = "integrations",
    responses((status = 200, body = IntegrationDescription), ErrorResponses))]
pub async fn describe(
    State(backend): State<Backend>,
    credentials: Credentials,
) -> Result<Json<IntegrationDescription>, HttpError> {
    let mut definitions = Vec::new();
    let mut page_token = String::new();
    loop {
        let listed = backend
            .config()
            .list_event_types(credentials.request(pb::ListEventTypesRequest {
                page_size: 500,
                page_token,
            }))
            .await?
            .into_inner();
        definitions.extend(listed.event_types);
        if listed.next_page_token.is_empty() {
            break;
        }
        page_token = listed.next_page_token;
    }
    let mut triggers: Vec<IntegrationTrigger> = definitions
        .iter()
        .map(|definition| trigger(definition, None))
        .collect();
    for alias in ALIASES {
        let Some(target) = definitions
            .iter()
            .find(|definition| definition.name == alias.target)
        else {
            continue;
        };
        let entry = CATALOG.iter().find(|entry| entry.name == alias.target);
        let definition = pb::EventTypeDefinition {
            name: alias.name.to_owned(),
            label: format!(
                "WhatsApp: {}",
                entry.map_or(alias.target, |entry| entry.label)
            ),
            description: format!(
                "{} Kapso's name for {} from the WhatsApp channels.",
                target.description, alias.target
            ),
            channels: alias
                .channels
                .iter()
                .map(|channel| channel.as_str().to_owned())
                .collect(),
            ..target.clone()
        };
        triggers.push(trigger(&definition, Some(alias.target.to_owned())));
    }
    Ok(Json(IntegrationDescription {
        service: "Herald".to_owned(),
        authentication: IntegrationAuthentication {
            r#type: "bearer".to_owned(),
            header: "Authorization".to_owned(),
            format: "Bearer {token}".to_owned(),
        },
        triggers,
        actions: actions(backend.public_ingest_url()),
    }))
}

/// The same answer at the path seed 003's customers configured.
#[utoipa::path(operation_id = "describe_integration_unversioned", get, path = "/api/integrations/describe", tag = "integrations",
    responses((status = 200, body = IntegrationDescription), ErrorResponses))]
pub async fn describe_unversioned(
    backend: State<Backend>,
    credentials: Credentials,
) -> Result<Json<IntegrationDescription>, HttpError> {
    describe(backend, credentials).await
}
