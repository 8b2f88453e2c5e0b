//! The subscription index, kept current by the Watch stream.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use herald_bus::JobLane;
use herald_core::{
    event::Event,
    id::EndpointId,
    matching::{EndpointStatus, SubscriptionIndex},
};
use herald_proto::v1::{
    self as pb, WatchedEndpoint, WatchedKind, WatchedObject, WatchedRef, watched_object::Object,
};
use herald_watch::WatchHandler;
use tokio::sync::watch;

/// Every active endpoint's subscription, and where each endpoint's jobs go.
#[derive(Debug, Default)]
struct Index {
    subscriptions: SubscriptionIndex,
    routes: HashMap<EndpointId, Route>,
}

#[derive(Clone, Copy, Debug)]
struct Route {
    /// The configuration revision (jobs carry it).
    revision: u64,
    lane: JobLane,
}

impl Index {
    fn upsert(&mut self, watched: &WatchedEndpoint) {
        let Some(endpoint) = &watched.endpoint else {
            return;
        };
        let Ok(endpoint_id) = EndpointId::parse(&endpoint.id) else {
            tracing::warn!(endpoint = %endpoint.id, "ignoring an endpoint with an invalid id");
            return;
        };
        match herald_proto::endpoint_subscription(endpoint) {
            Ok(subscription) => {
                self.subscriptions
                    .upsert(endpoint_id, subscription, status(endpoint.status()));
                let fifo = endpoint
                    .spec
                    .as_ref()
                    .is_some_and(|spec| spec.ordering() == pb::Ordering::Fifo);
                self.routes.insert(
                    endpoint_id,
                    Route {
                        revision: endpoint.revision,
                        lane: if fifo { JobLane::Fifo } else { JobLane::Pool },
                    },
                );
            }
            Err(reason) => {
                // An endpoint Herald cannot read must not receive guesses.
                tracing::warn!(endpoint = %endpoint.id, %reason, "ignoring an unreadable endpoint");
                self.remove(&endpoint_id);
            }
        }
    }

    fn remove(&mut self, endpoint_id: &EndpointId) {
        self.subscriptions.remove(endpoint_id);
        self.routes.remove(endpoint_id);
    }
}

/// Unspecified matches like pending: nothing but tests.
fn status(status: pb::EndpointStatus) -> EndpointStatus {
    EndpointStatus::try_from(status).unwrap_or(EndpointStatus::PendingTest)
}

/// The index shared between the Watch task (writer) and the fanout loop.
#[derive(Clone, Debug)]
pub struct Subscriptions {
    index: Arc<RwLock<Index>>,
    /// The configuration revision the index reflects.
    applied: Arc<watch::Sender<u64>>,
}

impl Default for Subscriptions {
    fn default() -> Subscriptions {
        Subscriptions {
            index: Arc::default(),
            applied: Arc::new(watch::Sender::new(0)),
        }
    }
}

/// An endpoint an event goes to, at the configuration revision matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub endpoint_id: EndpointId,
    pub revision: u64,
    pub lane: JobLane,
}

impl Subscriptions {
    pub fn new() -> Subscriptions {
        Subscriptions::default()
    }

    /// Every active endpoint subscribed to `event`, in id order; costs
    /// O(matches), not O(endpoints).
    pub fn matches(&self, event: &Event) -> Vec<Match> {
        let index = match self.index.read() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        index
            .subscriptions
            .matches(event)
            .into_iter()
            .map(|endpoint_id| {
                let route = index.routes.get(&endpoint_id);
                Match {
                    endpoint_id,
                    revision: route.map(|route| route.revision).unwrap_or_default(),
                    lane: route.map_or(JobLane::Pool, |route| route.lane),
                }
            })
            .collect()
    }

    /// Whether any indexed endpoint wants its jobs in order.
    pub fn has_fifo(&self) -> bool {
        let index = match self.index.read() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        index
            .routes
            .values()
            .any(|route| route.lane == JobLane::Fifo)
    }

    /// Follows the configuration revision the index reflects.
    pub fn applied_revision(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// How many active endpoints are indexed.
    pub fn len(&self) -> usize {
        match self.index.read() {
            Ok(index) => index.subscriptions.len(),
            Err(poisoned) => poisoned.into_inner().subscriptions.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Watch handler that keeps this index current. A snapshot is built
    /// aside and swapped in whole.
    pub fn handler(&self) -> SubscriptionHandler {
        SubscriptionHandler {
            subscriptions: self.clone(),
            pending: None,
        }
    }

    fn update(&self, change: impl FnOnce(&mut Index)) {
        let mut index = match self.index.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut index);
    }
}

#[derive(Debug)]
pub struct SubscriptionHandler {
    subscriptions: Subscriptions,
    pending: Option<Index>,
}

impl WatchHandler for SubscriptionHandler {
    fn begin_snapshot(&mut self) {
        self.pending = Some(Index::default());
    }

    fn upsert(&mut self, object: WatchedObject) {
        let Some(Object::Endpoint(endpoint)) = object.object else {
            return;
        };
        match &mut self.pending {
            Some(pending) => pending.upsert(&endpoint),
            None => self.subscriptions.update(|index| index.upsert(&endpoint)),
        }
    }

    fn delete(&mut self, reference: WatchedRef) {
        if reference.kind() != WatchedKind::Endpoint {
            return;
        }
        let Ok(endpoint_id) = EndpointId::parse(&reference.id) else {
            return;
        };
        match &mut self.pending {
            Some(pending) => pending.remove(&endpoint_id),
            None => self
                .subscriptions
                .update(|index| index.remove(&endpoint_id)),
        }
    }

    fn end_snapshot(&mut self) {
        if let Some(index) = self.pending.take() {
            self.subscriptions.update(|current| *current = index);
        }
    }

    fn applied(&mut self, revision: u64) {
        self.subscriptions.applied.send_replace(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{
        catalog::EventType,
        channel::Channel,
        event::parse_data,
        id::{DeviceId, EventId, TenantId},
    };
    use time::OffsetDateTime;

    fn watched(
        id: EndpointId,
        tenant: TenantId,
        status: pb::EndpointStatus,
        types: &[&str],
        revision: u64,
    ) -> WatchedObject {
        WatchedObject {
            object: Some(Object::Endpoint(WatchedEndpoint {
                endpoint: Some(pb::Endpoint {
                    id: id.to_string(),
                    tenant_id: tenant.to_string(),
                    status: status.into(),
                    revision,
                    spec: Some(pb::EndpointSpec {
                        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                secrets: None,
            })),
        }
    }

    fn event(tenant: TenantId, event_type: &str) -> Event {
        Event {
            id: EventId::generate(),
            tenant_id: tenant,
            channel: Channel::Waba,
            device_id: Some(DeviceId::generate()),
            event_type: EventType::parse(event_type).unwrap(),
            occurred_at: OffsetDateTime::now_utc(),
            received_at: OffsetDateTime::now_utc(),
            source_ref: None,
            idempotency_key: "k".into(),
            data: parse_data(b"{}").unwrap(),
        }
    }

    #[test]
    fn only_active_endpoints_of_the_tenant_match_with_their_revision() {
        let subscriptions = Subscriptions::new();
        let mut handler = subscriptions.handler();
        let tenant = TenantId::generate();
        let (read, all, paused) = (
            EndpointId::generate(),
            EndpointId::generate(),
            EndpointId::generate(),
        );
        handler.upsert(watched(
            read,
            tenant,
            pb::EndpointStatus::Active,
            &["message.read"],
            7,
        ));
        handler.upsert(watched(all, tenant, pb::EndpointStatus::Active, &[], 8));
        handler.upsert(watched(
            paused,
            tenant,
            pb::EndpointStatus::Disabled,
            &[],
            9,
        ));
        let found = subscriptions.matches(&event(tenant, "message.read"));
        let mut expected = vec![
            Match {
                endpoint_id: read,
                revision: 7,
                lane: JobLane::Pool,
            },
            Match {
                endpoint_id: all,
                revision: 8,
                lane: JobLane::Pool,
            },
        ];
        expected.sort_by_key(|m| m.endpoint_id);
        assert_eq!(found, expected);
        assert_eq!(
            subscriptions.matches(&event(tenant, "message.sent")),
            [Match {
                endpoint_id: all,
                revision: 8,
                lane: JobLane::Pool,
            }]
        );
        assert!(
            subscriptions
                .matches(&event(TenantId::generate(), "message.read"))
                .is_empty()
        );

        handler.delete(WatchedRef {
            kind: WatchedKind::Endpoint.into(),
            id: all.to_string(),
            tenant_id: tenant.to_string(),
        });
        assert!(
            subscriptions
                .matches(&event(tenant, "message.sent"))
                .is_empty()
        );
    }

    #[test]
    fn a_snapshot_swaps_in_whole() {
        let subscriptions = Subscriptions::new();
        let mut handler = subscriptions.handler();
        let tenant = TenantId::generate();
        let old = EndpointId::generate();
        handler.upsert(watched(old, tenant, pb::EndpointStatus::Active, &[], 1));
        handler.begin_snapshot();
        let new = EndpointId::generate();
        handler.upsert(watched(new, tenant, pb::EndpointStatus::Active, &[], 2));
        assert_eq!(
            subscriptions.matches(&event(tenant, "contact.created"))[0].endpoint_id,
            old
        );
        handler.end_snapshot();
        assert_eq!(
            subscriptions.matches(&event(tenant, "contact.created")),
            [Match {
                endpoint_id: new,
                revision: 2,
                lane: JobLane::Pool,
            }]
        );
    }
}
