//! One function per command: build the request, call, print.

use std::{io::IsTerminal, time::Duration};

use clap::CommandFactory;
use futures::StreamExt;
use herald_proto::duration_to_wire as duration;
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    attempt_service_client::AttemptServiceClient, config_service_client::ConfigServiceClient,
    ingest_service_client::IngestServiceClient, recovery_service_client::RecoveryServiceClient,
    simulate_transformation_request::Input as SimulateInput,
};
use time::OffsetDateTime;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    cli::{
        AttemptStatusName, ChannelName, Cli, Command, DeadLetterSelection, DevicesCommand,
        DlqCommand, EndpointFields, EndpointsCommand, EventTypesCommand, EventsCommand, Format,
        JobsCommand, LogFilter, LogsCommand, Moment, PageArgs, QuotasCommand, RecoverArgs, Retry,
        SchemeName, Scope, StatusName, TenantsCommand, TokensCommand, TransformationsCommand,
        VerificationArgs, VerifyArgs, WaitArgs, read_argument,
    },
    connection::Target,
    error::CtlError,
    output::{
        Table, badge, print_list, print_one, print_single, print_table, print_value, progress_bar,
        relative,
    },
    settings,
};

pub async fn run(cli: Cli) -> Result<(), CtlError> {
    let format = cli.output;
    let target = Target::resolve(&cli)?;
    match cli.command {
        Command::Login { with_token } => login(&target, with_token.or(cli.token)),
        Command::Tenants(command) => tenants(&target, format, command).await,
        Command::Tokens(command) => tokens(&target, format, command).await,
        Command::Devices(command) => devices(&target, format, command).await,
        Command::Endpoints(command) => endpoints(&target, format, command).await,
        Command::EventTypes(command) => event_types(&target, format, command).await,
        Command::Summary => summary(&target, format).await,
        Command::Transformations(command) => transformations(&target, format, command).await,
        Command::Logs(command) => logs(&target, format, command).await,
        Command::Events(command) => events(&target, format, command).await,
        Command::Recover(args) => recover(&target, format, args).await,
        Command::Dlq(command) => dlq(&target, format, command).await,
        Command::Jobs(command) => jobs(&target, format, command).await,
        Command::Verify(args) => verify(format, args),
        Command::Health => health(&target, format).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "heraldctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// Saves `token` (else the one saved before, to keep it at a new address);
/// never the admin token from `HERALD_ADMIN_TOKEN`, which is for `tenants`
/// and `tokens` only.
fn login(target: &Target, token: Option<String>) -> Result<(), CtlError> {
    let token = match token {
        Some(token) => token,
        None => settings::load()?.token.ok_or_else(|| {
            CtlError::Usage("pass the token with --with-token (or --token / HERALD_TOKEN)".into())
        })?,
    };
    let path = settings::save(&settings::Saved {
        addr: Some(target.addr.clone()),
        ingest_addr: Some(target.ingest_addr.clone()),
        token: Some(token),
        tenant: target.tenant.clone(),
    })?;
    eprintln!("saved {} and its token to {}", target.addr, path.display());
    Ok(())
}

/// Calls `fetch` with successive page tokens: once, or to the end with `--all`.
async fn pages<T, F, Fut>(page: &PageArgs, mut fetch: F) -> Result<Vec<T>, CtlError>
where
    F: FnMut(u32, String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), CtlError>>,
{
    let mut items = Vec::new();
    let mut token = page.page_token.clone();
    let show_progress = page.all && std::io::stderr().is_terminal();
    loop {
        let (batch, next) = fetch(page.page_size, token).await?;
        items.extend(batch);
        if show_progress {
            eprint!("\rfetched {}…", items.len());
        }
        if !page.all || next.is_empty() {
            if show_progress {
                eprintln!();
            }
            if !next.is_empty() {
                eprintln!("more results: --page-token {next} (or --all)");
            }
            return Ok(items);
        }
        token = next;
    }
}

const TENANT_COLUMNS: [&str; 3] = ["ID", "NAME", "CREATED"];

fn tenant_row(tenant: &pb::Tenant) -> Vec<String> {
    vec![
        tenant.id.clone(),
        tenant.name.clone(),
        relative(tenant.created_at.as_ref()),
    ]
}

async fn tenants(target: &Target, format: Format, command: TenantsCommand) -> Result<(), CtlError> {
    let mut admin = AdminServiceClient::new(target.config_channel().await?);
    match command {
        TenantsCommand::Create { name } => {
            let tenant = admin
                .create_tenant(target.admin_request(pb::CreateTenantRequest { name })?)
                .await?
                .into_inner();
            print_single(
                format,
                "herald.v1.Tenant",
                &TENANT_COLUMNS,
                &tenant,
                tenant_row,
            )
        }
        TenantsCommand::List(page) => {
            let tenants = pages(&page, |page_size, page_token| {
                let mut admin = admin.clone();
                let request = target.admin_request(pb::ListTenantsRequest {
                    page_size,
                    page_token,
                });
                async move {
                    let response = admin.list_tenants(request?).await?.into_inner();
                    Ok((response.tenants, response.next_page_token))
                }
            })
            .await?;
            print_list(
                format,
                "herald.v1.Tenant",
                &TENANT_COLUMNS,
                &tenants,
                tenant_row,
            )
        }
        TenantsCommand::Get { tenant_id } => {
            let tenant = admin
                .get_tenant(target.admin_request(pb::GetTenantRequest { tenant_id })?)
                .await?
                .into_inner();
            print_one(format, "herald.v1.Tenant", &tenant)
        }
        TenantsCommand::Quotas(QuotasCommand::Set {
            tenant_id,
            events_per_second,
            events_burst,
            max_in_flight_deliveries,
            max_dead_letters,
        }) => {
            let current = admin
                .get_tenant(target.admin_request(pb::GetTenantRequest {
                    tenant_id: tenant_id.clone(),
                })?)
                .await?
                .into_inner();
            let mut quotas = current.quotas.unwrap_or_default();
            if let Some(value) = events_per_second {
                quotas.events_per_second = value;
            }
            if let Some(value) = events_burst {
                quotas.events_burst = value;
            }
            if let Some(value) = max_in_flight_deliveries {
                quotas.max_in_flight_deliveries = value;
            }
            if let Some(value) = max_dead_letters {
                quotas.max_dead_letters = value;
            }
            // The etag read: a concurrent change fails (ABORTED) instead of
            // being overwritten with what was read before it.
            let tenant = admin
                .update_tenant(target.admin_request(pb::UpdateTenantRequest {
                    tenant_id,
                    name: String::new(),
                    etag: current.etag,
                    quotas: Some(quotas),
                })?)
                .await?
                .into_inner();
            print_one(format, "herald.v1.Tenant", &tenant)
        }
    }
}

const TOKEN_COLUMNS: [&str; 6] = ["ID", "NAME", "SCOPE", "PREFIX", "LAST USED", "REVOKED"];

fn token_row(token: &pb::ApiToken) -> Vec<String> {
    vec![
        token.id.clone(),
        token.name.clone(),
        enum_word("TokenScope", token.scope().as_str_name()),
        token.prefix.clone(),
        relative(token.last_used_at.as_ref()),
        relative(token.revoked_at.as_ref()),
    ]
}

async fn tokens(target: &Target, format: Format, command: TokensCommand) -> Result<(), CtlError> {
    let mut admin = AdminServiceClient::new(target.config_channel().await?);
    match command {
        TokensCommand::Create {
            tenant,
            name,
            scope,
            ttl,
        } => {
            let scope = match scope {
                Scope::Tenant => pb::TokenScope::Tenant,
                Scope::Publish => pb::TokenScope::Publish,
                Scope::Read => pb::TokenScope::Read,
            };
            let created = admin
                .create_token(target.admin_request(pb::CreateTokenRequest {
                    tenant_id: tenant,
                    name,
                    scope: scope.into(),
                    ttl: ttl.map(duration),
                })?)
                .await?
                .into_inner();
            match format {
                Format::Table => {
                    eprintln!("the token is shown only now; keep it somewhere safe:");
                    println!("{}", created.secret);
                    Ok(())
                }
                _ => print_one(format, "herald.v1.CreateTokenResponse", &created),
            }
        }
        TokensCommand::List {
            tenant,
            include_revoked,
        } => {
            let tokens = admin
                .list_tokens(target.admin_request(pb::ListTokensRequest {
                    tenant_id: tenant,
                    include_revoked,
                    page_size: 500,
                    page_token: String::new(),
                })?)
                .await?
                .into_inner()
                .tokens;
            print_list(
                format,
                "herald.v1.ApiToken",
                &TOKEN_COLUMNS,
                &tokens,
                token_row,
            )
        }
        TokensCommand::Revoke { token_id } => {
            let token = admin
                .revoke_token(target.admin_request(pb::RevokeTokenRequest { token_id })?)
                .await?
                .into_inner();
            print_single(
                format,
                "herald.v1.ApiToken",
                &TOKEN_COLUMNS,
                &token,
                token_row,
            )
        }
    }
}

fn verification(channel: ChannelName, args: VerificationArgs) -> pb::DeviceVerification {
    use pb::device_verification::Channel as Verification;
    let channel = match channel {
        ChannelName::Waba => Verification::Waba(pb::WabaVerification {
            app_secret: args.app_secret.unwrap_or_default(),
            verify_token: args.verify_token.unwrap_or_default(),
        }),
        ChannelName::Telegram => Verification::Telegram(pb::TelegramVerification {
            secret_token: args.secret_token.unwrap_or_default(),
        }),
        ChannelName::Whatsapp => Verification::Whatsapp(pb::GatewayVerification {
            hmac_key: args.hmac_key.unwrap_or_default(),
        }),
    };
    pb::DeviceVerification {
        channel: Some(channel),
        configured: false,
    }
}

const DEVICE_COLUMNS: [&str; 8] = [
    "ID",
    "CHANNEL",
    "NAME",
    "EXTERNAL ID",
    "CREATED",
    "LAST WEBHOOK",
    "EVENTS 24H",
    "REFUSED 24H",
];

fn device_row(device: &pb::Device) -> Vec<String> {
    let health = device.health.clone().unwrap_or_default();
    let last_webhook = if health.last_webhook_at.is_some() {
        relative(health.last_webhook_at.as_ref())
    } else {
        "never".to_owned()
    };
    vec![
        device.id.clone(),
        enum_word("Channel", device.channel().as_str_name()),
        device.name.clone(),
        device.external_id.clone(),
        relative(device.created_at.as_ref()),
        last_webhook,
        health.events_24h.to_string(),
        health.verification_failures_24h.to_string(),
    ]
}

const EVENT_TYPE_COLUMNS: [&str; 5] = ["NAME", "LABEL", "CHANNELS", "KIND", "SCHEMA"];

fn event_type_row(definition: &pb::EventTypeDefinition) -> Vec<String> {
    vec![
        definition.name.clone(),
        definition.label.clone(),
        if definition.channels.is_empty() {
            "-".to_owned()
        } else {
            definition.channels.join(",")
        },
        if definition.catalog {
            "catalog"
        } else {
            "custom"
        }
        .to_owned(),
        if definition.schema.is_empty() {
            "no"
        } else {
            "yes"
        }
        .to_owned(),
    ]
}

async fn event_types(
    target: &Target,
    format: Format,
    command: EventTypesCommand,
) -> Result<(), CtlError> {
    let mut config = ConfigServiceClient::new(target.config_channel().await?);
    let definition = match command {
        EventTypesCommand::List(page) => {
            let definitions = pages(&page, |page_size, page_token| {
                let mut config = config.clone();
                let request = target.request(pb::ListEventTypesRequest {
                    page_size,
                    page_token,
                });
                async move {
                    let response = config.list_event_types(request?).await?.into_inner();
                    Ok((response.event_types, response.next_page_token))
                }
            })
            .await?;
            return print_list(
                format,
                "herald.v1.EventTypeDefinition",
                &EVENT_TYPE_COLUMNS,
                &definitions,
                event_type_row,
            );
        }
        EventTypesCommand::Register {
            name,
            description,
            sample,
            schema,
        } => {
            let sample_data = sample.map(|sample| read_argument(&sample)).transpose()?;
            let schema = schema.map(|schema| read_argument(&schema)).transpose()?;
            let schema = String::from_utf8(schema.unwrap_or_default())
                .map_err(|_| CtlError::Usage("--schema is not UTF-8 text".into()))?;
            config
                .register_event_type(target.request(pb::RegisterEventTypeRequest {
                    name,
                    description,
                    sample_data: sample_data.unwrap_or_default().into(),
                    schema,
                })?)
                .await?
                .into_inner()
        }
        EventTypesCommand::Delete { name } => {
            config
                .delete_event_type(
                    target.request(pb::DeleteEventTypeRequest { name: name.clone() })?,
                )
                .await?;
            eprintln!("deleted {name}");
            return Ok(());
        }
    };
    print_single(
        format,
        "herald.v1.EventTypeDefinition",
        &EVENT_TYPE_COLUMNS,
        &definition,
        event_type_row,
    )
}

async fn devices(target: &Target, format: Format, command: DevicesCommand) -> Result<(), CtlError> {
    let mut config = ConfigServiceClient::new(target.config_channel().await?);
    let device = match command {
        DevicesCommand::Create {
            channel,
            name,
            external_id,
            verification: args,
        } => {
            let wire_channel = match channel {
                ChannelName::Whatsapp => pb::Channel::Whatsapp,
                ChannelName::Telegram => pb::Channel::Telegram,
                ChannelName::Waba => pb::Channel::Waba,
            };
            config
                .create_device(target.request(pb::CreateDeviceRequest {
                    channel: wire_channel.into(),
                    name,
                    external_id,
                    verification: Some(verification(channel, args)),
                })?)
                .await?
                .into_inner()
        }
        DevicesCommand::List(page) => {
            let devices = pages(&page, |page_size, page_token| {
                let mut config = config.clone();
                let request = target.request(pb::ListDevicesRequest {
                    page_size,
                    page_token,
                    channel: 0,
                });
                async move {
                    let response = config.list_devices(request?).await?.into_inner();
                    Ok((response.devices, response.next_page_token))
                }
            })
            .await?;
            return print_list(
                format,
                "herald.v1.Device",
                &DEVICE_COLUMNS,
                &devices,
                device_row,
            );
        }
        DevicesCommand::Get { device_id } => config
            .get_device(target.request(pb::GetDeviceRequest { device_id })?)
            .await?
            .into_inner(),
        DevicesCommand::Update {
            device_id,
            name,
            external_id,
        } => {
            let mut paths = Vec::new();
            if name.is_some() {
                paths.push("name".to_owned());
            }
            if external_id.is_some() {
                paths.push("external_id".to_owned());
            }
            if paths.is_empty() {
                return Err(CtlError::Usage(
                    "nothing to update: pass --name or --external-id".into(),
                ));
            }
            config
                .update_device(target.request(pb::UpdateDeviceRequest {
                    device_id,
                    name: name.unwrap_or_default(),
                    external_id: external_id.unwrap_or_default(),
                    verification: None,
                    update_mask: Some(prost_types::FieldMask { paths }),
                    etag: String::new(),
                })?)
                .await?
                .into_inner()
        }
        DevicesCommand::Delete { device_id } => {
            config
                .delete_device(target.request(pb::DeleteDeviceRequest {
                    device_id: device_id.clone(),
                })?)
                .await?;
            eprintln!("deleted {device_id}");
            return Ok(());
        }
    };
    print_single(
        format,
        "herald.v1.Device",
        &DEVICE_COLUMNS,
        &device,
        device_row,
    )
}

/// The spec the flags describe, and the update mask naming what they set.
fn endpoint_spec(fields: EndpointFields) -> Result<(pb::EndpointSpec, Vec<String>), CtlError> {
    let mut spec = pb::EndpointSpec::default();
    let mut paths = Vec::new();
    let mut set = |path: &str| paths.push(path.to_owned());
    if let Some(file) = &fields.transformation_file {
        spec.transformation = Some(pb::Transformation {
            code: read_file(file)?,
        });
        set("transformation");
    }
    if let Some(name) = fields.name {
        spec.name = name;
        set("name");
    }
    if let Some(url) = fields.url {
        spec.url = url;
        set("url");
    }
    if let Some(description) = fields.description {
        spec.description = description;
        set("description");
    }
    if let Some(events) = fields.events {
        spec.event_types = events;
        set("event_types");
    }
    if let Some(devices) = fields.devices {
        spec.device_ids = devices;
        set("device_ids");
    }
    if let Some(preset) = fields.preset {
        spec.preset = preset;
        set("preset");
    }
    if let Some(scheme) = fields.scheme {
        spec.signing_scheme = match scheme {
            SchemeName::Standard => pb::SigningScheme::Standard,
            SchemeName::Sha256Hex => pb::SigningScheme::Sha256Hex,
            SchemeName::Hex => pb::SigningScheme::Hex,
            SchemeName::SharedSecret => pb::SigningScheme::SharedSecret,
        }
        .into();
        set("signing_scheme");
    }
    if let Some(header) = fields.signature_header {
        spec.signature_header = header;
        set("signature_header");
    }
    if let Some(timeout) = fields.timeout {
        spec.timeout = Some(duration(timeout));
        set("timeout");
    }
    if let Some(retry) = fields.retry {
        spec.retry = Some(match retry {
            Retry::Default => pb::RetryPolicy {
                use_default: true,
                ..pb::RetryPolicy::default()
            },
            Retry::Delays(delays) => pb::RetryPolicy {
                delays: delays.into_iter().map(duration).collect(),
                jitter: 0.0,
                use_default: false,
            },
        });
        set("retry");
    }
    Ok((spec, paths))
}

const ENDPOINT_COLUMNS: [&str; 7] = [
    "ID", "NAME", "URL", "STATUS", "DEVICES", "EVENTS", "UPDATED",
];

fn endpoint_row(endpoint: &pb::Endpoint) -> Vec<String> {
    let spec = endpoint.spec.clone().unwrap_or_default();
    let events = if spec.event_types.is_empty() {
        "all".to_owned()
    } else {
        spec.event_types.join(",")
    };
    let devices = if spec.device_ids.is_empty() {
        "all".to_owned()
    } else {
        spec.device_ids.len().to_string()
    };
    vec![
        endpoint.id.clone(),
        spec.name,
        spec.url,
        badge(&status_word(endpoint.status())),
        devices,
        events,
        relative(endpoint.updated_at.as_ref()),
    ]
}

fn status_word(status: pb::EndpointStatus) -> String {
    enum_word("EndpointStatus", status.as_str_name())
}

/// An enum value as every output names it (`pending_test`).
fn enum_word(enum_name: &str, value_name: &str) -> String {
    herald_proto::json::short_enum_name(enum_name, value_name)
}

fn print_secrets(format: Format, secrets: &pb::EndpointSecrets) -> Result<(), CtlError> {
    print_single(
        format,
        "herald.v1.EndpointSecrets",
        &["CURRENT", "PREVIOUS", "PREVIOUS EXPIRES"],
        secrets,
        |secrets| {
            vec![
                secrets.current.clone(),
                if secrets.previous.is_empty() {
                    "-".to_owned()
                } else {
                    secrets.previous.clone()
                },
                relative(secrets.previous_expires_at.as_ref()),
            ]
        },
    )
}

/// Why a test delivery did not pass, and what it left the endpoint as.
fn test_failure(attempt: &pb::Attempt, status: pb::EndpointStatus) -> String {
    let reason = match (attempt.error.trim(), attempt.response_code) {
        ("", 0) => "no answer".to_owned(),
        ("", code) if (200..300).contains(&code) => {
            format!("the receiver answered {code}; only 200 or 201 activates an endpoint")
        }
        ("", code) => format!("the receiver answered {code}"),
        (error, _) => one_line(error),
    };
    format!("{reason} (the endpoint is {})", status_word(status))
}

/// `text` on one line: a receiver's body or an error chain may hold breaks.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn endpoints(
    target: &Target,
    format: Format,
    command: EndpointsCommand,
) -> Result<(), CtlError> {
    let mut config = ConfigServiceClient::new(target.config_channel().await?);
    let endpoint = match command {
        EndpointsCommand::Create { fields, secret } => {
            let (spec, _) = endpoint_spec(fields)?;
            let created = config
                .create_endpoint(target.request(pb::CreateEndpointRequest {
                    spec: Some(spec),
                    secret: secret.unwrap_or_default(),
                })?)
                .await?
                .into_inner();
            return match format {
                Format::Table => {
                    let endpoint = created.endpoint.clone().unwrap_or_default();
                    let mut row = endpoint_row(&endpoint);
                    row.push(created.secret.clone());
                    let mut columns = ENDPOINT_COLUMNS.to_vec();
                    columns.push("SECRET");
                    print_table(&Table {
                        columns,
                        rows: vec![row],
                    })?;
                    eprintln!(
                        "the signing secret is also shown by `heraldctl endpoints secret {}`",
                        endpoint.id
                    );
                    Ok(())
                }
                _ => print_one(format, "herald.v1.CreateEndpointResponse", &created),
            };
        }
        EndpointsCommand::List {
            search,
            status,
            page,
        } => {
            let status = status.map(|status| match status {
                StatusName::PendingTest => pb::EndpointStatus::PendingTest,
                StatusName::Active => pb::EndpointStatus::Active,
                StatusName::Disabled => pb::EndpointStatus::Disabled,
                StatusName::Failing => pb::EndpointStatus::Failing,
            });
            let endpoints = pages(&page, |page_size, page_token| {
                let mut config = config.clone();
                let request = target.request(pb::ListEndpointsRequest {
                    page_size,
                    page_token,
                    search: search.clone().unwrap_or_default(),
                    status: status.map(i32::from).unwrap_or_default(),
                });
                async move {
                    let response = config.list_endpoints(request?).await?.into_inner();
                    Ok((response.endpoints, response.next_page_token))
                }
            })
            .await?;
            return print_list(
                format,
                "herald.v1.Endpoint",
                &ENDPOINT_COLUMNS,
                &endpoints,
                endpoint_row,
            );
        }
        EndpointsCommand::Get { endpoint_id } => config
            .get_endpoint(target.request(pb::GetEndpointRequest { endpoint_id })?)
            .await?
            .into_inner(),
        EndpointsCommand::Update {
            endpoint_id,
            fields,
        } => {
            let (spec, paths) = endpoint_spec(fields)?;
            if paths.is_empty() {
                return Err(CtlError::Usage(
                    "nothing to update: pass at least one field flag".into(),
                ));
            }
            config
                .update_endpoint(target.request(pb::UpdateEndpointRequest {
                    endpoint_id,
                    spec: Some(spec),
                    update_mask: Some(prost_types::FieldMask { paths }),
                    etag: String::new(),
                })?)
                .await?
                .into_inner()
        }
        EndpointsCommand::Delete { endpoint_id } => {
            config
                .delete_endpoint(target.request(pb::DeleteEndpointRequest {
                    endpoint_id: endpoint_id.clone(),
                })?)
                .await?;
            eprintln!("deleted {endpoint_id}");
            return Ok(());
        }
        EndpointsCommand::Enable { endpoint_id } => config
            .enable_endpoint(target.request(pb::EnableEndpointRequest { endpoint_id })?)
            .await?
            .into_inner(),
        EndpointsCommand::Disable {
            endpoint_id,
            reason,
        } => config
            .disable_endpoint(target.request(pb::DisableEndpointRequest {
                endpoint_id,
                reason,
            })?)
            .await?
            .into_inner(),
        EndpointsCommand::Test {
            endpoint_id,
            event_type,
            device,
        } => {
            let tested = config
                .test_endpoint(target.request(pb::TestEndpointRequest {
                    endpoint_id,
                    event_type: event_type.unwrap_or_default(),
                    timeout: None,
                    device_id: device.unwrap_or_default(),
                })?)
                .await?
                .into_inner();
            let attempt = tested.attempt.clone().unwrap_or_default();
            let endpoint = tested.endpoint.clone().unwrap_or_default();
            if format == Format::Table {
                let duration = attempt
                    .duration
                    .map(|d| format!("{} ms", milliseconds(&d)))
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&attempt.response_body)
                    .chars()
                    .take(200)
                    .collect::<String>();
                print_table(&Table {
                    columns: vec!["RESPONSE", "TIME", "ENDPOINT STATUS", "ERROR", "BODY"],
                    rows: vec![vec![
                        attempt.response_code.to_string(),
                        duration,
                        badge(&status_word(endpoint.status())),
                        one_line(&attempt.error),
                        one_line(&body),
                    ]],
                })?;
            } else {
                print_one(format, "herald.v1.TestEndpointResponse", &tested)?;
            }
            let passed = herald_core::matching::test_delivery_passed(
                attempt.status() == pb::AttemptStatus::Succeeded,
                attempt.response_code,
            );
            if !passed {
                return Err(CtlError::TestFailed(test_failure(
                    &attempt,
                    endpoint.status(),
                )));
            }
            return Ok(());
        }
        EndpointsCommand::RotateSecret {
            endpoint_id,
            overlap,
        } => {
            let secrets = config
                .rotate_endpoint_secret(target.request(pb::RotateEndpointSecretRequest {
                    endpoint_id,
                    secret: String::new(),
                    overlap: overlap.map(duration),
                })?)
                .await?
                .into_inner();
            return print_secrets(format, &secrets);
        }
        EndpointsCommand::Secret { endpoint_id } => {
            let secrets = config
                .get_endpoint_secret(target.request(pb::GetEndpointSecretRequest { endpoint_id })?)
                .await?
                .into_inner();
            return print_secrets(format, &secrets);
        }
    };
    print_single(
        format,
        "herald.v1.Endpoint",
        &ENDPOINT_COLUMNS,
        &endpoint,
        endpoint_row,
    )
}

fn read_file(path: &std::path::Path) -> Result<String, CtlError> {
    std::fs::read_to_string(path).map_err(|source| CtlError::Io {
        path: path.display().to_string(),
        source,
    })
}

async fn transformations(
    target: &Target,
    format: Format,
    command: TransformationsCommand,
) -> Result<(), CtlError> {
    let TransformationsCommand::Simulate {
        code_file,
        event_type,
        event_file,
        url,
    } = command;
    let input = match (event_type, event_file) {
        (Some(event_type), _) => SimulateInput::EventType(event_type),
        (None, Some(file)) => SimulateInput::EventJson(read_file(&file)?),
        (None, None) => {
            return Err(CtlError::Usage("pass --event-type or --event-file".into()));
        }
    };
    let mut config = ConfigServiceClient::new(target.config_channel().await?);
    let simulated = config
        .simulate_transformation(target.request(pb::SimulateTransformationRequest {
            code: read_file(&code_file)?,
            input: Some(input),
            url: url.unwrap_or_default(),
        })?)
        .await?
        .into_inner();
    match format {
        Format::Table => {
            if let Some(error) = &simulated.error {
                let at = match (error.line, error.column) {
                    (0, _) => String::new(),
                    (line, 0) => format!(" at line {line}"),
                    (line, column) => format!(" at line {line}, column {column}"),
                };
                println!("error ({}): {}{at}", error.kind, error.message);
            } else if simulated.cancel {
                println!("cancelled: {}", simulated.cancel_reason);
            } else {
                println!("event type: {}", simulated.event_type);
                for (name, value) in &simulated.headers {
                    println!("{name}: {value}");
                }
                println!();
                println!("{}", simulated.body_json);
            }
            Ok(())
        }
        _ => print_one(
            format,
            "herald.v1.SimulateTransformationResponse",
            &simulated,
        ),
    }
}

async fn summary(target: &Target, format: Format) -> Result<(), CtlError> {
    let mut config = ConfigServiceClient::new(target.config_channel().await?);
    let summary = config
        .get_summary(target.request(pb::GetSummaryRequest {})?)
        .await?
        .into_inner();
    match format {
        Format::Table => print_table(&Table {
            columns: vec![
                "ENDPOINTS",
                "ACTIVE",
                "PENDING TEST",
                "DISABLED",
                "FAILING",
                "24H SUCCEEDED",
                "24H FAILED",
                "24H PENDING",
            ],
            rows: vec![vec![
                summary.endpoints_total.to_string(),
                summary.endpoints_active.to_string(),
                summary.endpoints_pending_test.to_string(),
                summary.endpoints_disabled.to_string(),
                summary.endpoints_failing.to_string(),
                summary.deliveries_succeeded.to_string(),
                summary.deliveries_failed.to_string(),
                summary.deliveries_pending.to_string(),
            ]],
        }),
        _ => print_one(format, "herald.v1.Summary", &summary),
    }
}

fn attempt_status(status: Option<AttemptStatusName>) -> i32 {
    status
        .map(|status| match status {
            AttemptStatusName::Succeeded => pb::AttemptStatus::Succeeded,
            AttemptStatusName::Failed => pb::AttemptStatus::Failed,
            AttemptStatusName::Retrying => pb::AttemptStatus::Retrying,
            AttemptStatusName::Dead => pb::AttemptStatus::Dead,
            AttemptStatusName::Skipped => pb::AttemptStatus::Skipped,
        })
        .map(i32::from)
        .unwrap_or_default()
}

const ATTEMPT_COLUMNS: [&str; 8] = [
    "WHEN",
    "ATTEMPT ID",
    "EVENT",
    "ENDPOINT",
    "TRY",
    "STATUS",
    "CODE",
    "MS",
];

/// Milliseconds with the microseconds Herald keeps: a local receiver
/// often answers in less than one.
fn milliseconds(duration: &prost_types::Duration) -> String {
    let millis = duration.seconds as f64 * 1_000.0 + f64::from(duration.nanos) / 1e6;
    if millis < 10.0 {
        format!("{millis:.3}")
    } else {
        format!("{millis:.0}")
    }
}

fn attempt_row(attempt: &pb::Attempt) -> Vec<String> {
    let milliseconds = attempt
        .duration
        .as_ref()
        .map(milliseconds)
        .unwrap_or_else(|| "0".to_owned());
    vec![
        relative(attempt.attempted_at.as_ref()),
        attempt.id.clone(),
        attempt.event_type.clone(),
        attempt.endpoint_id.clone(),
        attempt.attempt.to_string(),
        badge(&enum_word("AttemptStatus", attempt.status().as_str_name())),
        attempt.response_code.to_string(),
        milliseconds.to_string(),
    ]
}

async fn logs(target: &Target, format: Format, command: LogsCommand) -> Result<(), CtlError> {
    let mut attempts = AttemptServiceClient::new(target.config_channel().await?);
    match command {
        LogsCommand::List {
            filter,
            since,
            page,
        } => {
            let LogFilter {
                endpoint,
                event_type,
                status,
            } = filter;
            let since = since.map(|since| {
                let at = time::OffsetDateTime::now_utc() - since;
                herald_proto::timestamp_to_wire(at)
            });
            let listed = pages(&page, |page_size, page_token| {
                let mut attempts = attempts.clone();
                let request = target.request(pb::ListAttemptsRequest {
                    page_size,
                    page_token,
                    endpoint_id: endpoint.clone().unwrap_or_default(),
                    event_type: event_type.clone().unwrap_or_default(),
                    status: attempt_status(status),
                    since,
                    ..Default::default()
                });
                async move {
                    let response = attempts.list_attempts(request?).await?.into_inner();
                    Ok((response.attempts, response.next_page_token))
                }
            })
            .await?;
            print_list(
                format,
                "herald.v1.Attempt",
                &ATTEMPT_COLUMNS,
                &listed,
                attempt_row,
            )
        }
        LogsCommand::PurgeBodies { endpoint_id } => {
            let purged = attempts
                .purge_request_bodies(target.request(pb::PurgeRequestBodiesRequest {
                    endpoint_id: endpoint_id.clone(),
                })?)
                .await?
                .into_inner()
                .purged;
            eprintln!("purged the stored request bodies of {purged} attempts of {endpoint_id}");
            Ok(())
        }
        LogsCommand::Get { attempt_id } => {
            let attempt = attempts
                .get_attempt(target.request(pb::GetAttemptRequest { attempt_id })?)
                .await?
                .into_inner();
            print_one(format, "herald.v1.Attempt", &attempt)
        }
        LogsCommand::Tail { filter, backlog } => {
            let LogFilter {
                endpoint,
                event_type,
                status,
            } = filter;
            let mut stream = attempts
                .tail_attempts(target.request(pb::TailAttemptsRequest {
                    endpoint_id: endpoint.unwrap_or_default(),
                    event_type: event_type.unwrap_or_default(),
                    status: attempt_status(status),
                    backlog,
                })?)
                .await?
                .into_inner();
            if format == Format::Table {
                print_table(&Table {
                    columns: ATTEMPT_COLUMNS.to_vec(),
                    rows: Vec::new(),
                })?;
            }
            while let Some(attempt) = stream.next().await {
                let attempt = attempt?;
                match format {
                    Format::Table => {
                        println!("{}", attempt_row(&attempt).join("  "));
                    }
                    _ => {
                        let value =
                            herald_proto::json::to_readable_json("herald.v1.Attempt", &attempt)
                                .map_err(|error| CtlError::Output(error.to_string()))?;
                        // One JSON document per line, so a tail can be piped.
                        println!(
                            "{}",
                            serde_json::to_string(&value)
                                .map_err(|error| CtlError::Output(error.to_string()))?
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

async fn events(target: &Target, format: Format, command: EventsCommand) -> Result<(), CtlError> {
    match command {
        EventsCommand::Publish {
            event_type,
            device,
            data,
            key,
        } => publish(target, format, event_type, device, data, key).await,
        EventsCommand::Replay {
            event_id,
            endpoint,
            wait,
        } => {
            let mut recovery = RecoveryServiceClient::new(target.config_channel().await?);
            let job = recovery
                .replay_event(target.request(pb::ReplayEventRequest {
                    event_id,
                    endpoint_id: endpoint.unwrap_or_default(),
                })?)
                .await?
                .into_inner();
            note_earlier_job(&job);
            finish_job(target, &mut recovery, format, job, &wait).await
        }
    }
}

async fn publish(
    target: &Target,
    format: Format,
    event_type: String,
    device: Option<String>,
    data: String,
    key: Option<String>,
) -> Result<(), CtlError> {
    let data = read_argument(&data)?;
    serde_json::from_slice::<serde_json::Value>(&data)
        .map_err(|error| CtlError::Usage(format!("--data is not JSON: {error}")))?;
    let mut ingest = IngestServiceClient::new(target.ingest_channel().await?);
    let response = ingest
        .publish(target.request(pb::PublishRequest {
            items: vec![pb::PublishItem {
                device_id: device.unwrap_or_default(),
                r#type: event_type,
                data: data.into(),
                idempotency_key: key.unwrap_or_default(),
                occurred_at: None,
                channel: 0,
                source_ref: String::new(),
            }],
        })?)
        .await?
        .into_inner();
    let result = response
        .results
        .into_iter()
        .next()
        .and_then(|result| result.outcome);
    match result {
        Some(pb::publish_result::Outcome::Accepted(accepted)) => match format {
            Format::Table => {
                println!(
                    "{}{}",
                    accepted.event_id,
                    if accepted.duplicate {
                        " (duplicate)"
                    } else {
                        ""
                    }
                );
                Ok(())
            }
            _ => print_one(format, "herald.v1.PublishAccepted", &accepted),
        },
        Some(pb::publish_result::Outcome::Error(error)) => Err(CtlError::Usage(format!(
            "{}: {}",
            error.field, error.message
        ))),
        None => Err(CtlError::Output(
            "the ingest service answered with no result".into(),
        )),
    }
}

async fn recover(target: &Target, format: Format, args: RecoverArgs) -> Result<(), CtlError> {
    // Counting a duration back from the start of the minute makes the same
    // command run again soon the same request, which the server answers with
    // the job it already started instead of sending everything again.
    let since = args
        .since
        .before(OffsetDateTime::now_utc().truncate_to_minute())?;
    let mut recovery = RecoveryServiceClient::new(target.config_channel().await?);
    let job = recovery
        .recover_failed(target.request(pb::RecoverFailedRequest {
            endpoint_id: args.endpoint,
            since: Some(herald_proto::timestamp_to_wire(since)),
        })?)
        .await?
        .into_inner();
    note_earlier_job(&job);
    finish_job(target, &mut recovery, format, job, &args.wait).await
}

const DEAD_LETTER_COLUMNS: [&str; 7] = [
    "DELIVERY ID",
    "ENDPOINT",
    "EVENT TYPE",
    "DEAD",
    "ATTEMPTS",
    "CODE",
    "REASON",
];

fn dead_letter_row(letter: &pb::DeadLetter) -> Vec<String> {
    // Attempt numbers continue across redrives, so the highest is the count.
    let attempts = letter
        .attempts
        .iter()
        .map(|attempt| attempt.attempt)
        .max()
        .unwrap_or_default();
    let code = letter
        .attempts
        .last()
        .map(|attempt| attempt.response_code)
        .filter(|code| *code != 0)
        .map_or_else(|| "-".to_owned(), |code| code.to_string());
    let reason = match letter.reason.lines().next() {
        Some(line) if line.chars().count() > 80 => {
            format!("{}…", line.chars().take(79).collect::<String>())
        }
        Some(line) if !line.is_empty() => line.to_owned(),
        _ => "-".to_owned(),
    };
    vec![
        letter.id.clone(),
        letter.endpoint_id.clone(),
        letter
            .event
            .as_ref()
            .map(|event| event.r#type.clone())
            .unwrap_or_default(),
        relative(letter.dead_at.as_ref()),
        attempts.to_string(),
        code,
        reason,
    ]
}

async fn dlq(target: &Target, format: Format, command: DlqCommand) -> Result<(), CtlError> {
    match command {
        DlqCommand::List {
            endpoint,
            event_type,
            since,
            until,
            page,
        } => {
            let now = OffsetDateTime::now_utc();
            let bound = |moment: Option<Moment>| {
                moment
                    .map(|moment| moment.before(now).map(herald_proto::timestamp_to_wire))
                    .transpose()
            };
            let (since, until) = (bound(since)?, bound(until)?);
            let recovery = RecoveryServiceClient::new(target.config_channel().await?);
            let listed = pages(&page, |page_size, page_token| {
                let mut recovery = recovery.clone();
                let request = target.request(pb::ListDeadLettersRequest {
                    page_size,
                    page_token,
                    endpoint_id: endpoint.clone().unwrap_or_default(),
                    event_type: event_type.clone().unwrap_or_default(),
                    since,
                    until,
                });
                async move {
                    let response = recovery.list_dead_letters(request?).await?.into_inner();
                    Ok((response.dead_letters, response.next_page_token))
                }
            })
            .await?;
            print_list(
                format,
                "herald.v1.DeadLetter",
                &DEAD_LETTER_COLUMNS,
                &listed,
                dead_letter_row,
            )
        }
        DlqCommand::Redrive { selection, wait } => {
            let DeadLetterSelection {
                delivery_ids,
                endpoint,
            } = selection;
            let mut recovery = RecoveryServiceClient::new(target.config_channel().await?);
            let job = recovery
                .redrive_dead_letters(target.request(pb::RedriveDeadLettersRequest {
                    delivery_ids,
                    all_of_endpoint: endpoint.unwrap_or_default(),
                    use_current_endpoint: true,
                })?)
                .await?
                .into_inner();
            note_earlier_job(&job);
            finish_job(target, &mut recovery, format, job, &wait).await
        }
        DlqCommand::Purge { selection, yes } => {
            let DeadLetterSelection {
                delivery_ids,
                endpoint,
            } = selection;
            if let Some(endpoint) = &endpoint
                && !yes
            {
                confirm_purge(endpoint)?;
            }
            let mut recovery = RecoveryServiceClient::new(target.config_channel().await?);
            let purged = recovery
                .purge_dead_letters(target.request(pb::PurgeDeadLettersRequest {
                    delivery_ids,
                    all_of_endpoint: endpoint.unwrap_or_default(),
                })?)
                .await?
                .into_inner();
            match format {
                Format::Table => {
                    println!("purged {}", purged.purged);
                    Ok(())
                }
                _ => print_one(format, "herald.v1.PurgeDeadLettersResponse", &purged),
            }
        }
    }
}

/// Asks before all of an endpoint's dead letters go; without a terminal to
/// ask on, only `--yes` will do.
fn confirm_purge(endpoint: &str) -> Result<(), CtlError> {
    if !std::io::stdin().is_terminal() {
        return Err(CtlError::Usage(format!(
            "purging every dead letter of {endpoint} needs --yes when there is no terminal to confirm it on"
        )));
    }
    // Standard error is unbuffered: the question shows before the read.
    eprint!("Purge every dead letter of {endpoint}? They cannot be redriven afterwards. [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|source| CtlError::Io {
            path: "standard input".into(),
            source,
        })?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CtlError::Cancelled("nothing was purged".into())),
    }
}

async fn jobs(target: &Target, format: Format, command: JobsCommand) -> Result<(), CtlError> {
    let mut recovery = RecoveryServiceClient::new(target.config_channel().await?);
    let (job_id, no_wait) = match command {
        JobsCommand::Get { job_id } => (job_id, true),
        JobsCommand::Watch { job_id } => (job_id, false),
    };
    let job = recovery
        .get_recovery_job(target.request(pb::GetRecoveryJobRequest { job_id })?)
        .await?
        .into_inner();
    finish_job(target, &mut recovery, format, job, &WaitArgs { no_wait }).await
}

/// A new job always starts running; a finished one is the server's answer to
/// an identical recent request.
fn note_earlier_job(job: &pb::RecoveryJob) {
    if job.state() != pb::RecoveryJobState::Running {
        eprintln!(
            "an identical request finished {}; this is its job, and nothing was sent again",
            relative(job.finished_at.as_ref())
        );
    }
}

fn job_state(job: &pb::RecoveryJob) -> String {
    enum_word("RecoveryJobState", job.state().as_str_name())
}

/// Follows a job to its end (unless `--no-wait`), with a progress bar on a
/// terminal, then prints it; a failed job fails the command.
async fn finish_job(
    target: &Target,
    recovery: &mut RecoveryServiceClient<Channel>,
    format: Format,
    job: pb::RecoveryJob,
    wait: &WaitArgs,
) -> Result<(), CtlError> {
    let job = if wait.no_wait || job.state() != pb::RecoveryJobState::Running {
        job
    } else {
        follow_job(target, recovery, job).await?
    };
    match format {
        Format::Table => print_table(&Table {
            columns: vec![
                "JOB ID", "KIND", "STATE", "TOTAL", "ENQUEUED", "SKIPPED", "STARTED", "FINISHED",
                "ERROR",
            ],
            rows: vec![vec![
                job.id.clone(),
                enum_word("DeliveryTrigger", job.kind().as_str_name()),
                badge(&job_state(&job)),
                job.total.to_string(),
                job.enqueued.to_string(),
                job.skipped.to_string(),
                relative(job.created_at.as_ref()),
                relative(job.finished_at.as_ref()),
                job.error.clone(),
            ]],
        })?,
        _ => print_one(format, "herald.v1.RecoveryJob", &job)?,
    }
    if job.state() == pb::RecoveryJobState::Failed {
        return Err(CtlError::JobFailed {
            id: job.id,
            reason: job.error,
        });
    }
    Ok(())
}

/// The job once it has finished, as its progress stream ends.
async fn follow_job(
    target: &Target,
    recovery: &mut RecoveryServiceClient<Channel>,
    job: pb::RecoveryJob,
) -> Result<pb::RecoveryJob, CtlError> {
    let mut updates = recovery
        .watch_recovery_job(target.request(pb::GetRecoveryJobRequest {
            job_id: job.id.clone(),
        })?)
        .await?
        .into_inner();
    let show_progress = std::io::stderr().is_terminal();
    let mut last = job;
    while let Some(update) = updates.next().await {
        last = update?;
        if show_progress {
            // Clear the line: the counts may get shorter.
            eprint!(
                "\r\u{1b}[2K{} {}",
                last.id,
                progress_bar(last.enqueued, last.skipped, last.total)
            );
        }
    }
    if show_progress {
        eprintln!();
    }
    if last.state() == pb::RecoveryJobState::Running {
        return Err(CtlError::Status(tonic::Status::unavailable(format!(
            "the server stopped reporting job {id} before it finished; see `heraldctl jobs watch {id}`",
            id = last.id
        ))));
    }
    Ok(last)
}

fn verify(format: Format, args: VerifyArgs) -> Result<(), CtlError> {
    let body = read_argument(&args.body)?;
    let secret = herald_core::signing::EndpointSecret::parse(&args.secret)
        .map_err(|error| CtlError::Usage(format!("--secret: {error}")))?;
    let now = args
        .at
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    herald_core::signing::verify_standard(
        &secret,
        &args.id,
        &args.timestamp,
        &args.signature,
        &body,
        now,
    )
    .map_err(|error| CtlError::Verify(error.to_string()))?;
    match format {
        Format::Table => {
            println!("valid: the signature matches and the timestamp is within 5 minutes");
            Ok(())
        }
        _ => print_value(format, &serde_json::json!({"valid": true})),
    }
}

async fn health(target: &Target, format: Format) -> Result<(), CtlError> {
    let mut rows = Vec::new();
    let mut all_serving = true;
    for (service, addr) in [("config", &target.addr), ("ingest", &target.ingest_addr)] {
        let status = match check(addr).await {
            Ok(status) => status,
            Err(error) => format!("unreachable ({error})"),
        };
        all_serving &= status == "serving";
        rows.push(vec![service.to_owned(), addr.clone(), status]);
    }
    match format {
        Format::Table => print_table(&Table {
            columns: vec!["SERVICE", "ADDRESS", "HEALTH"],
            rows,
        })?,
        _ => {
            let value = serde_json::Value::Array(
                rows.into_iter()
                    .map(|row| serde_json::json!({"service": row[0], "address": row[1], "health": row[2]}))
                    .collect(),
            );
            print_value(format, &value)?;
        }
    }
    if all_serving {
        Ok(())
    } else {
        Err(CtlError::Status(tonic::Status::unavailable(
            "not every service is serving",
        )))
    }
}

async fn check(addr: &str) -> Result<String, CtlError> {
    let channel = tonic::transport::Endpoint::from_shared(addr.to_owned())
        .map_err(|error| CtlError::Usage(format!("invalid address {addr:?}: {error}")))?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|error| CtlError::Connect {
            url: addr.to_owned(),
            reason: error.to_string(),
        })?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    Ok(response.status().as_str_name().to_lowercase())
}
