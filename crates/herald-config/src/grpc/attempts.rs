//! `AttemptService`: the attempt log, newest first, and a live tail.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use herald_proto::v1::{
    Attempt, AttemptStatus, Channel, GetAttemptRequest, ListAttemptsRequest, ListAttemptsResponse,
    PurgeRequestBodiesRequest, PurgeRequestBodiesResponse, TailAttemptsRequest,
    attempt_service_server::AttemptService,
};
use herald_store::{AttemptCursor, AttemptFilter};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    auth::Access,
    convert,
    error::{ApiError, ApiResult},
    names, paging,
    state::ConfigState,
    validate::check_id,
};

const MAX_TAIL_BACKLOG: u32 = 500;

#[derive(Debug)]
pub struct AttemptApi {
    state: ConfigState,
    /// Ends live tails on shutdown.
    shutdown: CancellationToken,
}

impl AttemptApi {
    pub fn new(state: ConfigState, shutdown: CancellationToken) -> AttemptApi {
        AttemptApi { state, shutdown }
    }
}

fn attempt_status_filter(status: i32) -> ApiResult<Option<String>> {
    match AttemptStatus::try_from(status) {
        Ok(AttemptStatus::Unspecified) => Ok(None),
        Ok(status) => Ok(Some(names::attempt_status(status).to_owned())),
        Err(_) => Err(ApiError::invalid("status", "unknown value")),
    }
}

fn optional(value: &str) -> Option<String> {
    Some(value.to_owned()).filter(|value| !value.is_empty())
}

impl ConfigState {
    pub async fn list_attempts(
        &self,
        tenant_id: &str,
        request: ListAttemptsRequest,
    ) -> ApiResult<ListAttemptsResponse> {
        let size = paging::page_size(request.page_size)?;
        let after = paging::decode_attempt_after(&request.page_token)?;
        let timestamp = |field: &'static str, value: Option<prost_types::Timestamp>| {
            value
                .map(|value| herald_proto::timestamp_from_wire(field, Some(value)))
                .transpose()
                .map_err(|error| ApiError::invalid(field, error.reason))
        };
        check_id("endpoint_id", &request.endpoint_id)?;
        check_id("event_type", &request.event_type)?;
        check_id("event_id", &request.event_id)?;
        check_id("device_id", &request.device_id)?;
        let channel = match Channel::try_from(request.channel) {
            Ok(Channel::Unspecified) => None,
            Ok(channel) => Some(names::channel(channel).to_owned()),
            Err(_) => return Err(ApiError::invalid("channel", "unknown value")),
        };
        let filter = AttemptFilter {
            endpoint_id: optional(&request.endpoint_id),
            event_type: optional(&request.event_type),
            status: attempt_status_filter(request.status)?,
            event_id: optional(&request.event_id),
            device_id: optional(&request.device_id),
            channel,
            since: timestamp("since", request.since)?,
            until: timestamp("until", request.until)?,
        };
        let fetched = self
            .store
            .list_attempts(tenant_id, &filter, size + 1, after.as_ref())
            .await?;
        let (page, next_page_token) = paging::split_page(fetched, size, |attempt| {
            paging::AttemptPosition::of(&AttemptCursor {
                attempted_at: attempt.attempted_at,
                id: attempt.id.clone(),
            })
        });
        Ok(ListAttemptsResponse {
            attempts: page.into_iter().map(convert::attempt).collect(),
            next_page_token,
        })
    }

    pub async fn get_attempt(
        &self,
        tenant_id: &str,
        request: GetAttemptRequest,
    ) -> ApiResult<Attempt> {
        check_id("attempt_id", &request.attempt_id)?;
        self.store
            .get_attempt(tenant_id, &request.attempt_id)
            .await?
            .map(convert::attempt)
            .ok_or_else(|| ApiError::not_found("attempt", request.attempt_id))
    }

    pub async fn purge_request_bodies(
        &self,
        tenant_id: &str,
        request: PurgeRequestBodiesRequest,
    ) -> ApiResult<PurgeRequestBodiesResponse> {
        check_id("endpoint_id", &request.endpoint_id)?;
        let purged = self
            .store
            .purge_request_bodies(tenant_id, &request.endpoint_id)
            .await?;
        tracing::info!(
            tenant = tenant_id,
            endpoint = request.endpoint_id,
            purged,
            "stored request bodies purged"
        );
        Ok(PurgeRequestBodiesResponse { purged })
    }
}

type AttemptStream = Pin<Box<dyn Stream<Item = Result<Attempt, Status>> + Send>>;

#[tonic::async_trait]
impl AttemptService for AttemptApi {
    async fn list_attempts(
        &self,
        request: Request<ListAttemptsRequest>,
    ) -> Result<Response<ListAttemptsResponse>, Status> {
        let tenant_id = self
            .state
            .auth
            .tenant(request.metadata(), Access::Read)
            .await?;
        Ok(Response::new(
            self.state
                .list_attempts(&tenant_id, request.into_inner())
                .await?,
        ))
    }

    async fn get_attempt(
        &self,
        request: Request<GetAttemptRequest>,
    ) -> Result<Response<Attempt>, Status> {
        let tenant_id = self
            .state
            .auth
            .tenant(request.metadata(), Access::Read)
            .await?;
        Ok(Response::new(
            self.state
                .get_attempt(&tenant_id, request.into_inner())
                .await?,
        ))
    }

    async fn purge_request_bodies(
        &self,
        request: Request<PurgeRequestBodiesRequest>,
    ) -> Result<Response<PurgeRequestBodiesResponse>, Status> {
        let tenant_id = self
            .state
            .auth
            .tenant(request.metadata(), Access::Write)
            .await?;
        Ok(Response::new(
            self.state
                .purge_request_bodies(&tenant_id, request.into_inner())
                .await?,
        ))
    }

    type TailAttemptsStream = AttemptStream;

    /// Attempts are followed on the bus as delivery publishes them, so a tail
    /// shows them before the attempt log has stored them.
    async fn tail_attempts(
        &self,
        request: Request<TailAttemptsRequest>,
    ) -> Result<Response<Self::TailAttemptsStream>, Status> {
        let tenant_id = self
            .state
            .auth
            .tenant(request.metadata(), Access::Read)
            .await?;
        let request = request.into_inner();
        if request.backlog > MAX_TAIL_BACKLOG {
            return Err(ApiError::invalid(
                "backlog",
                format!("must be at most {MAX_TAIL_BACKLOG}"),
            )
            .into());
        }
        let status = attempt_status_filter(request.status)?;
        let tenant =
            herald_core::id::TenantId::parse(&tenant_id).map_err(|error| ApiError::Corrupt {
                what: "tenant id",
                reason: error.to_string(),
            })?;
        let subject = self.state.bus.topology().tenant_attempts_filter(&tenant);
        let live = self
            .state
            .bus
            .client()
            .subscribe(subject)
            .await
            .map_err(|error| ApiError::Bus(herald_bus::BusError::Unavailable(error.to_string())))?;

        let mut backlog = Vec::new();
        if request.backlog > 0 {
            let listed = self
                .state
                .list_attempts(
                    &tenant_id,
                    ListAttemptsRequest {
                        page_size: request.backlog,
                        endpoint_id: request.endpoint_id.clone(),
                        event_type: request.event_type.clone(),
                        status: request.status,
                        ..Default::default()
                    },
                )
                .await?;
            backlog = listed.attempts;
            backlog.reverse();
        }
        let wanted = move |attempt: &Attempt| {
            (request.endpoint_id.is_empty() || attempt.endpoint_id == request.endpoint_id)
                && (request.event_type.is_empty() || attempt.event_type == request.event_type)
                && status
                    .as_deref()
                    .is_none_or(|status| names::attempt_status(attempt.status()) == status)
        };
        let live = live.filter_map(move |message| {
            let attempt = Attempt::decode(message.payload.as_ref())
                .ok()
                .filter(&wanted);
            async move { attempt.map(Ok) }
        });
        let stream = futures::stream::iter(backlog.into_iter().map(Ok))
            .chain(live)
            .take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }
}
