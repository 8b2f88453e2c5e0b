//! The attempt log: written idempotently by the attempt writer, read newest
//! first with keyset paging. Not watched state: no change rows.

use std::{collections::HashMap, fmt::Write as _};

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value,
    sea_query::{Alias, Expr, ExprTrait, Func, Query},
};
use time::OffsetDateTime;

use crate::{
    Store, StoreError, clamp_limit, db_error,
    entity::{attempt, device, record, records},
    records::{
        AttemptCursor, AttemptFilter, AttemptRecord, DeliveryCounts, EndpointActivity,
        FailedDelivery, FailingEndpoint,
    },
    timestamp::{from_micros, to_micros, to_micros_opt},
};

/// The attempts table's columns, in the order [`push_attempt_values`] binds
/// them.
const ATTEMPT_COLUMNS: [&str; 22] = [
    "id",
    "delivery_id",
    "event_id",
    "tenant_id",
    "endpoint_id",
    "device_id",
    "event_type",
    "attempt",
    "attempted_at",
    "status",
    "response_code",
    "duration_ms",
    "duration_micros",
    "response_body",
    "error",
    "url",
    "next_attempt_at",
    "trigger",
    "request_headers_json",
    "test",
    "request_body",
    "request_body_size",
];

/// Numbered placeholders (`$n` on PostgreSQL, `?n` on SQLite), so a value
/// bound once can stand in several places of a statement.
struct Binder {
    backend: DatabaseBackend,
    values: Vec<Value>,
}

impl Binder {
    fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        match self.backend {
            DatabaseBackend::Postgres => format!("${}", self.values.len()),
            _ => format!("?{}", self.values.len()),
        }
    }
}

/// Failed attempts since the last success are counted up to this many.
pub const MAX_COUNTED_FAILURES: u64 = 10_000;
/// The success rate is read over at most this many of the newest attempts.
pub const MAX_WINDOW_ATTEMPTS: u64 = 1_000;

/// The channel name of events that came from no device.
const INTERNAL_CHANNEL: &str = "internal";

/// The most rows one INSERT carries: 22 columns × 256 rows = 5,632 bound
/// parameters, far under both backends' limits (PostgreSQL 65,535; SQLite
/// 32,766).
const MAX_ROWS_PER_INSERT: usize = 256;

impl Store {
    /// Stores attempts, skipping any whose id is already stored (INSERT … ON
    /// CONFLICT (id) DO NOTHING, so a redelivered record, or one listed twice,
    /// makes one row), in one transaction. Returns how many rows were
    /// actually inserted.
    ///
    /// This is the attempt writer's hot path, so it binds plain values into
    /// multi-row INSERTs of its own text rather than building a model per
    /// row. Each INSERT carries a power of two of rows (at most
    /// [`MAX_ROWS_PER_INSERT`]): a batch of any size takes at most nine
    /// statements, and only nine statement texts exist, so every one stays
    /// prepared in the connection's statement cache instead of being parsed
    /// again for each new batch size.
    pub async fn insert_attempts(&self, attempts: &[AttemptRecord]) -> Result<u64, StoreError> {
        if attempts.is_empty() {
            return Ok(0);
        }
        let operation = "inserting attempts";
        let backend = self.connection.get_database_backend();
        // In id order, so two replicas writing overlapping batches take
        // their row locks in the same order and cannot deadlock.
        let mut sorted: Vec<&AttemptRecord> = attempts.iter().collect();
        sorted.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let txn = self.begin_plain(operation).await?;
        let mut inserted = 0;
        let mut remaining = sorted.as_slice();
        while !remaining.is_empty() {
            let rows = rows_per_insert(remaining.len());
            let (chunk, rest) = remaining.split_at(rows);
            remaining = rest;
            let mut values = Vec::with_capacity(rows * ATTEMPT_COLUMNS.len());
            for attempt in chunk {
                push_attempt_values(&mut values, attempt);
            }
            let result = txn
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    insert_attempts_sql(backend, rows),
                    values,
                ))
                .await
                .map_err(db_error(operation))?;
            inserted += result.rows_affected();
        }
        txn.commit().await.map_err(db_error(operation))?;
        Ok(inserted)
    }

    /// The tenant's attempt; `None` when it does not exist or belongs to
    /// another tenant.
    pub async fn get_attempt(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let model = attempt::Entity::find_by_id(id)
            .filter(attempt::Column::TenantId.eq(tenant_id))
            .one(&self.connection)
            .await
            .map_err(db_error("reading an attempt"))?;
        record(model)
    }

    /// Up to `limit` of the tenant's attempts matching `filter`, newest first
    /// (`attempted_at` then `id`, both descending), continuing after `after`.
    pub async fn list_attempts(
        &self,
        tenant_id: &str,
        filter: &AttemptFilter,
        limit: u64,
        after: Option<&AttemptCursor>,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut query = attempt::Entity::find().filter(attempt::Column::TenantId.eq(tenant_id));
        if let Some(endpoint_id) = &filter.endpoint_id {
            query = query.filter(attempt::Column::EndpointId.eq(endpoint_id));
        }
        if let Some(event_type) = &filter.event_type {
            query = query.filter(attempt::Column::EventType.eq(event_type));
        }
        if let Some(status) = &filter.status {
            query = query.filter(attempt::Column::Status.eq(status));
        }
        if let Some(event_id) = &filter.event_id {
            query = query.filter(attempt::Column::EventId.eq(event_id));
        }
        if let Some(device_id) = &filter.device_id {
            query = query.filter(attempt::Column::DeviceId.eq(device_id));
        }
        match filter.channel.as_deref() {
            None => {}
            Some(INTERNAL_CHANNEL) => query = query.filter(attempt::Column::DeviceId.eq("")),
            Some(channel) => {
                query = query.filter(
                    attempt::Column::DeviceId.in_subquery(
                        Query::select()
                            .column(device::Column::Id)
                            .from(device::Entity)
                            .and_where(device::Column::TenantId.eq(tenant_id))
                            .and_where(device::Column::Channel.eq(channel))
                            .to_owned(),
                    ),
                );
            }
        }
        if let Some(since) = filter.since {
            query = query.filter(attempt::Column::AttemptedAt.gte(to_micros(since)));
        }
        if let Some(until) = filter.until {
            query = query.filter(attempt::Column::AttemptedAt.lt(to_micros(until)));
        }
        if let Some(cursor) = after {
            // (attempted_at, id) < (cursor), spelt out for both backends.
            let at = to_micros(cursor.attempted_at);
            query = query.filter(
                Condition::any()
                    .add(attempt::Column::AttemptedAt.lt(at))
                    .add(
                        Condition::all()
                            .add(attempt::Column::AttemptedAt.eq(at))
                            .add(attempt::Column::Id.lt(&cursor.id)),
                    ),
            );
        }
        let models = query
            .order_by_desc(attempt::Column::AttemptedAt)
            .order_by_desc(attempt::Column::Id)
            .limit(clamp_limit(limit))
            .all(&self.connection)
            .await
            .map_err(db_error("listing attempts"))?;
        records(models)
    }

    /// The tenant's deliveries (distinct `delivery_id`s) with attempts at or
    /// after `since`, by outcome over those attempts: succeeded (a
    /// `succeeded` attempt), failed (a `failed` or `dead` attempt and no
    /// `succeeded` one), pending (only `retrying` attempts). A delivery with
    /// other statuses and no final one (e.g. only `skipped`) is in none.
    pub async fn delivery_counts(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> Result<DeliveryCounts, StoreError> {
        let operation = "counting deliveries";
        let status = || Expr::col(attempt::Column::Status);
        let count_when = |condition: Expr| Func::count(Expr::case(condition, 1));
        let succeeded = Alias::new("succeeded");
        let finals_failed = Alias::new("failed");
        let not_retrying = Alias::new("not_retrying");
        let per_delivery = Query::select()
            .column(attempt::Column::DeliveryId)
            .expr_as(count_when(status().eq("succeeded")), succeeded.clone())
            .expr_as(
                count_when(status().is_in(["failed", "dead"])),
                finals_failed.clone(),
            )
            .expr_as(count_when(status().ne("retrying")), not_retrying.clone())
            .from(attempt::Entity)
            .and_where(attempt::Column::TenantId.eq(tenant_id))
            .and_where(attempt::Column::AttemptedAt.gte(to_micros(since)))
            .group_by_col(attempt::Column::DeliveryId)
            .to_owned();
        let counts = Query::select()
            .expr_as(
                count_when(Expr::col(succeeded.clone()).gt(0)),
                Alias::new("succeeded"),
            )
            .expr_as(
                count_when(
                    Expr::col(succeeded.clone())
                        .eq(0)
                        .and(Expr::col(finals_failed.clone()).gt(0)),
                ),
                Alias::new("failed"),
            )
            .expr_as(
                count_when(Expr::col(not_retrying.clone()).eq(0)),
                Alias::new("pending"),
            )
            .from_subquery(per_delivery, Alias::new("deliveries"))
            .to_owned();
        let row = self
            .connection
            .query_one(&counts)
            .await
            .map_err(db_error(operation))?;
        let Some(row) = row else {
            return Ok(DeliveryCounts::default());
        };
        let get = |column: &str| -> Result<u64, StoreError> {
            let count: i64 = row.try_get("", column).map_err(db_error(operation))?;
            Ok(u64::try_from(count).unwrap_or(0))
        };
        Ok(DeliveryCounts {
            succeeded: get("succeeded")?,
            failed: get("failed")?,
            pending: get("pending")?,
        })
    }

    /// The endpoint's deliveries (tests aside) whose latest attempt is
    /// `failed` or `dead`, made at or after `since`, and that never
    /// succeeded: at most `limit`, by delivery id.
    pub async fn failed_deliveries(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        since: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        let operation = "finding failed deliveries";
        let attempt_number = || Expr::col(attempt::Column::Attempt);
        let is_final_failure = || {
            Expr::col(attempt::Column::Status)
                .is_in(["failed", "dead"])
                .and(Expr::col(attempt::Column::AttemptedAt).gte(to_micros(since)))
        };
        let query = Query::select()
            .column(attempt::Column::DeliveryId)
            .expr_as(
                Func::min(Expr::col(attempt::Column::EventId)),
                Alias::new("event_id"),
            )
            .expr_as(Func::max(attempt_number()), Alias::new("last_attempt"))
            .from(attempt::Entity)
            .and_where(attempt::Column::TenantId.eq(tenant_id))
            .and_where(attempt::Column::EndpointId.eq(endpoint_id))
            .and_where(attempt::Column::Test.eq(false))
            .group_by_col(attempt::Column::DeliveryId)
            .and_having(
                Func::count(Expr::case(
                    Expr::col(attempt::Column::Status).eq("succeeded"),
                    1,
                ))
                .eq(0),
            )
            // The latest attempt is a final failure within the window.
            .and_having(
                Func::max(Expr::case(is_final_failure(), attempt_number()))
                    .eq(Func::max(attempt_number())),
            )
            .order_by(attempt::Column::DeliveryId, sea_orm::Order::Asc)
            .limit(clamp_limit(limit))
            .to_owned();
        let rows = self
            .connection
            .query_all(&query)
            .await
            .map_err(db_error(operation))?;
        rows.iter()
            .map(|row| {
                Ok(FailedDelivery {
                    delivery_id: row
                        .try_get("", "delivery_id")
                        .map_err(db_error(operation))?,
                    event_id: row.try_get("", "event_id").map_err(db_error(operation))?,
                    last_attempt: row
                        .try_get("", "last_attempt")
                        .map_err(db_error(operation))?,
                })
            })
            .collect()
    }

    /// Endpoints whose attempts (tests aside) have all failed since at
    /// least `failing_before`, that were still being attempted after it,
    /// and that have not succeeded since: what auto-disable pauses.
    pub async fn endpoints_failing_since(
        &self,
        failing_before: OffsetDateTime,
    ) -> Result<Vec<FailingEndpoint>, StoreError> {
        let operation = "finding failing endpoints";
        let failure = || Expr::col(attempt::Column::Status).is_in(["retrying", "failed", "dead"]);
        let at = || Expr::col(attempt::Column::AttemptedAt);
        // Candidates: no success at or after the cut-off, failures after it.
        let candidates = Query::select()
            .column(attempt::Column::TenantId)
            .column(attempt::Column::EndpointId)
            .expr_as(
                Func::max(Expr::case(
                    Expr::col(attempt::Column::Status).eq("succeeded"),
                    at(),
                )),
                Alias::new("last_success"),
            )
            .from(attempt::Entity)
            .and_where(attempt::Column::Test.eq(false))
            .group_by_col(attempt::Column::TenantId)
            .group_by_col(attempt::Column::EndpointId)
            .and_having(
                Func::count(Expr::case(
                    failure().and(at().gte(to_micros(failing_before))),
                    1,
                ))
                .gt(0),
            )
            .and_having(
                Func::count(Expr::case(
                    Expr::col(attempt::Column::Status)
                        .eq("succeeded")
                        .and(at().gte(to_micros(failing_before))),
                    1,
                ))
                .eq(0),
            )
            .to_owned();
        let rows = self
            .connection
            .query_all(&candidates)
            .await
            .map_err(db_error(operation))?;
        let mut failing = Vec::new();
        for row in rows {
            let tenant_id: String = row.try_get("", "tenant_id").map_err(db_error(operation))?;
            let endpoint_id: String = row
                .try_get("", "endpoint_id")
                .map_err(db_error(operation))?;
            let last_success: Option<i64> = row
                .try_get("", "last_success")
                .map_err(db_error(operation))?;
            // The first failure after the last success starts the run.
            let mut first_failure = attempt::Entity::find()
                .filter(attempt::Column::EndpointId.eq(&endpoint_id))
                .filter(attempt::Column::Test.eq(false))
                .filter(attempt::Column::Status.is_in(["retrying", "failed", "dead"]));
            if let Some(last_success) = last_success {
                first_failure = first_failure.filter(attempt::Column::AttemptedAt.gt(last_success));
            }
            let first_failure = first_failure
                .order_by_asc(attempt::Column::AttemptedAt)
                .one(&self.connection)
                .await
                .map_err(db_error(operation))?;
            if let Some(first) = first_failure
                && first.attempted_at <= to_micros(failing_before)
            {
                failing.push(FailingEndpoint {
                    tenant_id,
                    endpoint_id,
                    failing_since: crate::timestamp::from_micros(
                        "attempt",
                        &first.id,
                        "attempted_at",
                        first.attempted_at,
                    )?,
                });
            }
        }
        Ok(failing)
    }

    /// The highest attempt number recorded for a delivery, if any.
    pub async fn last_attempt_number(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> Result<Option<i32>, StoreError> {
        let model = attempt::Entity::find()
            .filter(attempt::Column::TenantId.eq(tenant_id))
            .filter(attempt::Column::DeliveryId.eq(delivery_id))
            .order_by_desc(attempt::Column::Attempt)
            .one(&self.connection)
            .await
            .map_err(db_error("reading a delivery's last attempt"))?;
        Ok(model.map(|model| model.attempt))
    }

    /// Deletes every tenant's attempts from before `cutoff` (retention).
    /// Returns how many were deleted.
    pub async fn delete_attempts_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = attempt::Entity::delete_many()
            .filter(attempt::Column::AttemptedAt.lt(to_micros(cutoff)))
            .exec(&self.connection)
            .await
            .map_err(db_error("deleting old attempts"))?;
        Ok(deleted.rows_affected)
    }

    /// How each of the tenant's `endpoint_ids` has been doing, in one
    /// query: every figure is read through the (tenant, endpoint, time)
    /// index, and the counts are bounded (the newest attempts only), so a
    /// busy or long-failing endpoint costs no more than a quiet one. An
    /// endpoint without attempts is left out.
    pub async fn endpoint_activity(
        &self,
        tenant_id: &str,
        endpoint_ids: &[String],
        window_start: OffsetDateTime,
    ) -> Result<HashMap<String, EndpointActivity>, StoreError> {
        let operation = "reading endpoints' activity";
        if endpoint_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let backend = self.connection.get_database_backend();
        let mut binder = Binder {
            backend,
            values: Vec::new(),
        };
        let listed = endpoint_ids
            .iter()
            .map(|id| format!("({})", binder.bind(Value::from(id.as_str()))))
            .collect::<Vec<_>>()
            .join(", ");
        let tenant = binder.bind(Value::from(tenant_id));
        let start = binder.bind(Value::from(to_micros(window_start)));
        let of_endpoint = |column: &str| {
            format!("FROM attempts a WHERE a.tenant_id = {tenant} AND a.endpoint_id = {column}")
        };
        let newest = |select: &str| {
            format!(
                "(SELECT {select} {} ORDER BY a.attempted_at DESC, a.id DESC LIMIT 1)",
                of_endpoint("listed.endpoint_id")
            )
        };
        let (last_attempt_at, last_status, last_code) = (
            newest("a.attempted_at"),
            newest("a.status"),
            newest("CAST(a.response_code AS BIGINT)"),
        );
        let last_success_at = format!(
            "(SELECT MAX(a.attempted_at) {} AND a.status = 'succeeded')",
            of_endpoint("listed.endpoint_id")
        );
        let failures = format!(
            "(SELECT COUNT(*) FROM (SELECT 1 AS one {} AND a.attempted_at > COALESCE(r.last_success_at, 0) \
             AND a.status IN ('failed', 'retrying', 'dead') LIMIT {MAX_COUNTED_FAILURES}) f)",
            of_endpoint("r.endpoint_id")
        );
        let window = |only_succeeded: bool| {
            format!(
                "(SELECT COUNT(*) FROM (SELECT a.status {} AND a.attempted_at >= {start} \
                 ORDER BY a.attempted_at DESC LIMIT {MAX_WINDOW_ATTEMPTS}) w{})",
                of_endpoint("r.endpoint_id"),
                if only_succeeded {
                    " WHERE w.status = 'succeeded'"
                } else {
                    ""
                }
            )
        };
        let (window_attempts, window_succeeded) = (window(false), window(true));
        let sql = format!(
            "WITH listed(endpoint_id) AS (VALUES {listed}), \
             r AS (SELECT listed.endpoint_id AS endpoint_id, {last_attempt_at} AS last_attempt_at, \
             {last_status} AS last_status, {last_code} AS last_code, \
             {last_success_at} AS last_success_at FROM listed) \
             SELECT r.endpoint_id, r.last_attempt_at, r.last_status, r.last_code, r.last_success_at, \
             {failures} AS failures, {window_attempts} AS window_attempts, \
             {window_succeeded} AS window_succeeded \
             FROM r WHERE r.last_attempt_at IS NOT NULL"
        );
        let values = binder.values;
        let rows = self
            .connection
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(db_error(operation))?;
        let mut activity = HashMap::with_capacity(rows.len());
        for row in rows {
            let get_i64 = |column: &str| -> Result<Option<i64>, StoreError> {
                row.try_get::<Option<i64>>("", column)
                    .map_err(db_error(operation))
            };
            let endpoint_id: String = row
                .try_get("", "endpoint_id")
                .map_err(db_error(operation))?;
            let at = |column: &str| -> Result<Option<OffsetDateTime>, StoreError> {
                get_i64(column)?
                    .map(|micros| from_micros("endpoint", &endpoint_id, column, micros))
                    .transpose()
            };
            let last_attempt = match at("last_attempt_at")? {
                Some(moment) => {
                    let status: Option<String> = row
                        .try_get("", "last_status")
                        .map_err(db_error(operation))?;
                    let code = get_i64("last_code")?.unwrap_or_default();
                    Some((
                        moment,
                        status.unwrap_or_default(),
                        i32::try_from(code).unwrap_or_default(),
                    ))
                }
                None => None,
            };
            let count = |column: &str| -> Result<u64, StoreError> {
                Ok(get_i64(column)?
                    .and_then(|count| u64::try_from(count).ok())
                    .unwrap_or_default())
            };
            let record = EndpointActivity {
                last_attempt,
                last_success_at: at("last_success_at")?,
                consecutive_failures: count("failures")?,
                window_attempts: count("window_attempts")?,
                window_succeeded: count("window_succeeded")?,
            };
            activity.insert(endpoint_id, record);
        }
        Ok(activity)
    }

    /// Forgets the bodies the tenant's endpoint was sent (the attempts
    /// stay, with their sizes); returns how many attempts had one.
    pub async fn purge_request_bodies(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> Result<u64, StoreError> {
        let purged = attempt::Entity::update_many()
            .col_expr(
                attempt::Column::RequestBody,
                Expr::value(Value::Bytes(None)),
            )
            .filter(attempt::Column::TenantId.eq(tenant_id))
            .filter(attempt::Column::EndpointId.eq(endpoint_id))
            .filter(attempt::Column::RequestBody.is_not_null())
            .exec(&self.connection)
            .await
            .map_err(db_error("purging stored request bodies"))?;
        Ok(purged.rows_affected)
    }
}

/// The largest power of two of rows, at most [`MAX_ROWS_PER_INSERT`], that
/// `remaining` rows fill.
fn rows_per_insert(remaining: usize) -> usize {
    let capped = remaining.clamp(1, MAX_ROWS_PER_INSERT);
    1 << capped.ilog2()
}

/// `INSERT INTO attempts (…) VALUES (…), … ON CONFLICT (id) DO NOTHING` for
/// `rows` rows, with the backend's placeholders.
fn insert_attempts_sql(backend: DatabaseBackend, rows: usize) -> String {
    let columns = ATTEMPT_COLUMNS.len();
    let mut sql = String::with_capacity(128 + rows * columns * 6);
    sql.push_str("INSERT INTO attempts (");
    sql.push_str(&ATTEMPT_COLUMNS.join(", "));
    sql.push_str(") VALUES ");
    let mut parameter = 0_usize;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            parameter += 1;
            match backend {
                DatabaseBackend::Postgres => {
                    let _ = write!(sql, "${parameter}");
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

/// One row's values, in [`ATTEMPT_COLUMNS`] order.
fn push_attempt_values(values: &mut Vec<Value>, attempt: &AttemptRecord) {
    values.extend([
        Value::from(attempt.id.as_str()),
        Value::from(attempt.delivery_id.as_str()),
        Value::from(attempt.event_id.as_str()),
        Value::from(attempt.tenant_id.as_str()),
        Value::from(attempt.endpoint_id.as_str()),
        Value::from(attempt.device_id.as_str()),
        Value::from(attempt.event_type.as_str()),
        Value::from(attempt.attempt),
        Value::from(to_micros(attempt.attempted_at)),
        Value::from(attempt.status.as_str()),
        Value::from(attempt.response_code),
        // Whole milliseconds too, for releases that read only those.
        Value::from(attempt.duration_micros / 1_000),
        Value::from(Some(attempt.duration_micros)),
        Value::from(attempt.response_body.clone()),
        Value::from(attempt.error.as_str()),
        Value::from(attempt.url.as_str()),
        Value::BigInt(to_micros_opt(attempt.next_attempt_at)),
        Value::from(attempt.trigger.as_str()),
        Value::from(attempt.request_headers_json.as_str()),
        Value::from(attempt.test),
        Value::from(Some(attempt.request_body.clone())),
        Value::from(Some(
            i64::try_from(attempt.request_body_size).unwrap_or(i64::MAX),
        )),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_carry_powers_of_two_of_rows_up_to_the_maximum() {
        let split = |mut remaining: usize| {
            let mut sizes = Vec::new();
            while remaining > 0 {
                let rows = rows_per_insert(remaining);
                sizes.push(rows);
                remaining -= rows;
            }
            sizes
        };
        assert_eq!(split(1), [1]);
        assert_eq!(split(200), [128, 64, 8]);
        assert_eq!(split(256), [256]);
        assert_eq!(split(600), [256, 256, 64, 16, 8]);
        for total in 1..=1_000 {
            let sizes = split(total);
            assert_eq!(sizes.iter().sum::<usize>(), total);
            assert!(
                sizes
                    .iter()
                    .all(|rows| rows.is_power_of_two() && *rows <= MAX_ROWS_PER_INSERT)
            );
        }
    }

    #[test]
    fn placeholders_follow_the_backend() {
        let postgres = insert_attempts_sql(DatabaseBackend::Postgres, 2);
        assert!(postgres.contains("($1, $2,"), "{postgres}");
        assert!(postgres.contains("$44)"), "{postgres}");
        assert!(postgres.ends_with(" ON CONFLICT (id) DO NOTHING"));
        let sqlite = insert_attempts_sql(DatabaseBackend::Sqlite, 2);
        assert_eq!(sqlite.matches('?').count(), 44);
    }
}
