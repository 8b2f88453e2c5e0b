//! `IngestService`: the Publish API for internal services. This is the one
//! place an error becomes a gRPC `Status`.
//!
//! Each item succeeds or fails alone, and a failure names its field
//! (`items[3].type: …`). The tenant is the bearer token's; TENANT and
//! PUBLISH tokens may publish. An item's idempotency key is scoped to the
//! tenant (`publish:<tenant>:<key>`), so one tenant cannot suppress
//! another's events; without a key the event id is used, so retries of such
//! items are not deduplicated.

use std::sync::Arc;

use herald_core::{
    catalog::EventType,
    channel::Channel,
    event::{Event, EventError, parse_data},
    id::{DeviceId, EventId, TenantId},
    token::{self, Scope},
};
use herald_proto::{
    timestamp_from_wire,
    v1::{
        self as pb, FieldError, PublishAccepted, PublishItem, PublishRequest, PublishResponse,
        PublishResult, ingest_service_server::IngestService, publish_result::Outcome,
    },
};
use time::OffsetDateTime;
use tonic::{Request, Response, Status, Streaming, metadata::MetadataMap};

use crate::{
    publish::{publish_all, stored_event_id},
    receive::Shared,
};

/// Most items in one call (or one stream), to bound memory.
const MAX_ITEMS: usize = 10_000;
/// Room left in the 256-byte key for `publish:<tenant>:`.
const MAX_CALLER_KEY_BYTES: usize = 200;

#[derive(Debug, thiserror::Error)]
enum GrpcError {
    #[error("the configuration is not loaded yet; retry shortly")]
    NotSynced,
    #[error("missing `authorization: Bearer hrld_…` metadata")]
    MissingToken,
    #[error("unknown token")]
    UnknownToken,
    #[error("the token expired")]
    Expired,
    #[error("a {0} token cannot publish events; use a tenant or publish token")]
    Scope(&'static str),
    #[error("items: at most {MAX_ITEMS} items per call")]
    TooManyItems,
    #[error("the event bus did not acknowledge any item; retry")]
    Bus,
    #[error("the token's tenant id is invalid in the configuration")]
    Corrupt,
}

impl From<GrpcError> for Status {
    fn from(error: GrpcError) -> Status {
        let message = error.to_string();
        match error {
            GrpcError::NotSynced | GrpcError::Bus => Status::unavailable(message),
            GrpcError::MissingToken | GrpcError::UnknownToken | GrpcError::Expired => {
                Status::unauthenticated(message)
            }
            GrpcError::Scope(_) => Status::permission_denied(message),
            GrpcError::TooManyItems => Status::invalid_argument(message),
            GrpcError::Corrupt => Status::internal(message),
        }
    }
}

/// The gRPC service.
#[derive(Debug)]
pub(crate) struct PublishApi {
    pub shared: Arc<Shared>,
}

#[tonic::async_trait]
impl IngestService for PublishApi {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let outcome = async {
            let tenant = self.authenticate(request.metadata())?;
            let items = request.into_inner().items;
            if items.len() > MAX_ITEMS {
                return Err(GrpcError::TooManyItems);
            }
            let results = self.publish_items(&tenant, items, 0).await;
            all_failed_on_bus(&results)?;
            Ok(PublishResponse { results })
        }
        .await;
        self.answer("publish", outcome)
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<PublishResponse>, Status> {
        let outcome = async {
            let tenant = self.authenticate(request.metadata())?;
            let mut stream = request.into_inner();
            let mut results = Vec::new();
            // Each message is published as it arrives, so a long stream is
            // never held in memory whole.
            while let Some(batch) = stream.message().await.transpose() {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(status) => return Ok(Err(status)),
                };
                if results.len().saturating_add(batch.items.len()) > MAX_ITEMS {
                    return Err(GrpcError::TooManyItems);
                }
                let offset = results.len();
                results.extend(self.publish_items(&tenant, batch.items, offset).await);
            }
            all_failed_on_bus(&results)?;
            Ok(Ok(PublishResponse { results }))
        }
        .await;
        match outcome {
            Ok(Err(status)) => {
                self.shared
                    .metrics
                    .request("publish_stream", &format!("{:?}", status.code()));
                Err(status)
            }
            Ok(Ok(response)) => self.answer("publish_stream", Ok(response)),
            Err(error) => self.answer("publish_stream", Err(error)),
        }
    }
}

impl PublishApi {
    fn answer(
        &self,
        route: &'static str,
        outcome: Result<PublishResponse, GrpcError>,
    ) -> Result<Response<PublishResponse>, Status> {
        let outcome = outcome.map(Response::new).map_err(Status::from);
        let code = match &outcome {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.shared.metrics.request(route, &format!("{code:?}"));
        outcome
    }

    /// The tenant the caller's token belongs to, if it may publish.
    fn authenticate(&self, metadata: &MetadataMap) -> Result<TenantId, GrpcError> {
        if !self.shared.synced() {
            return Err(GrpcError::NotSynced);
        }
        let token = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(GrpcError::MissingToken)?;
        let snapshot = self.shared.cache.snapshot();
        let found = snapshot
            .tokens_by_hash
            .get(&token::hash(token))
            .ok_or(GrpcError::UnknownToken)?;
        if let Some(expires_at) = &found.expires_at {
            let expired = timestamp_from_wire("expires_at", Some(*expires_at))
                .map_or(true, |expires_at| expires_at <= OffsetDateTime::now_utc());
            if expired {
                return Err(GrpcError::Expired);
            }
        }
        match Scope::try_from(found.scope()) {
            Ok(scope) if scope.may_publish() => {}
            Ok(scope) => return Err(GrpcError::Scope(scope.as_str())),
            Err(_) => return Err(GrpcError::Scope("unscoped")),
        }
        let tenant = TenantId::parse(&found.tenant_id).map_err(|_| GrpcError::Corrupt)?;
        tracing::Span::current().record("herald.tenant.id", tenant.as_str());
        Ok(tenant)
    }

    /// Validates every item, publishes the valid ones together and answers
    /// one result per item, in order. `offset` numbers items across a stream.
    async fn publish_items(
        &self,
        tenant: &TenantId,
        items: Vec<PublishItem>,
        offset: usize,
    ) -> Vec<PublishResult> {
        let now = OffsetDateTime::now_utc();
        let mut results: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
        let mut valid: Vec<(usize, Event)> = Vec::new();
        {
            let snapshot = self.shared.cache.snapshot();
            for (index, item) in items.into_iter().enumerate() {
                match item_event(&snapshot, tenant, item, now) {
                    Ok(event) => match schema_violation(&snapshot, &event) {
                        None => {
                            valid.push((index, event));
                            results.push(None);
                        }
                        Some((field, message)) => {
                            self.shared
                                .metrics
                                .event_refused("schema", &event.event_type);
                            results.push(Some(Outcome::Error(FieldError {
                                field: format!("items[{}]{field}", offset + index),
                                message,
                                ..FieldError::default()
                            })));
                        }
                    },
                    Err((field, message)) => results.push(Some(Outcome::Error(FieldError {
                        field: format!("items[{}]{field}", offset + index),
                        message,
                        ..FieldError::default()
                    }))),
                }
            }
        }
        if !valid.is_empty()
            && let Err(wait) = self.shared.take_quota(tenant, valid.len())
        {
            for (index, _) in valid {
                if let Some(slot) = results.get_mut(index) {
                    *slot = Some(over_quota(offset + index, wait));
                }
            }
            return results
                .into_iter()
                .map(|outcome| PublishResult { outcome })
                .collect();
        }
        let events: Vec<Event> = valid.iter().map(|(_, event)| event.clone()).collect();
        let acks = publish_all(&self.shared.bus, &events).await;
        for ((index, event), ack) in valid.into_iter().zip(acks) {
            let outcome = match ack {
                Ok(acked) if acked.duplicate => {
                    // The key matched an earlier event: answer with its id.
                    match stored_event_id(&self.shared.bus, acked.sequence).await {
                        Ok(event_id) => Outcome::Accepted(PublishAccepted {
                            event_id,
                            duplicate: true,
                        }),
                        Err(reason) => bus_error(offset + index, &reason),
                    }
                }
                Ok(_) => {
                    self.shared
                        .metrics
                        .event_accepted(event.channel, &event.event_type);
                    Outcome::Accepted(PublishAccepted {
                        event_id: event.id.to_string(),
                        duplicate: false,
                    })
                }
                Err(reason) => bus_error(offset + index, &reason),
            };
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(outcome);
            }
        }
        results
            .into_iter()
            .map(|outcome| PublishResult { outcome })
            .collect()
    }
}

pub(crate) const BUS_FAILURE: &str = "the event bus did not acknowledge; retry this item";

/// An item refused because its tenant is over its events-per-second quota.
fn over_quota(index: usize, wait: std::time::Duration) -> Outcome {
    Outcome::Error(FieldError {
        field: format!("items[{index}]"),
        message: format!(
            "the tenant is over its events-per-second quota; retry after {} ms",
            wait.as_millis()
        ),
        code: "RESOURCE_EXHAUSTED".to_owned(),
        retry_after: prost_types::Duration::try_from(wait).ok(),
    })
}

fn bus_error(index: usize, reason: &str) -> Outcome {
    tracing::warn!(item = index, reason, "publish not acknowledged by the bus");
    Outcome::Error(FieldError {
        field: format!("items[{index}]"),
        message: BUS_FAILURE.to_owned(),
        ..FieldError::default()
    })
}

/// A whole call lost to the bus is Unavailable, so clients retry it as a
/// call; a partial loss is reported per item.
fn all_failed_on_bus(results: &[PublishResult]) -> Result<(), GrpcError> {
    let on_bus = |result: &PublishResult| matches!(&result.outcome, Some(Outcome::Error(error)) if error.message == BUS_FAILURE);
    if !results.is_empty() && results.iter().all(on_bus) {
        Err(GrpcError::Bus)
    } else {
        Ok(())
    }
}

/// `(".field", message)` of an invalid item.
type ItemError = (&'static str, String);

/// The canonical event of one item, or what is wrong with it.
fn item_event(
    snapshot: &herald_watch::ConfigSnapshot,
    tenant: &TenantId,
    item: PublishItem,
    now: OffsetDateTime,
) -> Result<Event, ItemError> {
    let requested = pb::Channel::try_from(item.channel).map_err(|_| {
        (
            ".channel",
            format!("unknown channel value {}", item.channel),
        )
    })?;
    let (device_id, channel) = if item.device_id.is_empty() {
        let channel = match requested {
            pb::Channel::Unspecified => Channel::Internal,
            other => Channel::try_from(other).map_err(|error| (".channel", error.reason))?,
        };
        (None, channel)
    } else {
        // Another tenant's device gets the same answer as a missing one.
        let device = snapshot
            .devices
            .get(&item.device_id)
            .filter(|device| device.tenant_id == tenant.as_str())
            .ok_or((".device_id", "no such device in this tenant".to_owned()))?;
        let device_channel = device.channel();
        if requested != pb::Channel::Unspecified && requested != device_channel {
            return Err((
                ".channel",
                format!(
                    "the device is a {} device",
                    device_channel.as_str_name().to_lowercase()
                ),
            ));
        }
        let channel =
            Channel::try_from(device_channel).map_err(|error| (".device_id", error.reason))?;
        let id =
            DeviceId::parse(&item.device_id).map_err(|error| (".device_id", error.to_string()))?;
        (Some(id), channel)
    };
    let event_type =
        EventType::parse(&item.r#type).map_err(|error| (".type", error.to_string()))?;
    if event_type == EventType::endpoint_disabled() {
        return Err((
            ".type",
            "endpoint.disabled is emitted by Herald itself".to_owned(),
        ));
    }
    let registered = snapshot
        .event_types
        .contains_key(&(tenant.to_string(), item.r#type.clone()));
    if !event_type.is_catalog() && !registered {
        return Err((
            ".type",
            format!(
                "{:?} is neither a catalog type nor one of the tenant's registered custom types",
                item.r#type
            ),
        ));
    }
    let data = parse_data(&item.data).map_err(|error| (".data", error.to_string()))?;
    let id = EventId::generate();
    let key = if item.idempotency_key.is_empty() {
        id.to_string()
    } else if item.idempotency_key.len() > MAX_CALLER_KEY_BYTES
        || !item
            .idempotency_key
            .bytes()
            .all(|byte| byte.is_ascii_graphic())
    {
        return Err((
            ".idempotency_key",
            format!("must be 1 to {MAX_CALLER_KEY_BYTES} bytes of visible ASCII ('!' to '~')"),
        ));
    } else {
        item.idempotency_key
    };
    let occurred_at = match item.occurred_at {
        Some(timestamp) => timestamp_from_wire("occurred_at", Some(timestamp))
            .map_err(|error| (".occurred_at", error.reason))?,
        None => now,
    };
    let event = Event {
        id,
        tenant_id: *tenant,
        channel,
        device_id,
        event_type,
        occurred_at,
        received_at: now,
        source_ref: Some(item.source_ref).filter(|source_ref| !source_ref.is_empty()),
        idempotency_key: format!("publish:{tenant}:{key}"),
        data,
    };
    event.validate().map_err(|error| {
        let field = match &error {
            EventError::SourceRefTooLong { .. } | EventError::SourceRefControlCharacter { .. } => {
                ".source_ref"
            }
            EventError::TimestampOutOfRange { .. } => ".occurred_at",
            EventError::DataTooLarge { .. } | EventError::InvalidData(_) => ".data",
            _ => ".idempotency_key",
        };
        (field, error.to_string())
    })?;
    Ok(event)
}

/// `(".data<path>", message)` when the event's data violates its type's
/// schema: the catalog's for a built-in type, the registered one for a
/// custom type (none registered: anything goes). The field is the JSON path
/// of the first violation below `data`, and the message starts with it.
fn schema_violation(
    snapshot: &herald_watch::ConfigSnapshot,
    event: &Event,
) -> Option<(String, String)> {
    let schema = match event.event_type.catalog_entry() {
        Some(entry) => entry.schema()?,
        None => snapshot
            .event_type_schemas
            .get(&(
                event.tenant_id.to_string(),
                event.event_type.as_str().to_owned(),
            ))?
            .as_ref(),
    };
    let violation = schema.validate_text(event.data.get()).err()?;
    let below = violation.path.strip_prefix('$').unwrap_or_default();
    Some((
        format!(".data{below}"),
        format!(
            "{violation} (the schema of {} data; GET /api/v1/event-types shows it)",
            event.event_type
        ),
    ))
}
