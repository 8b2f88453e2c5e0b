//! sea-orm entities: private to the crate. Every timestamp is a BIGINT of
//! microseconds since the Unix epoch (UTC); see [`crate::timestamp`].
//!
//! Each entity converts to and from its public record; reading checks every
//! timestamp so that a corrupt row becomes [`StoreError::Corrupt`], never a
//! panic.

use crate::{
    StoreError,
    records::{
        AttemptRecord, ChangeRecord, DeviceRecord, EndpointRecord, EventTypeRecord, ObjectKind,
        TenantQuotasRecord, TenantRecord, TokenRecord,
    },
    timestamp::{from_micros, from_micros_opt, to_micros, to_micros_opt},
};

pub(crate) mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: i64,
        pub updated_at: i64,
        pub version: i64,
        pub quota_events_per_second: Option<f64>,
        pub quota_events_burst: Option<i64>,
        pub quota_max_in_flight_deliveries: Option<i64>,
        pub quota_max_dead_letters: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub scope: String,
        pub prefix: String,
        pub secret_sha256: String,
        pub created_at: i64,
        pub expires_at: Option<i64>,
        pub last_used_at: Option<i64>,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod device {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "devices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub channel: String,
        pub name: String,
        pub external_id: String,
        pub verification_ciphertext: Vec<u8>,
        pub created_at: i64,
        pub updated_at: i64,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod endpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "endpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub url: String,
        pub status: String,
        pub status_reason: String,
        pub spec: Vec<u8>,
        pub secret_ciphertext: Vec<u8>,
        pub previous_secret_ciphertext: Option<Vec<u8>>,
        pub previous_secret_expires_at: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
        pub version: i64,
        pub revision: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod event_type {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_types")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub description: String,
        pub sample_data: Vec<u8>,
        pub created_at: i64,
        pub schema: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "attempts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub delivery_id: String,
        pub event_id: String,
        pub tenant_id: String,
        pub endpoint_id: String,
        pub device_id: String,
        pub event_type: String,
        pub attempt: i32,
        pub attempted_at: i64,
        pub status: String,
        pub response_code: i32,
        pub duration_ms: i64,
        pub duration_micros: Option<i64>,
        pub response_body: Vec<u8>,
        pub error: String,
        pub url: String,
        pub next_attempt_at: Option<i64>,
        pub trigger: String,
        pub request_headers_json: String,
        pub test: bool,
        pub request_body: Option<Vec<u8>>,
        pub request_body_size: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod change {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "config_changes")]
    pub struct Model {
        /// Assigned by the store as MAX + 1 inside the serialised write
        /// transaction, so revisions have no gaps.
        #[sea_orm(primary_key, auto_increment = false)]
        pub revision: i64,
        pub kind: String,
        pub object_id: String,
        pub tenant_id: String,
        pub deleted: bool,
        pub changed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

// ---------------------------------------------------------------------------
// Records <-> models
// ---------------------------------------------------------------------------

impl From<&TenantRecord> for tenant::Model {
    fn from(record: &TenantRecord) -> Self {
        tenant::Model {
            id: record.id.clone(),
            name: record.name.clone(),
            created_at: to_micros(record.created_at),
            updated_at: to_micros(record.updated_at),
            version: record.version,
            quota_events_per_second: record.quotas.events_per_second,
            quota_events_burst: record.quotas.events_burst,
            quota_max_in_flight_deliveries: record.quotas.max_in_flight_deliveries,
            quota_max_dead_letters: record.quotas.max_dead_letters,
        }
    }
}

impl TryFrom<tenant::Model> for TenantRecord {
    type Error = StoreError;

    fn try_from(model: tenant::Model) -> Result<Self, StoreError> {
        let at = |column, micros| from_micros("tenant", &model.id, column, micros);
        Ok(TenantRecord {
            created_at: at("created_at", model.created_at)?,
            updated_at: at("updated_at", model.updated_at)?,
            id: model.id,
            name: model.name,
            version: model.version,
            quotas: TenantQuotasRecord {
                events_per_second: model.quota_events_per_second,
                events_burst: model.quota_events_burst,
                max_in_flight_deliveries: model.quota_max_in_flight_deliveries,
                max_dead_letters: model.quota_max_dead_letters,
            },
        })
    }
}

impl From<&TokenRecord> for token::Model {
    fn from(record: &TokenRecord) -> Self {
        token::Model {
            id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            name: record.name.clone(),
            scope: record.scope.clone(),
            prefix: record.prefix.clone(),
            secret_sha256: record.secret_sha256.clone(),
            created_at: to_micros(record.created_at),
            expires_at: to_micros_opt(record.expires_at),
            last_used_at: to_micros_opt(record.last_used_at),
            revoked_at: to_micros_opt(record.revoked_at),
        }
    }
}

impl TryFrom<token::Model> for TokenRecord {
    type Error = StoreError;

    fn try_from(model: token::Model) -> Result<Self, StoreError> {
        let at = |column, micros| from_micros("token", &model.id, column, micros);
        let at_opt = |column, micros| from_micros_opt("token", &model.id, column, micros);
        Ok(TokenRecord {
            created_at: at("created_at", model.created_at)?,
            expires_at: at_opt("expires_at", model.expires_at)?,
            last_used_at: at_opt("last_used_at", model.last_used_at)?,
            revoked_at: at_opt("revoked_at", model.revoked_at)?,
            id: model.id,
            tenant_id: model.tenant_id,
            name: model.name,
            scope: model.scope,
            prefix: model.prefix,
            secret_sha256: model.secret_sha256,
        })
    }
}

impl From<&DeviceRecord> for device::Model {
    fn from(record: &DeviceRecord) -> Self {
        device::Model {
            id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            channel: record.channel.clone(),
            name: record.name.clone(),
            external_id: record.external_id.clone(),
            verification_ciphertext: record.verification_ciphertext.clone(),
            created_at: to_micros(record.created_at),
            updated_at: to_micros(record.updated_at),
            version: record.version,
        }
    }
}

impl TryFrom<device::Model> for DeviceRecord {
    type Error = StoreError;

    fn try_from(model: device::Model) -> Result<Self, StoreError> {
        let at = |column, micros| from_micros("device", &model.id, column, micros);
        Ok(DeviceRecord {
            created_at: at("created_at", model.created_at)?,
            updated_at: at("updated_at", model.updated_at)?,
            id: model.id,
            tenant_id: model.tenant_id,
            channel: model.channel,
            name: model.name,
            external_id: model.external_id,
            verification_ciphertext: model.verification_ciphertext,
            version: model.version,
        })
    }
}

impl From<&EndpointRecord> for endpoint::Model {
    fn from(record: &EndpointRecord) -> Self {
        endpoint::Model {
            id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            name: record.name.clone(),
            url: record.url.clone(),
            status: record.status.clone(),
            status_reason: record.status_reason.clone(),
            spec: record.spec.clone(),
            secret_ciphertext: record.secret_ciphertext.clone(),
            previous_secret_ciphertext: record.previous_secret_ciphertext.clone(),
            previous_secret_expires_at: to_micros_opt(record.previous_secret_expires_at),
            created_at: to_micros(record.created_at),
            updated_at: to_micros(record.updated_at),
            version: record.version,
            revision: record.revision,
        }
    }
}

impl TryFrom<endpoint::Model> for EndpointRecord {
    type Error = StoreError;

    fn try_from(model: endpoint::Model) -> Result<Self, StoreError> {
        let at = |column, micros| from_micros("endpoint", &model.id, column, micros);
        Ok(EndpointRecord {
            previous_secret_expires_at: from_micros_opt(
                "endpoint",
                &model.id,
                "previous_secret_expires_at",
                model.previous_secret_expires_at,
            )?,
            created_at: at("created_at", model.created_at)?,
            updated_at: at("updated_at", model.updated_at)?,
            id: model.id,
            tenant_id: model.tenant_id,
            name: model.name,
            url: model.url,
            status: model.status,
            status_reason: model.status_reason,
            spec: model.spec,
            secret_ciphertext: model.secret_ciphertext,
            previous_secret_ciphertext: model.previous_secret_ciphertext,
            version: model.version,
            revision: model.revision,
        })
    }
}

impl From<&EventTypeRecord> for event_type::Model {
    fn from(record: &EventTypeRecord) -> Self {
        event_type::Model {
            tenant_id: record.tenant_id.clone(),
            name: record.name.clone(),
            description: record.description.clone(),
            sample_data: record.sample_data.clone(),
            created_at: to_micros(record.created_at),
            schema: record.schema.clone(),
        }
    }
}

impl TryFrom<event_type::Model> for EventTypeRecord {
    type Error = StoreError;

    fn try_from(model: event_type::Model) -> Result<Self, StoreError> {
        Ok(EventTypeRecord {
            created_at: from_micros("event_type", &model.name, "created_at", model.created_at)?,
            tenant_id: model.tenant_id,
            name: model.name,
            description: model.description,
            sample_data: model.sample_data,
            schema: model.schema,
        })
    }
}

impl TryFrom<attempt::Model> for AttemptRecord {
    type Error = StoreError;

    fn try_from(model: attempt::Model) -> Result<Self, StoreError> {
        Ok(AttemptRecord {
            attempted_at: from_micros("attempt", &model.id, "attempted_at", model.attempted_at)?,
            next_attempt_at: from_micros_opt(
                "attempt",
                &model.id,
                "next_attempt_at",
                model.next_attempt_at,
            )?,
            id: model.id,
            delivery_id: model.delivery_id,
            event_id: model.event_id,
            tenant_id: model.tenant_id,
            endpoint_id: model.endpoint_id,
            device_id: model.device_id,
            event_type: model.event_type,
            attempt: model.attempt,
            status: model.status,
            response_code: model.response_code,
            // Rows written before microseconds were kept have milliseconds.
            duration_micros: model
                .duration_micros
                .unwrap_or_else(|| model.duration_ms.saturating_mul(1_000)),
            response_body: model.response_body,
            error: model.error,
            url: model.url,
            trigger: model.trigger,
            request_headers_json: model.request_headers_json,
            test: model.test,
            request_body: model.request_body.unwrap_or_default(),
            request_body_size: model
                .request_body_size
                .and_then(|size| u64::try_from(size).ok())
                .unwrap_or_default(),
        })
    }
}

impl TryFrom<change::Model> for ChangeRecord {
    type Error = StoreError;

    fn try_from(model: change::Model) -> Result<Self, StoreError> {
        let revision = model.revision.to_string();
        let kind = ObjectKind::parse(&model.kind).ok_or_else(|| StoreError::Corrupt {
            kind: "change",
            id: revision.clone(),
            detail: format!("unknown object kind {:?}", model.kind),
        })?;
        Ok(ChangeRecord {
            changed_at: from_micros("change", &revision, "changed_at", model.changed_at)?,
            revision: model.revision,
            kind,
            object_id: model.object_id,
            tenant_id: model.tenant_id,
            deleted: model.deleted,
        })
    }
}

/// Converts every model of a query result, failing on the first corrupt one.
pub(crate) fn records<M, R>(models: Vec<M>) -> Result<Vec<R>, StoreError>
where
    R: TryFrom<M, Error = StoreError>,
{
    models.into_iter().map(R::try_from).collect()
}

/// Converts an optional model.
pub(crate) fn record<M, R>(model: Option<M>) -> Result<Option<R>, StoreError>
where
    R: TryFrom<M, Error = StoreError>,
{
    model.map(R::try_from).transpose()
}
