//! Event types (the catalog plus the tenant's custom types) and the summary.

use std::time::Duration;

use herald_core::{
    catalog::{CATALOG, EventType, validate_custom_type},
    schema::DataSchema,
};
use herald_proto::{
    timestamp_to_wire,
    v1::{
        DeleteEventTypeRequest, DeleteEventTypeResponse, EventTypeDefinition, GetSummaryRequest,
        ListEventTypesRequest, ListEventTypesResponse, RegisterEventTypeRequest, Summary,
    },
};
use herald_store::EventTypeRecord;
use time::OffsetDateTime;

use crate::{
    convert,
    error::{ApiError, ApiResult},
    names, paging,
    state::ConfigState,
    validate::{check_id, check_text},
};

const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_SAMPLE_BYTES: usize = 64 * 1024;
const SUMMARY_WINDOW: Duration = Duration::from_secs(24 * 3600);

fn catalog_definitions() -> impl Iterator<Item = EventTypeDefinition> {
    CATALOG.iter().map(|entry| EventTypeDefinition {
        name: entry.name.to_owned(),
        description: entry.description.to_owned(),
        catalog: true,
        sample_data: bytes::Bytes::from_static(entry.sample_data.as_bytes()),
        created_at: None,
        tenant_id: String::new(),
        label: entry.label.to_owned(),
        channels: entry
            .channels
            .iter()
            .map(|channel| channel.as_str().to_owned())
            .collect(),
        schema: entry.data_schema.to_owned(),
    })
}

impl ConfigState {
    /// The catalog first, then custom types by name. The page token is the
    /// last name returned; catalog and custom names never collide.
    pub async fn list_event_types(
        &self,
        tenant_id: &str,
        request: ListEventTypesRequest,
    ) -> ApiResult<ListEventTypesResponse> {
        let size = paging::page_size(request.page_size)?;
        let after = paging::decode_event_type_after(&request.page_token)?;
        let mut fetched: Vec<EventTypeDefinition> = Vec::new();
        let custom_after = match &after {
            None => {
                fetched.extend(catalog_definitions());
                None
            }
            Some(paging::EventTypePosition(true, name)) => {
                fetched.extend(
                    catalog_definitions()
                        .skip_while(|definition| &definition.name != name)
                        .skip(1),
                );
                None
            }
            Some(paging::EventTypePosition(false, name)) => Some(name.clone()),
        };
        let limit = usize::try_from(size).unwrap_or(usize::MAX);
        if fetched.len() <= limit {
            let custom = self
                .store
                .list_event_types(tenant_id, size + 1, custom_after.as_deref())
                .await?;
            fetched.extend(custom.into_iter().map(convert::event_type));
        }
        let (page, next_page_token) = paging::split_page(fetched, size, |definition| {
            paging::EventTypePosition(definition.catalog, definition.name.clone())
        });
        Ok(ListEventTypesResponse {
            event_types: page,
            next_page_token,
        })
    }

    pub async fn register_event_type(
        &self,
        tenant_id: &str,
        request: RegisterEventTypeRequest,
    ) -> ApiResult<EventTypeDefinition> {
        let event_type = validate_custom_type(request.name.trim())
            .map_err(|error| ApiError::invalid("name", error))?;
        let description = request.description.trim();
        check_text(
            "description",
            description,
            herald_core::text::Permit::MultiLine,
        )?;
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ApiError::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if request.sample_data.len() > MAX_SAMPLE_BYTES {
            return Err(ApiError::invalid(
                "sample_data",
                format!("must be at most {MAX_SAMPLE_BYTES} bytes"),
            ));
        }
        let schema = request.schema.trim();
        let parsed = if schema.is_empty() {
            None
        } else {
            Some(DataSchema::parse(schema).map_err(|error| ApiError::invalid("schema", error))?)
        };
        if !request.sample_data.is_empty() {
            let sample = herald_core::event::parse_data(&request.sample_data)
                .map_err(|error| ApiError::invalid("sample_data", error))?;
            if let Some(parsed) = &parsed {
                parsed.validate_text(sample.get()).map_err(|violation| {
                    ApiError::invalid(
                        "sample_data",
                        format!("does not satisfy the schema: {violation}"),
                    )
                })?;
            }
        }
        let record = EventTypeRecord {
            tenant_id: tenant_id.to_owned(),
            name: event_type.as_str().to_owned(),
            description: description.to_owned(),
            sample_data: request.sample_data.to_vec(),
            created_at: OffsetDateTime::now_utc(),
            schema: schema.to_owned(),
        };
        self.store.insert_event_type(&record).await?;
        self.notify_changed();
        Ok(convert::event_type(record))
    }

    pub async fn delete_event_type(
        &self,
        tenant_id: &str,
        request: DeleteEventTypeRequest,
    ) -> ApiResult<DeleteEventTypeResponse> {
        check_id("name", &request.name)?;
        if EventType::catalog(&request.name).is_some() {
            return Err(ApiError::invalid("name", "catalog types cannot be deleted"));
        }
        if !self
            .store
            .delete_event_type(tenant_id, &request.name)
            .await?
        {
            return Err(ApiError::not_found("event type", request.name));
        }
        self.notify_changed();
        Ok(DeleteEventTypeResponse {})
    }

    pub async fn summary(
        &self,
        tenant_id: &str,
        _request: GetSummaryRequest,
    ) -> ApiResult<Summary> {
        let now = OffsetDateTime::now_utc();
        let mut summary = Summary {
            as_of: Some(timestamp_to_wire(now)),
            ..Default::default()
        };
        for (status, count) in self.store.count_endpoints_by_status(tenant_id).await? {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            summary.endpoints_total = summary.endpoints_total.saturating_add(count);
            match names::parse_endpoint_status(&status) {
                herald_proto::v1::EndpointStatus::Active => summary.endpoints_active = count,
                herald_proto::v1::EndpointStatus::Disabled => summary.endpoints_disabled = count,
                herald_proto::v1::EndpointStatus::Failing => summary.endpoints_failing = count,
                _ => {
                    summary.endpoints_pending_test =
                        summary.endpoints_pending_test.saturating_add(count)
                }
            }
        }
        let counts = self
            .store
            .delivery_counts(tenant_id, now - SUMMARY_WINDOW)
            .await?;
        summary.deliveries_succeeded = counts.succeeded;
        summary.deliveries_failed = counts.failed;
        summary.deliveries_pending = counts.pending;
        let tenant =
            herald_core::id::TenantId::parse(tenant_id).map_err(|error| ApiError::Corrupt {
                what: "tenant id",
                reason: error.to_string(),
            })?;
        let topology = self.bus.topology();
        summary.dead_letters = self
            .bus
            .count_messages(
                &topology.dead_letters_stream(),
                topology.tenant_dead_letters_filter(&tenant),
            )
            .await?;
        Ok(summary)
    }
}
