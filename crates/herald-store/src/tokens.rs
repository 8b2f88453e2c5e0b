//! API tokens. Only the SHA-256 of a secret is stored, under a unique index.

use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use time::OffsetDateTime;

use crate::{
    Store, StoreError,
    changes::{Change, append_change},
    clamp_limit, db_error,
    entity::{record, records, token},
    insert_error,
    records::{ObjectKind, TokenRecord},
    timestamp::to_micros,
};

const KIND: &str = "token";

impl Store {
    /// Inserts a token; returns the change's revision.
    /// [`StoreError::AlreadyExists`] when the id or the secret hash is taken,
    /// [`StoreError::NotFound`] (kind `tenant`) when the tenant does not exist.
    pub async fn insert_token(&self, token: &TokenRecord) -> Result<i64, StoreError> {
        let operation = "inserting a token";
        let txn = self.begin_write(operation).await?;
        token::Entity::insert(token::Model::from(token).into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(insert_error(
                operation,
                KIND,
                &token.id,
                Some(&token.tenant_id),
            ))?;
        let revision = append_change(
            &txn,
            Change::upsert(ObjectKind::Token, &token.id, &token.tenant_id),
        )
        .await?;
        txn.commit().await.map_err(db_error(operation))?;
        Ok(revision)
    }

    pub async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let model = token::Entity::find_by_id(id)
            .one(&self.connection)
            .await
            .map_err(db_error("reading a token"))?;
        record(model)
    }

    /// The token whose secret hashes to `secret_sha256`, revoked or not
    /// (the caller checks `revoked_at` and `expires_at`).
    pub async fn find_token_by_secret_hash(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let model = token::Entity::find()
            .filter(token::Column::SecretSha256.eq(secret_sha256))
            .one(&self.connection)
            .await
            .map_err(db_error("looking a token up by its secret"))?;
        record(model)
    }

    /// Up to `limit` of the tenant's tokens with an id greater than `after`,
    /// by id.
    pub async fn list_tokens(
        &self,
        tenant_id: &str,
        include_revoked: bool,
        limit: u64,
        after: Option<&str>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut query = token::Entity::find().filter(token::Column::TenantId.eq(tenant_id));
        if !include_revoked {
            query = query.filter(token::Column::RevokedAt.is_null());
        }
        if let Some(after) = after {
            query = query.filter(token::Column::Id.gt(after));
        }
        let models = query
            .order_by_asc(token::Column::Id)
            .limit(clamp_limit(limit))
            .all(&self.connection)
            .await
            .map_err(db_error("listing tokens"))?;
        records(models)
    }

    /// Revokes a token at `now`. Idempotent: revoking a revoked token keeps
    /// its first `revoked_at` and logs no change. [`StoreError::NotFound`].
    pub async fn revoke_token(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<TokenRecord, StoreError> {
        let operation = "revoking a token";
        let txn = self.begin_write(operation).await?;
        let current = token::Entity::find_by_id(id)
            .one(&txn)
            .await
            .map_err(db_error(operation))?
            .ok_or_else(|| not_found(id))?;
        if current.revoked_at.is_some() {
            txn.commit().await.map_err(db_error(operation))?;
            return TokenRecord::try_from(current);
        }
        token::Entity::update_many()
            .col_expr(token::Column::RevokedAt, Expr::value(to_micros(now)))
            .filter(token::Column::Id.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error(operation))?;
        append_change(
            &txn,
            Change::upsert(ObjectKind::Token, id, &current.tenant_id),
        )
        .await?;
        txn.commit().await.map_err(db_error(operation))?;
        TokenRecord::try_from(token::Model {
            revoked_at: Some(to_micros(now)),
            ..current
        })
    }

    /// Records that a token was used at `now`. Not watched state: logs no
    /// change and takes no lock. [`StoreError::NotFound`].
    pub async fn touch_token(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let updated = token::Entity::update_many()
            .col_expr(token::Column::LastUsedAt, Expr::value(to_micros(now)))
            .filter(token::Column::Id.eq(id))
            .exec(&self.connection)
            .await
            .map_err(db_error("recording a token's use"))?;
        if updated.rows_affected == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        id: id.to_owned(),
    }
}
