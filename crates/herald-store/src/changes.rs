//! The change log (`config_changes`) and the snapshot reads the Watch stream
//! starts from.

use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr,
    EntityTrait, IntoActiveModel, IsolationLevel, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::{Expr, ExprTrait, Func, Query},
};
use time::OffsetDateTime;

use crate::{
    Store, StoreError, db_error,
    entity::{change, device, endpoint, event_type, records, tenant, token},
    records::{
        ChangeRecord, DeviceRecord, EndpointRecord, EventTypeRecord, ObjectKind, Snapshot,
        TenantRecord, TokenRecord,
    },
    timestamp::to_micros,
};

/// One object changed by a write, to be logged.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub kind: ObjectKind,
    pub object_id: String,
    pub tenant_id: String,
    pub deleted: bool,
}

impl Change {
    pub(crate) fn upsert(kind: ObjectKind, object_id: &str, tenant_id: &str) -> Change {
        Change {
            kind,
            object_id: object_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            deleted: false,
        }
    }

    pub(crate) fn delete(kind: ObjectKind, object_id: &str, tenant_id: &str) -> Change {
        Change {
            deleted: true,
            ..Change::upsert(kind, object_id, tenant_id)
        }
    }
}

/// How many change rows one INSERT carries.
const CHANGE_BATCH: usize = 1_000;

/// Appends `changes` to the log inside `txn`, which must come from
/// [`Store::begin_write`] (the lock makes `MAX + 1` safe). Returns the
/// revision of the last one appended (the current revision when `changes`
/// is empty).
pub(crate) async fn append_changes(
    txn: &DatabaseTransaction,
    changes: &[Change],
) -> Result<i64, StoreError> {
    let operation = "appending to the change log";
    let mut next = max_revision(txn).await.map_err(db_error(operation))? + 1;
    let changed_at = to_micros(OffsetDateTime::now_utc());
    for chunk in changes.chunks(CHANGE_BATCH) {
        let models: Vec<change::ActiveModel> = chunk
            .iter()
            .map(|change| {
                let model = change::Model {
                    revision: next,
                    kind: change.kind.as_str().to_owned(),
                    object_id: change.object_id.clone(),
                    tenant_id: change.tenant_id.clone(),
                    deleted: change.deleted,
                    changed_at,
                };
                next += 1;
                model.into_active_model()
            })
            .collect();
        change::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await
            .map_err(db_error(operation))?;
    }
    Ok(next - 1)
}

/// Appends one change; returns its revision. One statement: `INSERT …
/// SELECT COALESCE(MAX(revision), 0) + 1, … RETURNING revision`, under the
/// write lock like [`append_changes`].
pub(crate) async fn append_change(
    txn: &DatabaseTransaction,
    change: Change,
) -> Result<i64, StoreError> {
    let operation = "appending to the change log";
    let next_revision = Expr::expr(Func::coalesce([
        Func::max(Expr::col(change::Column::Revision)).into(),
        Expr::val(0_i64),
    ]))
    .add(1_i64);
    let values = Query::select()
        .expr(next_revision)
        .expr(Expr::val(change.kind.as_str()))
        .expr(Expr::val(change.object_id))
        .expr(Expr::val(change.tenant_id))
        .expr(Expr::val(change.deleted))
        .expr(Expr::val(to_micros(OffsetDateTime::now_utc())))
        .from(change::Entity)
        .to_owned();
    let insert = Query::insert()
        .into_table(change::Entity)
        .columns([
            change::Column::Revision,
            change::Column::Kind,
            change::Column::ObjectId,
            change::Column::TenantId,
            change::Column::Deleted,
            change::Column::ChangedAt,
        ])
        .select_from(values)
        .map_err(|error| StoreError::Database {
            operation,
            source: DbErr::Custom(error.to_string()),
        })?
        .returning_col(change::Column::Revision)
        .to_owned();
    let row = txn
        .query_one(&insert)
        .await
        .map_err(db_error(operation))?
        .ok_or_else(|| StoreError::Database {
            operation,
            source: DbErr::RecordNotInserted,
        })?;
    row.try_get("", "revision").map_err(db_error(operation))
}

async fn max_revision<C: ConnectionTrait>(db: &C) -> Result<i64, sea_orm::DbErr> {
    let max: Option<Option<i64>> = change::Entity::find()
        .select_only()
        .column_as(change::Column::Revision.max(), "revision")
        .into_tuple()
        .one(db)
        .await?;
    Ok(max.flatten().unwrap_or(0))
}

impl Store {
    /// The newest revision in the change log; 0 when it is empty.
    pub async fn current_revision(&self) -> Result<i64, StoreError> {
        max_revision(&self.connection)
            .await
            .map_err(db_error("reading the current revision"))
    }

    /// Up to `limit` changes after `revision`, oldest first.
    pub async fn changes_since(
        &self,
        revision: i64,
        limit: u64,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let models = change::Entity::find()
            .filter(change::Column::Revision.gt(revision))
            .order_by_asc(change::Column::Revision)
            .limit(crate::clamp_limit(limit))
            .all(&self.connection)
            .await
            .map_err(db_error("reading the change log"))?;
        records(models)
    }

    /// The oldest revision still in the log; `None` when it is empty.
    pub async fn oldest_revision(&self) -> Result<Option<i64>, StoreError> {
        let min: Option<Option<i64>> = change::Entity::find()
            .select_only()
            .column_as(change::Column::Revision.min(), "revision")
            .into_tuple()
            .one(&self.connection)
            .await
            .map_err(db_error("reading the oldest revision"))?;
        Ok(min.flatten())
    }

    /// Deletes changes logged before `cutoff`, except the newest one (which
    /// keeps [`Store::current_revision`] where it is). Returns how many were
    /// deleted.
    pub async fn prune_changes_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let operation = "pruning the change log";
        let txn = self.begin_plain(operation).await?;
        let newest = max_revision(&txn).await.map_err(db_error(operation))?;
        let deleted = change::Entity::delete_many()
            .filter(change::Column::ChangedAt.lt(to_micros(cutoff)))
            .filter(change::Column::Revision.lt(newest))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?
            .rows_affected;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(deleted)
    }

    /// Every tenant, by id.
    pub async fn all_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        all_tenants(&self.connection).await
    }

    /// Every token that is not revoked, by id.
    pub async fn all_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        all_tokens(&self.connection).await
    }

    /// Every device, by id.
    pub async fn all_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        all_devices(&self.connection).await
    }

    /// Every endpoint, by id.
    pub async fn all_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        all_endpoints(&self.connection).await
    }

    /// Every custom event type, by tenant and name.
    pub async fn all_event_types(&self) -> Result<Vec<EventTypeRecord>, StoreError> {
        all_event_types(&self.connection).await
    }

    /// Everything the Watch snapshot needs and the revision it reflects,
    /// read in one consistent transaction (REPEATABLE READ on PostgreSQL):
    /// replaying `changes_since(snapshot.revision)` afterwards misses nothing.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let operation = "reading a snapshot";
        let txn = match self.connection.get_database_backend() {
            DatabaseBackend::Postgres => {
                self.connection
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
            _ => self.connection.begin().await,
        }
        .map_err(db_error(operation))?;
        let snapshot = Snapshot {
            revision: max_revision(&txn).await.map_err(db_error(operation))?,
            tenants: all_tenants(&txn).await?,
            tokens: all_tokens(&txn).await?,
            devices: all_devices(&txn).await?,
            endpoints: all_endpoints(&txn).await?,
            event_types: all_event_types(&txn).await?,
        };
        txn.commit().await.map_err(db_error(operation))?;
        Ok(snapshot)
    }
}

async fn all_tenants<C: ConnectionTrait>(db: &C) -> Result<Vec<TenantRecord>, StoreError> {
    let models = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(db)
        .await
        .map_err(db_error("reading every tenant"))?;
    records(models)
}

async fn all_tokens<C: ConnectionTrait>(db: &C) -> Result<Vec<TokenRecord>, StoreError> {
    let models = token::Entity::find()
        .filter(token::Column::RevokedAt.is_null())
        .order_by_asc(token::Column::Id)
        .all(db)
        .await
        .map_err(db_error("reading every token"))?;
    records(models)
}

async fn all_devices<C: ConnectionTrait>(db: &C) -> Result<Vec<DeviceRecord>, StoreError> {
    let models = device::Entity::find()
        .order_by_asc(device::Column::Id)
        .all(db)
        .await
        .map_err(db_error("reading every device"))?;
    records(models)
}

async fn all_endpoints<C: ConnectionTrait>(db: &C) -> Result<Vec<EndpointRecord>, StoreError> {
    let models = endpoint::Entity::find()
        .order_by_asc(endpoint::Column::Id)
        .all(db)
        .await
        .map_err(db_error("reading every endpoint"))?;
    records(models)
}

async fn all_event_types<C: ConnectionTrait>(db: &C) -> Result<Vec<EventTypeRecord>, StoreError> {
    let models = event_type::Entity::find()
        .order_by_asc(event_type::Column::TenantId)
        .order_by_asc(event_type::Column::Name)
        .all(db)
        .await
        .map_err(db_error("reading every event type"))?;
    records(models)
}
