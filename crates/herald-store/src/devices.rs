//! Devices: a tenant's channel lines.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};

use crate::{
    Store, StoreError,
    changes::{Change, append_change},
    check_version, clamp_limit, db_error,
    entity::{device, record, records},
    insert_error,
    records::{DeviceRecord, ObjectKind},
    timestamp::to_micros,
};

const KIND: &str = "device";

/// How many ids one `IN (…)` list carries.
const ID_BATCH: usize = 500;

impl Store {
    /// Inserts a device with version 1; returns the change's revision.
    /// [`StoreError::AlreadyExists`] when the id is taken,
    /// [`StoreError::NotFound`] (kind `tenant`) when the tenant does not exist.
    pub async fn insert_device(&self, device: &DeviceRecord) -> Result<i64, StoreError> {
        let operation = "inserting a device";
        let txn = self.begin_write(operation).await?;
        let mut model = device::Model::from(device);
        model.version = 1;
        device::Entity::insert(model.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(insert_error(
                operation,
                KIND,
                &device.id,
                Some(&device.tenant_id),
            ))?;
        let revision = append_change(
            &txn,
            Change::upsert(ObjectKind::Device, &device.id, &device.tenant_id),
        )
        .await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(revision)
    }

    /// The tenant's device; `None` when it does not exist or belongs to
    /// another tenant.
    pub async fn get_device(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let model = device::Entity::find_by_id(id)
            .filter(device::Column::TenantId.eq(tenant_id))
            .one(&self.connection)
            .await
            .map_err(db_error("reading a device"))?;
        record(model)
    }

    /// A device of any tenant.
    pub async fn get_device_by_id(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let model = device::Entity::find_by_id(id)
            .one(&self.connection)
            .await
            .map_err(db_error("reading a device"))?;
        record(model)
    }

    /// Up to `limit` of the tenant's devices (on `channel` when given) with
    /// an id greater than `after`, by id.
    pub async fn list_devices(
        &self,
        tenant_id: &str,
        channel: Option<&str>,
        limit: u64,
        after: Option<&str>,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut query = device::Entity::find().filter(device::Column::TenantId.eq(tenant_id));
        if let Some(channel) = channel {
            query = query.filter(device::Column::Channel.eq(channel));
        }
        if let Some(after) = after {
            query = query.filter(device::Column::Id.gt(after));
        }
        let models = query
            .order_by_asc(device::Column::Id)
            .limit(clamp_limit(limit))
            .all(&self.connection)
            .await
            .map_err(db_error("listing devices"))?;
        records(models)
    }

    /// Writes `name`, `external_id`, `verification_ciphertext` and
    /// `updated_at` of the device `device.tenant_id`/`device.id` and bumps
    /// its version. [`StoreError::NotFound`] (also for another tenant's
    /// device), [`StoreError::VersionConflict`]. Returns the stored device.
    pub async fn update_device(
        &self,
        device: &DeviceRecord,
        expected_version: Option<i64>,
    ) -> Result<DeviceRecord, StoreError> {
        let operation = "updating a device";
        let txn = self.begin_write(operation).await?;
        let current = device::Entity::find_by_id(&device.id)
            .filter(device::Column::TenantId.eq(&device.tenant_id))
            .one(&txn)
            .await
            .map_err(db_error(operation))?
            .ok_or_else(|| not_found(&device.id))?;
        check_version(KIND, &device.id, expected_version, current.version)?;
        let updated = device::Entity::update_many()
            .col_expr(device::Column::Name, Expr::value(&device.name))
            .col_expr(device::Column::ExternalId, Expr::value(&device.external_id))
            .col_expr(
                device::Column::VerificationCiphertext,
                Expr::value(device.verification_ciphertext.clone()),
            )
            .col_expr(
                device::Column::UpdatedAt,
                Expr::value(to_micros(device.updated_at)),
            )
            .col_expr(device::Column::Version, Expr::value(current.version + 1))
            .filter(device::Column::Id.eq(&device.id))
            .filter(device::Column::Version.eq(current.version))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        if updated.rows_affected != 1 {
            return Err(StoreError::VersionConflict {
                kind: KIND,
                id: device.id.clone(),
                expected: current.version,
                actual: current.version + 1,
            });
        }
        append_change(
            &txn,
            Change::upsert(ObjectKind::Device, &device.id, &device.tenant_id),
        )
        .await?;
        txn.commit().await.map_err(db_error(operation))?;
        DeviceRecord::try_from(device::Model {
            name: device.name.clone(),
            external_id: device.external_id.clone(),
            verification_ciphertext: device.verification_ciphertext.clone(),
            updated_at: to_micros(device.updated_at),
            version: current.version + 1,
            ..current
        })
    }

    /// Deletes the tenant's device; `false` when there is no such device
    /// (or it belongs to another tenant).
    pub async fn delete_device(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        let operation = "deleting a device";
        let txn = self.begin_write(operation).await?;
        let deleted = device::Entity::delete_many()
            .filter(device::Column::Id.eq(id))
            .filter(device::Column::TenantId.eq(tenant_id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?
            .rows_affected;
        if deleted == 0 {
            // Nothing changed: end the transaction (and release the lock) now.
            txn.rollback().await.map_err(db_error(operation))?;
            return Ok(false);
        }
        append_change(&txn, Change::delete(ObjectKind::Device, id, tenant_id)).await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(true)
    }

    /// Which of `ids` are not devices of this tenant, in input order.
    pub async fn missing_devices(
        &self,
        tenant_id: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(ID_BATCH) {
            let existing: Vec<String> = device::Entity::find()
                .select_only()
                .column(device::Column::Id)
                .filter(device::Column::TenantId.eq(tenant_id))
                .filter(device::Column::Id.is_in(chunk.iter().map(String::as_str)))
                .into_tuple()
                .all(&self.connection)
                .await
                .map_err(db_error("checking which devices exist"))?;
            found.extend(existing);
        }
        Ok(ids
            .iter()
            .filter(|id| !found.contains(id.as_str()))
            .cloned()
            .collect())
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        id: id.to_owned(),
    }
}
