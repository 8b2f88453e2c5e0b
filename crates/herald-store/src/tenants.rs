//! Tenants, and deleting a tenant with everything it owns.

use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use time::OffsetDateTime;

use crate::{
    Store, StoreError,
    changes::{Change, append_change, append_changes},
    check_version, clamp_limit, db_error,
    entity::{attempt, device, endpoint, event_type, record, records, tenant, token},
    insert_error,
    records::{ObjectKind, TenantQuotasRecord, TenantRecord},
    timestamp::to_micros,
};

const KIND: &str = "tenant";

impl Store {
    /// Inserts a tenant with version 1; returns the change's revision.
    /// [`StoreError::AlreadyExists`] when the id is taken.
    pub async fn insert_tenant(&self, tenant: &TenantRecord) -> Result<i64, StoreError> {
        let operation = "inserting a tenant";
        let txn = self.begin_write(operation).await?;
        let mut model = tenant::Model::from(tenant);
        model.version = 1;
        tenant::Entity::insert(model.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(insert_error(operation, KIND, &tenant.id, None))?;
        let revision = append_change(
            &txn,
            Change::upsert(ObjectKind::Tenant, &tenant.id, &tenant.id),
        )
        .await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(revision)
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        let model = tenant::Entity::find_by_id(id)
            .one(&self.connection)
            .await
            .map_err(db_error("reading a tenant"))?;
        record(model)
    }

    /// Up to `limit` tenants with an id greater than `after`, by id.
    pub async fn list_tenants(
        &self,
        limit: u64,
        after: Option<&str>,
    ) -> Result<Vec<TenantRecord>, StoreError> {
        let mut query = tenant::Entity::find();
        if let Some(after) = after {
            query = query.filter(tenant::Column::Id.gt(after));
        }
        let models = query
            .order_by_asc(tenant::Column::Id)
            .limit(clamp_limit(limit))
            .all(&self.connection)
            .await
            .map_err(db_error("listing tenants"))?;
        records(models)
    }

    /// Renames a tenant (`name` given) and replaces its quotas (`quotas`
    /// given). [`StoreError::NotFound`], or [`StoreError::VersionConflict`]
    /// when `expected_version` is given and stale. Returns the stored
    /// tenant with its new version.
    pub async fn update_tenant(
        &self,
        id: &str,
        name: Option<&str>,
        quotas: Option<&TenantQuotasRecord>,
        expected_version: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<TenantRecord, StoreError> {
        let operation = "updating a tenant";
        let txn = self.begin_write(operation).await?;
        let current = tenant::Entity::find_by_id(id)
            .one(&txn)
            .await
            .map_err(db_error(operation))?
            .ok_or_else(|| not_found(id))?;
        check_version(KIND, id, expected_version, current.version)?;
        let mut next = tenant::Model {
            updated_at: to_micros(now),
            version: current.version + 1,
            ..current.clone()
        };
        if let Some(name) = name {
            name.clone_into(&mut next.name);
        }
        if let Some(quotas) = quotas {
            next.quota_events_per_second = quotas.events_per_second;
            next.quota_events_burst = quotas.events_burst;
            next.quota_max_in_flight_deliveries = quotas.max_in_flight_deliveries;
            next.quota_max_dead_letters = quotas.max_dead_letters;
        }
        let updated = tenant::Entity::update_many()
            .col_expr(tenant::Column::Name, Expr::value(next.name.clone()))
            .col_expr(
                tenant::Column::QuotaEventsPerSecond,
                Expr::value(next.quota_events_per_second),
            )
            .col_expr(
                tenant::Column::QuotaEventsBurst,
                Expr::value(next.quota_events_burst),
            )
            .col_expr(
                tenant::Column::QuotaMaxInFlightDeliveries,
                Expr::value(next.quota_max_in_flight_deliveries),
            )
            .col_expr(
                tenant::Column::QuotaMaxDeadLetters,
                Expr::value(next.quota_max_dead_letters),
            )
            .col_expr(tenant::Column::UpdatedAt, Expr::value(next.updated_at))
            .col_expr(tenant::Column::Version, Expr::value(next.version))
            .filter(tenant::Column::Id.eq(id))
            .filter(tenant::Column::Version.eq(current.version))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        if updated.rows_affected != 1 {
            return Err(StoreError::VersionConflict {
                kind: KIND,
                id: id.to_owned(),
                expected: current.version,
                actual: current.version + 1,
            });
        }
        append_change(&txn, Change::upsert(ObjectKind::Tenant, id, id)).await?;
        txn.commit().await.map_err(db_error(operation))?;
        TenantRecord::try_from(next)
    }

    /// Deletes the tenant with its tokens, devices, endpoints, event types
    /// and attempt log, logging a deletion for every tenant, token, device,
    /// endpoint and event type removed. `false` when there is no such tenant.
    pub async fn delete_tenant(&self, id: &str) -> Result<bool, StoreError> {
        let operation = "deleting a tenant";
        let txn = self.begin_write(operation).await?;
        let exists = tenant::Entity::find_by_id(id)
            .one(&txn)
            .await
            .map_err(db_error(operation))?
            .is_some();
        if !exists {
            // Nothing changed: end the transaction (and release the lock) now.
            txn.rollback().await.map_err(db_error(operation))?;
            return Ok(false);
        }

        let token_ids: Vec<String> = token::Entity::find()
            .select_only()
            .column(token::Column::Id)
            .filter(token::Column::TenantId.eq(id))
            .order_by_asc(token::Column::Id)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error(operation))?;
        let device_ids: Vec<String> = device::Entity::find()
            .select_only()
            .column(device::Column::Id)
            .filter(device::Column::TenantId.eq(id))
            .order_by_asc(device::Column::Id)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error(operation))?;
        let endpoint_ids: Vec<String> = endpoint::Entity::find()
            .select_only()
            .column(endpoint::Column::Id)
            .filter(endpoint::Column::TenantId.eq(id))
            .order_by_asc(endpoint::Column::Id)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error(operation))?;
        let event_type_names: Vec<String> = event_type::Entity::find()
            .select_only()
            .column(event_type::Column::Name)
            .filter(event_type::Column::TenantId.eq(id))
            .order_by_asc(event_type::Column::Name)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error(operation))?;

        token::Entity::delete_many()
            .filter(token::Column::TenantId.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        device::Entity::delete_many()
            .filter(device::Column::TenantId.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        endpoint::Entity::delete_many()
            .filter(endpoint::Column::TenantId.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        event_type::Entity::delete_many()
            .filter(event_type::Column::TenantId.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        attempt::Entity::delete_many()
            .filter(attempt::Column::TenantId.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        tenant::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;

        let deleted = |kind, ids: &[String]| {
            ids.iter()
                .map(|object_id| Change::delete(kind, object_id, id))
                .collect::<Vec<_>>()
        };
        let mut changes = deleted(ObjectKind::Token, &token_ids);
        changes.extend(deleted(ObjectKind::Device, &device_ids));
        changes.extend(deleted(ObjectKind::Endpoint, &endpoint_ids));
        changes.extend(deleted(ObjectKind::EventType, &event_type_names));
        changes.push(Change::delete(ObjectKind::Tenant, id, id));
        append_changes(&txn, &changes).await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(true)
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        id: id.to_owned(),
    }
}
