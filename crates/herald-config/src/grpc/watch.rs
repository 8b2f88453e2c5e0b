//! `WatchService`: the configuration as a stream of changes, for Herald's own
//! services to keep their caches.
//!
//! Every committed change appends a row to the change log with the next
//! revision. A watcher gets a snapshot (or, when reconnecting with a revision
//! the log still covers, only what it missed), then each change as the
//! object's current state. Delivery of changes is at least once: a change
//! may repeat after a snapshot, and applying one twice is harmless.

use std::{collections::BTreeSet, pin::Pin, time::Duration};

use futures::{Stream, StreamExt};
use herald_proto::v1::{
    Heartbeat, SnapshotEnd, SnapshotStart, WatchRequest, WatchResponse, WatchedEndpoint,
    WatchedKind, WatchedObject, WatchedRef, watch_response::Change,
    watch_service_server::WatchService, watched_object::Object,
};
use herald_store::{ChangeRecord, ObjectKind};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    convert,
    error::{ApiError, ApiResult},
    state::ConfigState,
};

/// How often a watcher checks the change log for writes made by other
/// config replicas; writes by this replica wake it at once.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
const CHANGES_PER_QUERY: u64 = 500;

#[derive(Debug)]
pub struct WatchApi {
    state: ConfigState,
    /// Ends every open stream, so a graceful shutdown is not held up by
    /// watchers that would otherwise stay connected forever.
    shutdown: CancellationToken,
}

impl WatchApi {
    pub fn new(state: ConfigState, shutdown: CancellationToken) -> WatchApi {
        WatchApi { state, shutdown }
    }
}

fn kind_of(kind: WatchedKind) -> Option<ObjectKind> {
    match kind {
        WatchedKind::Tenant => Some(ObjectKind::Tenant),
        WatchedKind::Token => Some(ObjectKind::Token),
        WatchedKind::Device => Some(ObjectKind::Device),
        WatchedKind::Endpoint => Some(ObjectKind::Endpoint),
        WatchedKind::EventType => Some(ObjectKind::EventType),
        WatchedKind::Unspecified => None,
    }
}

fn watched_kind(kind: ObjectKind) -> WatchedKind {
    match kind {
        ObjectKind::Tenant => WatchedKind::Tenant,
        ObjectKind::Token => WatchedKind::Token,
        ObjectKind::Device => WatchedKind::Device,
        ObjectKind::Endpoint => WatchedKind::Endpoint,
        ObjectKind::EventType => WatchedKind::EventType,
    }
}

/// Most entries in a Watch request's `kinds`.
const MAX_WATCHED_KINDS: usize = 16;

/// Which kinds a watcher asked for; none named means all.
#[derive(Clone, Debug)]
struct Kinds(BTreeSet<WatchedKind>);

impl Kinds {
    fn parse(kinds: &[i32]) -> ApiResult<Kinds> {
        // Each kind once is all a watcher can mean.
        if kinds.len() > MAX_WATCHED_KINDS {
            return Err(ApiError::invalid(
                "kinds",
                format!("at most {MAX_WATCHED_KINDS} kinds"),
            ));
        }
        let mut wanted = BTreeSet::new();
        for (index, kind) in kinds.iter().enumerate() {
            match WatchedKind::try_from(*kind) {
                Ok(kind) if kind_of(kind).is_some() => {
                    wanted.insert(kind);
                }
                _ => return Err(ApiError::invalid(format!("kinds[{index}]"), "unknown kind")),
            }
        }
        Ok(Kinds(wanted))
    }

    fn wants(&self, kind: WatchedKind) -> bool {
        self.0.is_empty() || self.0.contains(&kind)
    }
}

fn response(revision: i64, change: Change) -> WatchResponse {
    WatchResponse {
        revision: u64::try_from(revision).unwrap_or_default(),
        change: Some(change),
    }
}

fn upsert(object: Object) -> Change {
    Change::Upsert(WatchedObject {
        object: Some(object),
    })
}

impl ConfigState {
    async fn snapshot(&self, kinds: &Kinds) -> ApiResult<(i64, Vec<Change>)> {
        // Read the revision first: objects read afterwards are at least that
        // new, and changes after it are replayed on top.
        let revision = self.store.current_revision().await?;
        let mut changes = Vec::new();
        if kinds.wants(WatchedKind::Tenant) {
            changes.extend(
                self.store
                    .all_tenants()
                    .await?
                    .into_iter()
                    .map(|tenant| upsert(Object::Tenant(convert::tenant(tenant)))),
            );
        }
        if kinds.wants(WatchedKind::Token) {
            changes.extend(
                self.store
                    .all_tokens()
                    .await?
                    .into_iter()
                    .map(|token| upsert(Object::Token(convert::watched_token(token)))),
            );
        }
        if kinds.wants(WatchedKind::Device) {
            for device in self.store.all_devices().await? {
                changes.push(upsert(Object::Device(convert::device(
                    device,
                    self.key(),
                    true,
                )?)));
            }
        }
        if kinds.wants(WatchedKind::Endpoint) {
            for endpoint in self.store.all_endpoints().await? {
                changes.push(upsert(Object::Endpoint(WatchedEndpoint {
                    secrets: Some(convert::endpoint_secrets(&endpoint, self.key())?),
                    endpoint: Some(convert::endpoint(
                        &endpoint,
                        self.key(),
                        convert::HeaderValues::Shown,
                    )?),
                })));
            }
        }
        if kinds.wants(WatchedKind::EventType) {
            changes.extend(
                self.store
                    .all_event_types()
                    .await?
                    .into_iter()
                    .map(|event_type| upsert(Object::EventType(convert::event_type(event_type)))),
            );
        }
        Ok((revision, changes))
    }

    /// The object's state now, or its deletion.
    async fn replay(&self, change: &ChangeRecord) -> ApiResult<Change> {
        let deleted = || {
            Change::Delete(WatchedRef {
                kind: watched_kind(change.kind).into(),
                id: change.object_id.clone(),
                tenant_id: change.tenant_id.clone(),
            })
        };
        if change.deleted {
            return Ok(deleted());
        }
        let object = match change.kind {
            ObjectKind::Tenant => self
                .store
                .get_tenant(&change.object_id)
                .await?
                .map(|tenant| Object::Tenant(convert::tenant(tenant))),
            ObjectKind::Token => self
                .store
                .get_token(&change.object_id)
                .await?
                .filter(|token| token.revoked_at.is_none())
                .map(|token| Object::Token(convert::watched_token(token))),
            ObjectKind::Device => match self.store.get_device_by_id(&change.object_id).await? {
                Some(device) => Some(Object::Device(convert::device(device, self.key(), true)?)),
                None => None,
            },
            ObjectKind::Endpoint => match self.store.get_endpoint_by_id(&change.object_id).await? {
                Some(endpoint) => Some(Object::Endpoint(WatchedEndpoint {
                    secrets: Some(convert::endpoint_secrets(&endpoint, self.key())?),
                    endpoint: Some(convert::endpoint(
                        &endpoint,
                        self.key(),
                        convert::HeaderValues::Shown,
                    )?),
                })),
                None => None,
            },
            ObjectKind::EventType => self
                .store
                .get_event_type(&change.tenant_id, &change.object_id)
                .await?
                .map(|event_type| Object::EventType(convert::event_type(event_type))),
        };
        Ok(object.map(upsert).unwrap_or_else(deleted))
    }

    /// Whether a watcher at `since` can resume from the change log.
    async fn can_resume_from(&self, since: i64) -> ApiResult<bool> {
        if since <= 0 || since > self.store.current_revision().await? {
            return Ok(false);
        }
        Ok(match self.store.oldest_revision().await? {
            Some(oldest) => since + 1 >= oldest,
            None => true,
        })
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl WatchService for WatchApi {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        self.state.auth.service(request.metadata()).await?;
        let request = request.into_inner();
        let kinds = Kinds::parse(&request.kinds)?;
        let since = i64::try_from(request.since_revision).unwrap_or(i64::MAX);
        let state = self.state.clone();
        let stream = async_stream::try_stream! {
            let mut last = since;
            if !state.can_resume_from(since).await? {
                let (revision, objects) = state.snapshot(&kinds).await?;
                yield response(revision, Change::SnapshotStart(SnapshotStart {}));
                for object in objects {
                    yield response(revision, object);
                }
                yield response(revision, Change::SnapshotEnd(SnapshotEnd {}));
                last = revision;
            }
            let mut idle_since = tokio::time::Instant::now();
            loop {
                let notified = state.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let changes = state.store.changes_since(last, CHANGES_PER_QUERY).await.map_err(ApiError::from)?;
                if changes.is_empty() {
                    if idle_since.elapsed() >= HEARTBEAT_INTERVAL {
                        yield response(last, Change::Heartbeat(Heartbeat {}));
                        idle_since = tokio::time::Instant::now();
                    }
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    }
                    continue;
                }
                for change in changes {
                    last = change.revision;
                    if kinds.wants(watched_kind(change.kind)) {
                        yield response(change.revision, state.replay(&change).await?);
                    }
                }
                idle_since = tokio::time::Instant::now();
            }
        };
        Ok(Response::new(Box::pin(
            stream.take_until(self.shutdown.clone().cancelled_owned()),
        )))
    }
}
