//! A tenant's custom event types, keyed by (tenant, name).

use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};

use crate::{
    Store, StoreError,
    changes::{Change, append_change},
    clamp_limit, db_error,
    entity::{event_type, record, records},
    insert_error,
    records::{EventTypeRecord, ObjectKind},
};

const KIND: &str = "event_type";

impl Store {
    /// Registers an event type; returns the change's revision.
    /// [`StoreError::AlreadyExists`] when the tenant has one of that name,
    /// [`StoreError::NotFound`] (kind `tenant`) when the tenant does not exist.
    pub async fn insert_event_type(&self, event_type: &EventTypeRecord) -> Result<i64, StoreError> {
        let operation = "inserting an event type";
        let txn = self.begin_write(operation).await?;
        event_type::Entity::insert(event_type::Model::from(event_type).into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(insert_error(
                operation,
                KIND,
                &event_type.name,
                Some(&event_type.tenant_id),
            ))?;
        let revision = append_change(
            &txn,
            Change::upsert(
                ObjectKind::EventType,
                &event_type.name,
                &event_type.tenant_id,
            ),
        )
        .await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(revision)
    }

    pub async fn get_event_type(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<EventTypeRecord>, StoreError> {
        let model = event_type::Entity::find_by_id((tenant_id.to_owned(), name.to_owned()))
            .one(&self.connection)
            .await
            .map_err(db_error("reading an event type"))?;
        record(model)
    }

    /// Up to `limit` of the tenant's event types named after `after`, by name.
    pub async fn list_event_types(
        &self,
        tenant_id: &str,
        limit: u64,
        after: Option<&str>,
    ) -> Result<Vec<EventTypeRecord>, StoreError> {
        let mut query =
            event_type::Entity::find().filter(event_type::Column::TenantId.eq(tenant_id));
        if let Some(after) = after {
            query = query.filter(event_type::Column::Name.gt(after));
        }
        let models = query
            .order_by_asc(event_type::Column::Name)
            .limit(clamp_limit(limit))
            .all(&self.connection)
            .await
            .map_err(db_error("listing event types"))?;
        records(models)
    }

    /// Deletes the tenant's event type; `false` when there is none.
    pub async fn delete_event_type(&self, tenant_id: &str, name: &str) -> Result<bool, StoreError> {
        let operation = "deleting an event type";
        let txn = self.begin_write(operation).await?;
        let deleted = event_type::Entity::delete_many()
            .filter(event_type::Column::TenantId.eq(tenant_id))
            .filter(event_type::Column::Name.eq(name))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?
            .rows_affected;
        if deleted == 0 {
            // Nothing changed: end the transaction (and release the lock) now.
            txn.rollback().await.map_err(db_error(operation))?;
            return Ok(false);
        }
        append_change(&txn, Change::delete(ObjectKind::EventType, name, tenant_id)).await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(true)
    }
}
