//! `RecoveryService`: dead letters, redrive, replay and recovery.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use herald_proto::v1::{
    GetRecoveryJobRequest, ListDeadLettersRequest, ListDeadLettersResponse,
    PurgeDeadLettersRequest, PurgeDeadLettersResponse, RecoverFailedRequest, RecoveryJob,
    RedriveDeadLettersRequest, ReplayEventRequest, recovery_service_server::RecoveryService,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{auth::Access, error::ApiError, recovery::Work, state::ConfigState};

#[derive(Debug)]
pub struct RecoveryApi {
    state: ConfigState,
    /// Ends job watches on shutdown.
    shutdown: CancellationToken,
}

impl RecoveryApi {
    pub fn new(state: ConfigState, shutdown: CancellationToken) -> RecoveryApi {
        RecoveryApi { state, shutdown }
    }

    async fn tenant<T>(&self, request: &Request<T>, access: Access) -> Result<String, Status> {
        Ok(self.state.auth.tenant(request.metadata(), access).await?)
    }
}

type JobStream = Pin<Box<dyn Stream<Item = Result<RecoveryJob, Status>> + Send>>;

#[tonic::async_trait]
impl RecoveryService for RecoveryApi {
    async fn replay_event(
        &self,
        request: Request<ReplayEventRequest>,
    ) -> Result<Response<RecoveryJob>, Status> {
        let tenant_id = self.tenant(&request, Access::Write).await?;
        let request = request.into_inner();
        let work = Work::Replay {
            event_id: request.event_id,
            endpoint_id: request.endpoint_id,
        };
        Ok(Response::new(
            self.state.start_recovery(&tenant_id, work).await?,
        ))
    }

    async fn recover_failed(
        &self,
        request: Request<RecoverFailedRequest>,
    ) -> Result<Response<RecoveryJob>, Status> {
        let tenant_id = self.tenant(&request, Access::Write).await?;
        let request = request.into_inner();
        let since = herald_proto::timestamp_from_wire("since", request.since)
            .map_err(|error| ApiError::invalid("since", error.reason))?;
        let work = Work::Recover {
            endpoint_id: request.endpoint_id,
            since_micros: crate::recovery::micros(since),
        };
        Ok(Response::new(
            self.state.start_recovery(&tenant_id, work).await?,
        ))
    }

    async fn get_recovery_job(
        &self,
        request: Request<GetRecoveryJobRequest>,
    ) -> Result<Response<RecoveryJob>, Status> {
        let tenant_id = self.tenant(&request, Access::Read).await?;
        Ok(Response::new(
            self.state
                .get_recovery_job(&tenant_id, &request.into_inner().job_id)
                .await?,
        ))
    }

    type WatchRecoveryJobStream = JobStream;

    async fn watch_recovery_job(
        &self,
        request: Request<GetRecoveryJobRequest>,
    ) -> Result<Response<Self::WatchRecoveryJobStream>, Status> {
        let tenant_id = self.tenant(&request, Access::Read).await?;
        let stream = self
            .state
            .watch_recovery_job(
                &tenant_id,
                &request.into_inner().job_id,
                self.shutdown.clone(),
            )
            .await?;
        Ok(Response::new(Box::pin(
            stream.map(|job| job.map_err(Status::from)),
        )))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let tenant_id = self.tenant(&request, Access::Read).await?;
        Ok(Response::new(
            self.state
                .list_dead_letters(&tenant_id, request.into_inner())
                .await?,
        ))
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<RedriveDeadLettersRequest>,
    ) -> Result<Response<RecoveryJob>, Status> {
        let tenant_id = self.tenant(&request, Access::Write).await?;
        let request = request.into_inner();
        let work = Work::Redrive {
            delivery_ids: request.delivery_ids,
            all_of_endpoint: request.all_of_endpoint,
        };
        Ok(Response::new(
            self.state.start_recovery(&tenant_id, work).await?,
        ))
    }

    async fn purge_dead_letters(
        &self,
        request: Request<PurgeDeadLettersRequest>,
    ) -> Result<Response<PurgeDeadLettersResponse>, Status> {
        let tenant_id = self.tenant(&request, Access::Write).await?;
        let request = request.into_inner();
        let purged = self
            .state
            .purge_dead_letters(&tenant_id, &request.delivery_ids, &request.all_of_endpoint)
            .await?;
        Ok(Response::new(PurgeDeadLettersResponse { purged }))
    }
}
