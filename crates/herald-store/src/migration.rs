//! Schema migrations, written with sea-query's schema builder so the same
//! definitions create the tables on PostgreSQL and SQLite.
//!
//! A migration, once released, never changes: add a new one instead.

use sea_orm_migration::prelude::*;

/// Every migration of Herald's database, oldest first.
#[derive(Debug)]
pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(InitialSchema),
            Box::new(AttemptDurationMicros),
            Box::new(TenantQuotas),
            Box::new(EventTypeSchema),
            Box::new(AttemptRequestBody),
        ]
    }
}

/// `m0001_initial`: tenants, tokens, devices, endpoints, event types, the
/// attempt log and the change log.
///
/// Timestamps are BIGINT microseconds since the Unix epoch (see
/// `crate::timestamp`); ids are opaque text.
#[derive(Debug)]
struct InitialSchema;

impl MigrationName for InitialSchema {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    Version,
    QuotaEventsPerSecond,
    QuotaEventsBurst,
    QuotaMaxInFlightDeliveries,
    QuotaMaxDeadLetters,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    TenantId,
    Name,
    Scope,
    Prefix,
    SecretSha256,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    TenantId,
    Channel,
    Name,
    ExternalId,
    VerificationCiphertext,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
    TenantId,
    Name,
    Url,
    Status,
    StatusReason,
    Spec,
    SecretCiphertext,
    PreviousSecretCiphertext,
    PreviousSecretExpiresAt,
    CreatedAt,
    UpdatedAt,
    Version,
    Revision,
}

#[derive(DeriveIden)]
enum EventTypes {
    Table,
    TenantId,
    Name,
    Description,
    SampleData,
    CreatedAt,
    Schema,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Id,
    DeliveryId,
    EventId,
    TenantId,
    EndpointId,
    DeviceId,
    EventType,
    Attempt,
    AttemptedAt,
    Status,
    ResponseCode,
    DurationMs,
    DurationMicros,
    ResponseBody,
    Error,
    Url,
    NextAttemptAt,
    Trigger,
    RequestHeadersJson,
    Test,
    RequestBody,
    RequestBodySize,
}

#[derive(DeriveIden)]
enum ConfigChanges {
    Table,
    Revision,
    Kind,
    ObjectId,
    TenantId,
    Deleted,
    ChangedAt,
}

fn text<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

fn bigint<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

fn bigint_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().to_owned()
}

fn int<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().to_owned()
}

fn bytes<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).blob().not_null().to_owned()
}

fn boolean<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().to_owned()
}

/// A foreign key from `table.tenant_id` to `tenants.id`. Deleting a tenant
/// deletes its objects explicitly (to log a change for each), so there is no
/// cascade: the key only refuses objects of a tenant that does not exist.
fn tenant_key<T: IntoIden>(name: &str, table: T, column: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

fn index<T: IntoIden>(name: &str, table: T, columns: Vec<T>) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(column);
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for InitialSchema {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(text(Tenants::Id).primary_key())
                    .col(text(Tenants::Name))
                    .col(bigint(Tenants::CreatedAt))
                    .col(bigint(Tenants::UpdatedAt))
                    .col(bigint(Tenants::Version))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tokens::Table)
                    .col(text(Tokens::Id).primary_key())
                    .col(text(Tokens::TenantId))
                    .col(text(Tokens::Name))
                    .col(text(Tokens::Scope))
                    .col(text(Tokens::Prefix))
                    .col(text(Tokens::SecretSha256))
                    .col(bigint(Tokens::CreatedAt))
                    .col(bigint_null(Tokens::ExpiresAt))
                    .col(bigint_null(Tokens::LastUsedAt))
                    .col(bigint_null(Tokens::RevokedAt))
                    .foreign_key(&mut tenant_key(
                        "fk_tokens_tenant",
                        Tokens::Table,
                        Tokens::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_tokens_secret_sha256",
                    Tokens::Table,
                    vec![Tokens::SecretSha256],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_tokens_tenant_id",
                Tokens::Table,
                vec![Tokens::TenantId, Tokens::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .col(text(Devices::Id).primary_key())
                    .col(text(Devices::TenantId))
                    .col(text(Devices::Channel))
                    .col(text(Devices::Name))
                    .col(text(Devices::ExternalId))
                    .col(bytes(Devices::VerificationCiphertext))
                    .col(bigint(Devices::CreatedAt))
                    .col(bigint(Devices::UpdatedAt))
                    .col(bigint(Devices::Version))
                    .foreign_key(&mut tenant_key(
                        "fk_devices_tenant",
                        Devices::Table,
                        Devices::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_devices_tenant_id",
                Devices::Table,
                vec![Devices::TenantId, Devices::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Endpoints::Table)
                    .col(text(Endpoints::Id).primary_key())
                    .col(text(Endpoints::TenantId))
                    .col(text(Endpoints::Name))
                    .col(text(Endpoints::Url))
                    .col(text(Endpoints::Status))
                    .col(text(Endpoints::StatusReason))
                    .col(bytes(Endpoints::Spec))
                    .col(bytes(Endpoints::SecretCiphertext))
                    .col(
                        ColumnDef::new(Endpoints::PreviousSecretCiphertext)
                            .blob()
                            .null(),
                    )
                    .col(bigint_null(Endpoints::PreviousSecretExpiresAt))
                    .col(bigint(Endpoints::CreatedAt))
                    .col(bigint(Endpoints::UpdatedAt))
                    .col(bigint(Endpoints::Version))
                    .col(bigint(Endpoints::Revision))
                    .foreign_key(&mut tenant_key(
                        "fk_endpoints_tenant",
                        Endpoints::Table,
                        Endpoints::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_endpoints_tenant_id",
                Endpoints::Table,
                vec![Endpoints::TenantId, Endpoints::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EventTypes::Table)
                    .col(text(EventTypes::TenantId))
                    .col(text(EventTypes::Name))
                    .col(text(EventTypes::Description))
                    .col(bytes(EventTypes::SampleData))
                    .col(bigint(EventTypes::CreatedAt))
                    .primary_key(
                        Index::create()
                            .name("pk_event_types")
                            .col(EventTypes::TenantId)
                            .col(EventTypes::Name),
                    )
                    .foreign_key(&mut tenant_key(
                        "fk_event_types_tenant",
                        EventTypes::Table,
                        EventTypes::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;

        // No foreign keys: the attempt log outlives endpoints, and an attempt
        // of a tenant deleted a moment ago must not poison the writer.
        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .col(text(Attempts::Id).primary_key())
                    .col(text(Attempts::DeliveryId))
                    .col(text(Attempts::EventId))
                    .col(text(Attempts::TenantId))
                    .col(text(Attempts::EndpointId))
                    .col(text(Attempts::DeviceId))
                    .col(text(Attempts::EventType))
                    .col(int(Attempts::Attempt))
                    .col(bigint(Attempts::AttemptedAt))
                    .col(text(Attempts::Status))
                    .col(int(Attempts::ResponseCode))
                    .col(bigint(Attempts::DurationMs))
                    .col(bytes(Attempts::ResponseBody))
                    .col(text(Attempts::Error))
                    .col(text(Attempts::Url))
                    .col(bigint_null(Attempts::NextAttemptAt))
                    .col(text(Attempts::Trigger))
                    .col(text(Attempts::RequestHeadersJson))
                    .col(boolean(Attempts::Test))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_attempts_tenant_time",
                Attempts::Table,
                vec![Attempts::TenantId, Attempts::AttemptedAt, Attempts::Id],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_attempts_tenant_endpoint_time",
                Attempts::Table,
                vec![
                    Attempts::TenantId,
                    Attempts::EndpointId,
                    Attempts::AttemptedAt,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_attempts_delivery",
                Attempts::Table,
                vec![Attempts::DeliveryId],
            ))
            .await?;
        // For the retention delete, which spans tenants.
        manager
            .create_index(index(
                "ix_attempts_time",
                Attempts::Table,
                vec![Attempts::AttemptedAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ConfigChanges::Table)
                    .col(bigint(ConfigChanges::Revision).primary_key())
                    .col(text(ConfigChanges::Kind))
                    .col(text(ConfigChanges::ObjectId))
                    .col(text(ConfigChanges::TenantId))
                    .col(boolean(ConfigChanges::Deleted))
                    .col(bigint(ConfigChanges::ChangedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_config_changes_changed_at",
                ConfigChanges::Table,
                vec![ConfigChanges::ChangedAt],
            ))
            .await?;

        Ok(())
    }
}

/// `m0002_attempt_duration_micros`: attempt durations in microseconds
/// (sub-millisecond answers are common on a local network). The column is
/// nullable so existing rows need no rewrite: a row without it reads its
/// whole milliseconds, and `duration_ms` is still written for releases that
/// read only it.
#[derive(Debug)]
struct AttemptDurationMicros;

impl MigrationName for AttemptDurationMicros {
    fn name(&self) -> &str {
        "m0002_attempt_duration_micros"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AttemptDurationMicros {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Attempts::Table)
                    .add_column(bigint_null(Attempts::DurationMicros))
                    .to_owned(),
            )
            .await
    }
}

/// `m0003_tenant_quotas`: a tenant's own quotas, each NULL for the service's
/// default, so existing tenants keep the defaults without a rewrite. One
/// `ALTER TABLE` per column: SQLite adds one column per statement.
#[derive(Debug)]
struct TenantQuotas;

impl MigrationName for TenantQuotas {
    fn name(&self) -> &str {
        "m0003_tenant_quotas"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for TenantQuotas {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(Tenants::QuotaEventsPerSecond)
                .double()
                .null()
                .to_owned(),
            bigint_null(Tenants::QuotaEventsBurst),
            bigint_null(Tenants::QuotaMaxInFlightDeliveries),
            bigint_null(Tenants::QuotaMaxDeadLetters),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tenants::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// `m0004_event_type_schema`: a custom event type's JSON Schema of `data`,
/// empty for the types registered before schemas existed (and for those
/// registered without one), which then accept any data as before.
#[derive(Debug)]
struct EventTypeSchema;

impl MigrationName for EventTypeSchema {
    fn name(&self) -> &str {
        "m0004_event_type_schema"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for EventTypeSchema {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EventTypes::Table)
                    .add_column(text(EventTypes::Schema).default("").to_owned())
                    .to_owned(),
            )
            .await
    }
}

/// `m0005_attempt_request_body`: the body each attempt sent (its first
/// 64 KiB) and its whole size, NULL in older rows.
#[derive(Debug)]
struct AttemptRequestBody;

impl MigrationName for AttemptRequestBody {
    fn name(&self) -> &str {
        "m0005_attempt_request_body"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AttemptRequestBody {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(Attempts::RequestBody)
                .blob()
                .null()
                .to_owned(),
            bigint_null(Attempts::RequestBodySize),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Attempts::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
