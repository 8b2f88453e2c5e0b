//! Webhook endpoints. An endpoint row carries the revision of its last
//! change, so a reader can tell which log entry it reflects.

use sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{BinOper, Expr, ExprTrait, Func},
};

use crate::{
    Store, StoreError,
    changes::{Change, append_change},
    check_version, clamp_limit, db_error,
    entity::{endpoint, record, records},
    insert_error,
    records::{EndpointFilter, EndpointRecord, ObjectKind},
    timestamp::{to_micros, to_micros_opt},
};

const KIND: &str = "endpoint";

impl Store {
    /// Inserts an endpoint with version 1; returns it as stored, with its
    /// version and revision. [`StoreError::AlreadyExists`] when the id is
    /// taken, [`StoreError::NotFound`] (kind `tenant`) when the tenant does
    /// not exist.
    pub async fn insert_endpoint(
        &self,
        endpoint: &EndpointRecord,
    ) -> Result<EndpointRecord, StoreError> {
        let operation = "inserting an endpoint";
        let txn = self.begin_write(operation).await?;
        let revision = append_change(
            &txn,
            Change::upsert(ObjectKind::Endpoint, &endpoint.id, &endpoint.tenant_id),
        )
        .await?;
        let mut model = endpoint::Model::from(endpoint);
        model.version = 1;
        model.revision = revision;
        endpoint::Entity::insert(model.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(insert_error(
                operation,
                KIND,
                &endpoint.id,
                Some(&endpoint.tenant_id),
            ))?;
        txn.commit().await.map_err(db_error(operation))?;
        EndpointRecord::try_from(model)
    }

    /// The tenant's endpoint; `None` when it does not exist or belongs to
    /// another tenant.
    pub async fn get_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let model = endpoint::Entity::find_by_id(id)
            .filter(endpoint::Column::TenantId.eq(tenant_id))
            .one(&self.connection)
            .await
            .map_err(db_error("reading an endpoint"))?;
        record(model)
    }

    /// An endpoint of any tenant.
    pub async fn get_endpoint_by_id(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        let model = endpoint::Entity::find_by_id(id)
            .one(&self.connection)
            .await
            .map_err(db_error("reading an endpoint"))?;
        record(model)
    }

    /// Up to `limit` of the tenant's endpoints matching `filter` with an id
    /// greater than `after`, by id.
    pub async fn list_endpoints(
        &self,
        tenant_id: &str,
        filter: &EndpointFilter,
        limit: u64,
        after: Option<&str>,
    ) -> Result<Vec<EndpointRecord>, StoreError> {
        let mut query = endpoint::Entity::find().filter(endpoint::Column::TenantId.eq(tenant_id));
        if let Some(search) = filter.search.as_deref().filter(|search| !search.is_empty()) {
            query = query.filter(
                Condition::any()
                    .add(contains_ignoring_case(endpoint::Column::Name, search))
                    .add(contains_ignoring_case(endpoint::Column::Url, search)),
            );
        }
        if let Some(status) = &filter.status {
            query = query.filter(endpoint::Column::Status.eq(status));
        }
        if let Some(after) = after {
            query = query.filter(endpoint::Column::Id.gt(after));
        }
        let models = query
            .order_by_asc(endpoint::Column::Id)
            .limit(clamp_limit(limit))
            .all(&self.connection)
            .await
            .map_err(db_error("listing endpoints"))?;
        records(models)
    }

    /// Writes every mutable column (name, url, status, status_reason, spec,
    /// secret_ciphertext, previous_secret_ciphertext,
    /// previous_secret_expires_at, updated_at) of the endpoint
    /// `endpoint.tenant_id`/`endpoint.id`, bumps its version and sets its
    /// revision to the new change's. [`StoreError::NotFound`] (also for
    /// another tenant's endpoint), [`StoreError::VersionConflict`].
    pub async fn update_endpoint(
        &self,
        endpoint: &EndpointRecord,
        expected_version: Option<i64>,
    ) -> Result<EndpointRecord, StoreError> {
        let operation = "updating an endpoint";
        let txn = self.begin_write(operation).await?;
        let current = endpoint::Entity::find_by_id(&endpoint.id)
            .filter(endpoint::Column::TenantId.eq(&endpoint.tenant_id))
            .one(&txn)
            .await
            .map_err(db_error(operation))?
            .ok_or_else(|| not_found(&endpoint.id))?;
        check_version(KIND, &endpoint.id, expected_version, current.version)?;
        let revision = append_change(
            &txn,
            Change::upsert(ObjectKind::Endpoint, &endpoint.id, &endpoint.tenant_id),
        )
        .await?;
        let updated = endpoint::Entity::update_many()
            .col_expr(endpoint::Column::Name, Expr::value(&endpoint.name))
            .col_expr(endpoint::Column::Url, Expr::value(&endpoint.url))
            .col_expr(endpoint::Column::Status, Expr::value(&endpoint.status))
            .col_expr(
                endpoint::Column::StatusReason,
                Expr::value(&endpoint.status_reason),
            )
            .col_expr(endpoint::Column::Spec, Expr::value(endpoint.spec.clone()))
            .col_expr(
                endpoint::Column::SecretCiphertext,
                Expr::value(endpoint.secret_ciphertext.clone()),
            )
            .col_expr(
                endpoint::Column::PreviousSecretCiphertext,
                Expr::value(endpoint.previous_secret_ciphertext.clone()),
            )
            .col_expr(
                endpoint::Column::PreviousSecretExpiresAt,
                Expr::value(to_micros_opt(endpoint.previous_secret_expires_at)),
            )
            .col_expr(
                endpoint::Column::UpdatedAt,
                Expr::value(to_micros(endpoint.updated_at)),
            )
            .col_expr(endpoint::Column::Version, Expr::value(current.version + 1))
            .col_expr(endpoint::Column::Revision, Expr::value(revision))
            .filter(endpoint::Column::Id.eq(&endpoint.id))
            .filter(endpoint::Column::Version.eq(current.version))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        if updated.rows_affected != 1 {
            return Err(StoreError::VersionConflict {
                kind: KIND,
                id: endpoint.id.clone(),
                expected: current.version,
                actual: current.version + 1,
            });
        }
        txn.commit().await.map_err(db_error(operation))?;
        EndpointRecord::try_from(endpoint::Model {
            version: current.version + 1,
            revision,
            id: current.id,
            tenant_id: current.tenant_id,
            created_at: current.created_at,
            ..endpoint::Model::from(endpoint)
        })
    }

    /// Deletes the tenant's endpoint (its attempt log stays until retention
    /// removes it) and returns the deletion's revision; `None` when there is
    /// no such endpoint (or it belongs to another tenant).
    pub async fn delete_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let operation = "deleting an endpoint";
        let txn = self.begin_write(operation).await?;
        let deleted = endpoint::Entity::delete_many()
            .filter(endpoint::Column::Id.eq(id))
            .filter(endpoint::Column::TenantId.eq(tenant_id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?
            .rows_affected;
        if deleted == 0 {
            // Nothing changed: end the transaction (and release the lock) now.
            txn.rollback().await.map_err(db_error(operation))?;
            return Ok(None);
        }
        let revision =
            append_change(&txn, Change::delete(ObjectKind::Endpoint, id, tenant_id)).await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(Some(revision))
    }

    /// How many of the tenant's endpoints have each status, by status.
    pub async fn count_endpoints_by_status(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = endpoint::Entity::find()
            .select_only()
            .column(endpoint::Column::Status)
            .column_as(endpoint::Column::Id.count(), "count")
            .filter(endpoint::Column::TenantId.eq(tenant_id))
            .group_by(endpoint::Column::Status)
            .order_by_asc(endpoint::Column::Status)
            .into_tuple()
            .all(&self.connection)
            .await
            .map_err(db_error("counting endpoints by status"))?;
        Ok(rows
            .into_iter()
            .map(|(status, count)| (status, u64::try_from(count).unwrap_or(0)))
            .collect())
    }
}

/// The escape character of LIKE patterns built by [`like_pattern`].
const LIKE_ESCAPE: char = '\\';

/// `%search%` with `%`, `_` and the escape character taken literally.
fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `LOWER(column) LIKE LOWER('%search%') ESCAPE '\'`: a case-insensitive
/// substring match that behaves the same on PostgreSQL and SQLite (both
/// sides go through the same database's LOWER).
fn contains_ignoring_case(column: endpoint::Column, search: &str) -> Expr {
    let pattern = Expr::Binary(
        Box::new(Func::lower(Expr::val(like_pattern(search))).into()),
        BinOper::Escape,
        Box::new(Expr::Constant(LIKE_ESCAPE.into())),
    );
    Expr::expr(Func::lower(Expr::col(column))).binary(BinOper::Like, pattern)
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        id: id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;

    #[test]
    fn like_patterns_escape_wildcards_and_the_escape_character() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }

    #[test]
    fn search_renders_a_portable_like() {
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let sql = endpoint::Entity::find()
                .filter(contains_ignoring_case(endpoint::Column::Name, "x"))
                .build(backend)
                .to_string();
            assert!(
                sql.contains(r#"LOWER("name") LIKE LOWER('%x%') ESCAPE"#),
                "{backend:?}: {sql}"
            );
        }
    }
}
