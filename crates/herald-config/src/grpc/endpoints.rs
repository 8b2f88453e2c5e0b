//! Endpoints: create, read, edit, pause, test, rotate secrets, delete.

use std::time::Duration;

use futures::StreamExt;
use herald_core::{
    catalog::EventType,
    channel::Channel,
    envelope::test_data,
    event::{Event, parse_data},
    id::{DeliveryId, DeviceId, EndpointId, EventId, TenantId},
    signing::{EndpointSecret, SigningScheme, SigningSecret},
    text::Permit,
};
use herald_proto::{
    duration_from_wire, timestamp_to_wire,
    v1::{
        Attempt, AttemptStatus, CreateEndpointRequest, CreateEndpointResponse,
        DeleteEndpointRequest, DeleteEndpointResponse, DeliveryJob, DeliveryTrigger,
        DisableEndpointRequest, EnableEndpointRequest, Endpoint, EndpointSecrets, EndpointStatus,
        GetEndpointRequest, GetEndpointSecretRequest, ListEndpointsRequest, ListEndpointsResponse,
        RotateEndpointSecretRequest, TestEndpointRequest, TestEndpointResponse,
        UpdateEndpointRequest,
    },
};
use herald_store::{EndpointFilter, EndpointRecord};
use prost::Message;
use time::OffsetDateTime;

use crate::{
    convert::{self, HeaderValues},
    endpoint::{merge_spec, needs_new_test, normalise_spec, signing_scheme},
    error::{ApiError, ApiResult},
    names, paging,
    secrets::{endpoint_secret_context, random_bytes},
    state::ConfigState,
    validate::{check_id, check_text},
};

/// Searching starts at three characters: fewer match too much to be useful.
pub const MIN_SEARCH_CHARS: usize = 3;
const MAX_SEARCH_CHARS: usize = 200;
const MAX_STATUS_REASON_CHARS: usize = 500;
const MAX_TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a test's answer waits for its attempt to reach the log (the
/// attempt writer stores a batch within tens of milliseconds normally).
const TEST_LOGGED_PATIENCE: Duration = Duration::from_secs(5);
const TEST_LOGGED_POLL: Duration = Duration::from_millis(10);

fn generate_secret() -> ApiResult<EndpointSecret> {
    let signing =
        SigningSecret::from_bytes(&random_bytes::<32>()?).map_err(|error| ApiError::Corrupt {
            what: "generated secret",
            reason: error.to_string(),
        })?;
    Ok(EndpointSecret::from(signing))
}

/// The secret a caller gave (or a generated one), refused unless `scheme`
/// can sign with it: accepting it would fail every delivery.
fn parse_secret(field: &str, secret: &str, scheme: &SigningScheme) -> ApiResult<EndpointSecret> {
    if secret.is_empty() {
        return generate_secret();
    }
    let secret = EndpointSecret::parse(secret).map_err(|error| ApiError::invalid(field, error))?;
    scheme
        .check_secret(&secret)
        .map_err(|error| ApiError::invalid(field, error))?;
    Ok(secret)
}

impl ConfigState {
    async fn tenant_endpoint(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> ApiResult<EndpointRecord> {
        check_id("endpoint_id", endpoint_id)?;
        self.store
            .get_endpoint(tenant_id, endpoint_id)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint", endpoint_id))
    }

    /// Writes a changed endpoint over the version it was read at (a
    /// concurrent change makes this fail rather than be lost) and tells
    /// watchers.
    async fn save(
        &self,
        mut record: EndpointRecord,
        now: OffsetDateTime,
    ) -> ApiResult<EndpointRecord> {
        record.updated_at = now;
        let updated = self
            .store
            .update_endpoint(&record, Some(record.version))
            .await?;
        self.notify_changed();
        self.endpoint_changed(updated.revision).await?;
        Ok(updated)
    }

    /// Holds fanout back from matching any event pulled after this returns
    /// until its Watch stream applied `revision`, so an event accepted after
    /// a disable, delete or narrower subscription was answered never
    /// matches the endpoint as it was before.
    async fn endpoint_changed(&self, revision: i64) -> ApiResult<()> {
        let revision = u64::try_from(revision).unwrap_or_default();
        self.bus.config_revision().await?.raise(revision).await?;
        Ok(())
    }

    fn seal_secret(&self, endpoint_id: &str, which: &str, secret: &str) -> ApiResult<Vec<u8>> {
        Ok(self.key().encrypt(
            &endpoint_secret_context(endpoint_id, which),
            secret.as_bytes(),
        )?)
    }

    pub async fn create_endpoint(
        &self,
        tenant_id: &str,
        request: CreateEndpointRequest,
    ) -> ApiResult<CreateEndpointResponse> {
        let spec = request
            .spec
            .ok_or_else(|| ApiError::invalid("spec", "must be set"))?;
        let spec =
            normalise_spec(spec, &self.settings.allow_list, &self.catalog(tenant_id)).await?;
        let secret = parse_secret("secret", &request.secret, &signing_scheme(&spec)?)?;
        let id = EndpointId::generate().to_string();
        let now = OffsetDateTime::now_utc();
        let record = EndpointRecord {
            secret_ciphertext: self.seal_secret(&id, "current", secret.expose())?,
            spec: convert::seal_endpoint(
                &id,
                spec.clone(),
                EndpointStatus::PendingTest.into(),
                self.key(),
            )?,
            id,
            tenant_id: tenant_id.to_owned(),
            name: spec.name.clone(),
            url: spec.url.clone(),
            status: names::endpoint_status(EndpointStatus::PendingTest).to_owned(),
            status_reason: String::new(),
            previous_secret_ciphertext: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
            revision: 0,
        };
        let record = self.store.insert_endpoint(&record).await?;
        self.notify_changed();
        let test = if spec.test_on_save {
            Some(self.test_on_save(tenant_id, &record.id).await?)
        } else {
            None
        };
        let endpoint = match test.as_ref().and_then(|test| test.endpoint.clone()) {
            Some(tested) => tested,
            None => convert::endpoint(&record, self.key(), HeaderValues::Shown)?,
        };
        Ok(CreateEndpointResponse {
            endpoint: Some(endpoint),
            secret: secret.expose().to_owned(),
            test,
        })
    }

    /// The test a save with `test_on_save` sends: the same as TestEndpoint
    /// with its defaults.
    async fn test_on_save(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> ApiResult<TestEndpointResponse> {
        self.test_endpoint(
            tenant_id,
            TestEndpointRequest {
                endpoint_id: endpoint_id.to_owned(),
                ..TestEndpointRequest::default()
            },
        )
        .await
    }

    pub async fn get_endpoint(
        &self,
        tenant_id: &str,
        request: GetEndpointRequest,
        header_values: HeaderValues,
    ) -> ApiResult<Endpoint> {
        let mut endpoint = convert::endpoint(
            &self
                .tenant_endpoint(tenant_id, &request.endpoint_id)
                .await?,
            self.key(),
            header_values,
        )?;
        self.with_endpoint_health(tenant_id, std::slice::from_mut(&mut endpoint))
            .await;
        Ok(endpoint)
    }

    pub async fn list_endpoints(
        &self,
        tenant_id: &str,
        request: ListEndpointsRequest,
        header_values: HeaderValues,
    ) -> ApiResult<ListEndpointsResponse> {
        let size = paging::page_size(request.page_size)?;
        let after = paging::decode_id_after(&request.page_token)?;
        let search = request.search.trim();
        check_text("search", search, Permit::SingleLine)?;
        let search = match search.chars().count() {
            0 => None,
            count if count < MIN_SEARCH_CHARS => {
                return Err(ApiError::invalid(
                    "search",
                    format!("needs at least {MIN_SEARCH_CHARS} characters"),
                ));
            }
            count if count > MAX_SEARCH_CHARS => {
                return Err(ApiError::invalid(
                    "search",
                    format!("must be at most {MAX_SEARCH_CHARS} characters"),
                ));
            }
            _ => Some(search.to_owned()),
        };
        let status = match EndpointStatus::try_from(request.status) {
            Ok(EndpointStatus::Unspecified) => None,
            Ok(status) => Some(names::endpoint_status(status).to_owned()),
            Err(_) => return Err(ApiError::invalid("status", "unknown value")),
        };
        let filter = EndpointFilter { search, status };
        let fetched = self
            .store
            .list_endpoints(tenant_id, &filter, size + 1, after.as_deref())
            .await?;
        let (page, next_page_token) =
            paging::split_page(fetched, size, |endpoint| endpoint.id.clone());
        let mut endpoints = page
            .iter()
            .map(|endpoint| convert::endpoint(endpoint, self.key(), header_values))
            .collect::<ApiResult<Vec<_>>>()?;
        self.with_endpoint_health(tenant_id, &mut endpoints).await;
        Ok(ListEndpointsResponse {
            endpoints,
            next_page_token,
        })
    }

    pub async fn update_endpoint(
        &self,
        tenant_id: &str,
        request: UpdateEndpointRequest,
    ) -> ApiResult<Endpoint> {
        let mut record = self
            .tenant_endpoint(tenant_id, &request.endpoint_id)
            .await?;
        let expected = convert::expected_version("etag", &request.etag)?;
        let stored = convert::stored_endpoint(&record)?;
        let mut resume_status = stored.resume_status;
        let current = convert::endpoint_spec(&record, self.key())?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        let update = request
            .spec
            .ok_or_else(|| ApiError::invalid("spec", "must be set"))?;
        let merged = merge_spec(&current, update, &paths)?;
        let spec =
            normalise_spec(merged, &self.settings.allow_list, &self.catalog(tenant_id)).await?;
        if spec.signing_scheme != current.signing_scheme {
            self.check_secrets_suit(&record, &signing_scheme(&spec)?)?;
        }
        let test_now = spec.test_on_save && needs_new_test(&current, &spec);
        if needs_new_test(&current, &spec) {
            // A paused endpoint stays paused; it resumes into a new test.
            if names::parse_endpoint_status(&record.status) == EndpointStatus::Disabled {
                resume_status = EndpointStatus::PendingTest.into();
            } else {
                record.status = names::endpoint_status(EndpointStatus::PendingTest).to_owned();
                record.status_reason =
                    "edited: send a test delivery to activate it again".to_owned();
            }
        }
        record.name = spec.name.clone();
        record.url = spec.url.clone();
        record.spec = convert::seal_endpoint(&record.id, spec, resume_status, self.key())?;
        record.updated_at = OffsetDateTime::now_utc();
        let updated = self.store.update_endpoint(&record, expected).await?;
        self.notify_changed();
        self.endpoint_changed(updated.revision).await?;
        if test_now && let Some(tested) = self.test_on_save(tenant_id, &updated.id).await?.endpoint
        {
            return Ok(tested);
        }
        convert::endpoint(&updated, self.key(), HeaderValues::Shown)
    }

    /// A scheme change must leave the endpoint able to sign: the secrets it
    /// holds (the current one, and a previous one still in its overlap,
    /// which the standard scheme signs with too) must suit the new scheme.
    fn check_secrets_suit(&self, record: &EndpointRecord, scheme: &SigningScheme) -> ApiResult<()> {
        let secrets = convert::endpoint_secrets(record, self.key())?;
        for (which, secret) in [
            ("current", &secrets.current),
            ("previous", &secrets.previous),
        ] {
            if secret.is_empty() {
                continue;
            }
            let suits =
                EndpointSecret::parse(secret).and_then(|secret| scheme.check_secret(&secret));
            if let Err(reason) = suits {
                return Err(ApiError::invalid(
                    "spec.signing_scheme",
                    format!(
                        "the endpoint's {which} secret cannot sign under the {} scheme: {reason}; \
                         rotate the secret first (to one of that form, or an empty one to have \
                         it generated, with no overlap)",
                        scheme.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    pub async fn delete_endpoint(
        &self,
        tenant_id: &str,
        request: DeleteEndpointRequest,
    ) -> ApiResult<DeleteEndpointResponse> {
        check_id("endpoint_id", &request.endpoint_id)?;
        let Some(revision) = self
            .store
            .delete_endpoint(tenant_id, &request.endpoint_id)
            .await?
        else {
            return Err(ApiError::not_found("endpoint", request.endpoint_id));
        };
        self.notify_changed();
        self.endpoint_changed(revision).await?;
        Ok(DeleteEndpointResponse {})
    }

    pub async fn disable_endpoint(
        &self,
        tenant_id: &str,
        request: DisableEndpointRequest,
    ) -> ApiResult<Endpoint> {
        let mut record = self
            .tenant_endpoint(tenant_id, &request.endpoint_id)
            .await?;
        let reason = request.reason.trim();
        check_text("reason", reason, Permit::SingleLine)?;
        if reason.chars().count() > MAX_STATUS_REASON_CHARS {
            return Err(ApiError::invalid(
                "reason",
                format!("must be at most {MAX_STATUS_REASON_CHARS} characters"),
            ));
        }
        let status = names::parse_endpoint_status(&record.status);
        if status == EndpointStatus::Disabled {
            // An earlier disable may have failed to reach the bus after it
            // committed: this answer promises the same as that one.
            self.endpoint_changed(record.revision).await?;
            return convert::endpoint(&record, self.key(), HeaderValues::Shown);
        }
        let mut stored = convert::stored_endpoint(&record)?;
        stored.resume_status = match status {
            EndpointStatus::Active => EndpointStatus::Active,
            _ => EndpointStatus::PendingTest,
        }
        .into();
        record.spec = stored.encode_to_vec();
        record.status = names::endpoint_status(EndpointStatus::Disabled).to_owned();
        record.status_reason = if reason.is_empty() {
            "disabled by its owner".to_owned()
        } else {
            reason.to_owned()
        };
        let updated = self.save(record, OffsetDateTime::now_utc()).await?;
        convert::endpoint(&updated, self.key(), HeaderValues::Shown)
    }

    /// Pauses an endpoint that has failed without a single success since
    /// `failing_since` (auto-disable), and publishes `endpoint.disabled` so
    /// its owner hears of it through their own subscription. `None` when it
    /// is not active any more (paused by its owner, or already).
    pub(crate) async fn pause_failing_endpoint(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        failing_since: OffsetDateTime,
    ) -> ApiResult<Option<Endpoint>> {
        let Some(mut record) = self.store.get_endpoint(tenant_id, endpoint_id).await? else {
            return Ok(None);
        };
        if names::parse_endpoint_status(&record.status) != EndpointStatus::Active {
            return Ok(None);
        }
        let since = failing_since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        record.status = names::endpoint_status(EndpointStatus::Failing).to_owned();
        record.status_reason =
            format!("paused automatically: every delivery has failed since {since}");
        let updated = self.save(record, OffsetDateTime::now_utc()).await?;
        self.publish_endpoint_disabled(&updated, &since).await?;
        convert::endpoint(&updated, self.key(), HeaderValues::Shown).map(Some)
    }

    async fn publish_endpoint_disabled(
        &self,
        endpoint: &EndpointRecord,
        failing_since: &str,
    ) -> ApiResult<()> {
        let corrupt = |what: &'static str, error: String| ApiError::Corrupt {
            what,
            reason: error,
        };
        let data = serde_json::json!({
            "endpoint_id": endpoint.id,
            "name": endpoint.name,
            "url": endpoint.url,
            "status": "failing",
            "reason": endpoint.status_reason,
            "failing_since": failing_since,
        });
        let now = OffsetDateTime::now_utc();
        let event = Event {
            id: EventId::generate(),
            tenant_id: TenantId::parse(&endpoint.tenant_id)
                .map_err(|error| corrupt("tenant id", error.to_string()))?,
            channel: Channel::Internal,
            device_id: None,
            event_type: EventType::endpoint_disabled(),
            occurred_at: now,
            received_at: now,
            source_ref: Some(endpoint.id.clone()),
            // Replicas sweeping at once publish it once.
            idempotency_key: format!("endpoint.disabled:{}:{failing_since}", endpoint.id),
            data: parse_data(data.to_string().as_bytes())
                .map_err(|error| corrupt("endpoint.disabled payload", error.to_string()))?,
        };
        self.bus
            .send(self.bus.topology().event_message(&event))
            .await?
            .await
            .map_err(|error| ApiError::Bus(herald_bus::BusError::Unavailable(error.to_string())))?;
        Ok(())
    }

    pub async fn enable_endpoint(
        &self,
        tenant_id: &str,
        request: EnableEndpointRequest,
    ) -> ApiResult<Endpoint> {
        let mut record = self
            .tenant_endpoint(tenant_id, &request.endpoint_id)
            .await?;
        let status = names::parse_endpoint_status(&record.status);
        if !matches!(status, EndpointStatus::Disabled | EndpointStatus::Failing) {
            return convert::endpoint(&record, self.key(), HeaderValues::Shown);
        }
        let stored = convert::stored_endpoint(&record)?;
        let resume = match (status, stored.resume_status()) {
            (EndpointStatus::Disabled, EndpointStatus::Active) => EndpointStatus::Active,
            // A failing endpoint proves itself with a test before it gets traffic again.
            _ => EndpointStatus::PendingTest,
        };
        record.status = names::endpoint_status(resume).to_owned();
        record.status_reason = String::new();
        let updated = self.save(record, OffsetDateTime::now_utc()).await?;
        convert::endpoint(&updated, self.key(), HeaderValues::Shown)
    }

    pub async fn rotate_endpoint_secret(
        &self,
        tenant_id: &str,
        request: RotateEndpointSecretRequest,
    ) -> ApiResult<EndpointSecrets> {
        let mut record = self
            .tenant_endpoint(tenant_id, &request.endpoint_id)
            .await?;
        let overlap = match &request.overlap {
            Some(overlap) => duration_from_wire("overlap", overlap)?,
            None => self.settings.secret_overlap,
        };
        if overlap > Duration::from_secs(30 * 24 * 3600) {
            return Err(ApiError::invalid("overlap", "must be at most 30 days"));
        }
        let scheme = signing_scheme(&convert::endpoint_spec(&record, self.key())?)?;
        let new_secret = parse_secret("secret", &request.secret, &scheme)?;
        let current = convert::endpoint_secrets(&record, self.key())?.current;
        let now = OffsetDateTime::now_utc();
        // The outgoing secret is re-sealed under the "previous" context, so a
        // stored ciphertext only ever decrypts in the slot it was written for.
        if overlap.is_zero() {
            record.previous_secret_ciphertext = None;
            record.previous_secret_expires_at = None;
        } else {
            record.previous_secret_ciphertext =
                Some(self.seal_secret(&record.id, "previous", &current)?);
            record.previous_secret_expires_at = Some(now + overlap);
        }
        record.secret_ciphertext = self.seal_secret(&record.id, "current", new_secret.expose())?;
        let updated = self.save(record, now).await?;
        convert::endpoint_secrets(&updated, self.key())
    }

    pub async fn get_endpoint_secret(
        &self,
        tenant_id: &str,
        request: GetEndpointSecretRequest,
    ) -> ApiResult<EndpointSecrets> {
        convert::endpoint_secrets(
            &self
                .tenant_endpoint(tenant_id, &request.endpoint_id)
                .await?,
            self.key(),
        )
    }

    /// Sends a test delivery through the delivery service (a job on the bus,
    /// exactly like a live one) and waits for its attempt record.
    pub async fn test_endpoint(
        &self,
        tenant_id: &str,
        request: TestEndpointRequest,
    ) -> ApiResult<TestEndpointResponse> {
        let record = self
            .tenant_endpoint(tenant_id, &request.endpoint_id)
            .await?;
        let spec = convert::endpoint_spec(&record, self.key())?;
        let timeout = match &request.timeout {
            Some(timeout) => duration_from_wire("timeout", timeout)?,
            None => self.settings.test_timeout,
        };
        if timeout.is_zero() || timeout > MAX_TEST_TIMEOUT {
            return Err(ApiError::invalid(
                "timeout",
                format!("must be between 0 and {} s", MAX_TEST_TIMEOUT.as_secs()),
            ));
        }
        let event_type = if request.event_type.is_empty() {
            spec.event_types
                .first()
                .map(String::as_str)
                .unwrap_or("message.received")
                .to_owned()
        } else {
            request.event_type.clone()
        };
        let event_type = EventType::parse(&event_type)
            .map_err(|error| ApiError::invalid("event_type", error))?;
        let tenant = TenantId::parse(tenant_id).map_err(|error| ApiError::Corrupt {
            what: "tenant id",
            reason: error.to_string(),
        })?;
        let endpoint = EndpointId::parse(&record.id).map_err(|error| ApiError::Corrupt {
            what: "endpoint id",
            reason: error.to_string(),
        })?;
        let (channel, device_id) = self.test_device(tenant_id, &request.device_id).await?;
        let now = OffsetDateTime::now_utc();
        let event_id = EventId::generate();
        let event = Event {
            id: event_id,
            tenant_id: tenant,
            channel,
            device_id,
            event_type: event_type.clone(),
            occurred_at: now,
            received_at: now,
            source_ref: None,
            idempotency_key: format!("test:{event_id}"),
            data: parse_data(test_data(&event_type).as_bytes()).map_err(|error| {
                ApiError::Corrupt {
                    what: "test payload",
                    reason: error.to_string(),
                }
            })?,
        };
        let delivery_id = DeliveryId::for_event_endpoint(&event_id, &endpoint);
        let job = DeliveryJob {
            delivery_id: delivery_id.to_string(),
            event: Some((&event).into()),
            endpoint_id: record.id.clone(),
            endpoint_revision: u64::try_from(record.revision).unwrap_or_default(),
            trigger: DeliveryTrigger::Test.into(),
            attempts_made: 0,
            test: true,
            enqueued_at: Some(timestamp_to_wire(now)),
            recovery_job_id: String::new(),
            schedule_position: 0,
            not_before: None,
        };

        // Subscribe before publishing so the attempt cannot slip past.
        let topology = self.bus.topology();
        let mut attempts = self
            .bus
            .client()
            .subscribe(topology.attempt_subject(&tenant, &endpoint))
            .await
            .map_err(|error| ApiError::Bus(herald_bus::BusError::Unavailable(error.to_string())))?;
        self.bus
            .send(topology.job_message(
                &job,
                &endpoint,
                herald_bus::JobLane::Pool,
                herald_bus::JobPublish::Test,
            ))
            .await?
            .await
            .map_err(|error| ApiError::Bus(herald_bus::BusError::Unavailable(error.to_string())))?;

        let wait_for_attempt = async {
            while let Some(message) = attempts.next().await {
                if let Ok(attempt) = Attempt::decode(message.payload.as_ref())
                    && attempt.delivery_id == job.delivery_id
                {
                    return Some(attempt);
                }
            }
            None
        };
        let attempt = tokio::time::timeout(timeout, wait_for_attempt)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                ApiError::DeadlineExceeded(format!(
                    "no attempt was recorded within {} s: is the delivery service running?",
                    timeout.as_secs()
                ))
            })?;

        self.await_logged(tenant_id, &attempt.id).await;

        let passed = herald_core::matching::test_delivery_passed(
            attempt.status() == AttemptStatus::Succeeded,
            attempt.response_code,
        );
        let endpoint = self
            .activate_after_test(tenant_id, &record.id, passed)
            .await?;
        Ok(TestEndpointResponse {
            attempt: Some(attempt),
            endpoint: Some(endpoint),
        })
    }

    /// The channel and device a test's sample comes from: the named device
    /// of the tenant, or none.
    async fn test_device(
        &self,
        tenant_id: &str,
        device_id: &str,
    ) -> ApiResult<(Channel, Option<DeviceId>)> {
        if device_id.is_empty() {
            return Ok((Channel::Internal, None));
        }
        let parsed =
            DeviceId::parse(device_id).map_err(|error| ApiError::invalid("device_id", error))?;
        let Some(device) = self.store.get_device(tenant_id, device_id).await? else {
            return Err(ApiError::invalid(
                "device_id",
                format!("the tenant has no device {device_id}"),
            ));
        };
        let channel =
            Channel::try_from(names::parse_channel(&device.channel)).map_err(|error| {
                ApiError::Corrupt {
                    what: "device channel",
                    reason: error.to_string(),
                }
            })?;
        Ok((channel, Some(parsed)))
    }

    /// Waits, for a while, until the attempt writer has put the test's
    /// attempt in the log: a caller reading it right after the answer (the
    /// console's result page, a script calling `GetAttempt`) must find it.
    /// The answer already carries the attempt, so a log that lags longer
    /// only delays, never fails, the test.
    async fn await_logged(&self, tenant_id: &str, attempt_id: &str) {
        let deadline = tokio::time::Instant::now() + TEST_LOGGED_PATIENCE;
        loop {
            match self.store.get_attempt(tenant_id, attempt_id).await {
                Ok(Some(_)) => return,
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(TEST_LOGGED_POLL).await;
                }
                Ok(None) => {
                    tracing::warn!(
                        attempt = attempt_id,
                        "a test's attempt is not in the log yet; answering without waiting longer"
                    );
                    return;
                }
                Err(error) => {
                    tracing::warn!(attempt = attempt_id, %error, "cannot read a test's attempt from the log; answering without it");
                    return;
                }
            }
        }
    }

    /// A passed test makes a pending (or failing) endpoint active; a paused
    /// one stays paused but will resume active.
    async fn activate_after_test(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        passed: bool,
    ) -> ApiResult<Endpoint> {
        let mut record = self.tenant_endpoint(tenant_id, endpoint_id).await?;
        if !passed {
            return convert::endpoint(&record, self.key(), HeaderValues::Shown);
        }
        match names::parse_endpoint_status(&record.status) {
            EndpointStatus::PendingTest | EndpointStatus::Failing | EndpointStatus::Unspecified => {
                record.status = names::endpoint_status(EndpointStatus::Active).to_owned();
                record.status_reason = String::new();
            }
            EndpointStatus::Disabled => {
                let mut stored = convert::stored_endpoint(&record)?;
                stored.resume_status = EndpointStatus::Active.into();
                record.spec = stored.encode_to_vec();
            }
            EndpointStatus::Active => {
                return convert::endpoint(&record, self.key(), HeaderValues::Shown);
            }
        }
        let updated = self.save(record, OffsetDateTime::now_utc()).await?;
        convert::endpoint(&updated, self.key(), HeaderValues::Shown)
    }
}
