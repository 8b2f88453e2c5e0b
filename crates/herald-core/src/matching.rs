//! Which endpoints receive which events.
//!
//! An endpoint subscribes to its tenant's events, optionally narrowed to some
//! devices and some event types. [`subscription_matches`] is the rule, stated
//! once; [`SubscriptionIndex`] answers the same question for every endpoint at
//! once without scanning them.
//!
//! Design decisions:
//! - Only [`EndpointStatus::Active`] endpoints receive live events. A pending
//!   endpoint has not passed its test delivery yet, a failing one is being
//!   probed by the delivery service on its own schedule, and a disabled one is
//!   off.
//! - An endpoint never receives its own `endpoint.disabled` notice: it is
//!   sent because that endpoint was paused, so it cannot be delivered there
//!   when it is made, and it would only come back to it later (a redrive of
//!   the paused backlog, a replay) as news of its own outage. The owner hears
//!   of it through their other endpoints. The rule lives here, in matching,
//!   so fanout and replay apply it alike and delivery needs no exception.
//! - `Only` with an empty set matches nothing, rather than being treated as
//!   `All`: an empty selection in the dashboard means "nothing", and widening
//!   it silently would deliver data the customer did not ask for.
//! - An endpoint may subscribe to an alias of a catalog type (Kapso's
//!   `whatsapp.message.received`, see [`crate::catalog::ALIASES`]): it then
//!   receives that type's events from the alias's channels only. The index
//!   stores it under the alias's name, and an event also looks up the
//!   buckets of its aliases.
//! - The index stores each active endpoint under every (device or any, event
//!   type or any) pair its subscription names, keyed by tenant. An event then
//!   looks up at most four buckets — (device, type), (device, any),
//!   (any, type), (any, any) — so matching costs O(matches), whatever the
//!   number of endpoints.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::catalog::{EventType, aliases_of};
use crate::channel::Channel;
use crate::event::Event;
use crate::excerpt::excerpt;
use crate::id::{DeviceId, EndpointId, TenantId};

/// The lifecycle state of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Created, waiting for a successful test delivery.
    PendingTest,
    /// Receiving events.
    Active,
    /// Turned off, by the customer or by Herald after repeated failures.
    Disabled,
    /// Failing deliveries; retried by the delivery service, not fed new events.
    Failing,
}

/// Whether a test delivery passed, which makes a pending or failing endpoint
/// active: the attempt succeeded and the receiver answered 200 or 201. Other
/// 2xx answers (202, 204) often come from a placeholder that never looked at
/// the request, so they do not vouch for the receiver.
#[must_use]
pub fn test_delivery_passed(succeeded: bool, response_code: u32) -> bool {
    succeeded && matches!(response_code, 200 | 201)
}

/// An endpoint status name that is not one of [`EndpointStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown endpoint status {value:?}: expected one of pending_test, active, disabled, failing"
)]
pub struct EndpointStatusError {
    /// Excerpt of the refused value.
    pub value: String,
}

impl EndpointStatus {
    /// Every status, in declaration order.
    pub const ALL: [EndpointStatus; 4] = [
        EndpointStatus::PendingTest,
        EndpointStatus::Active,
        EndpointStatus::Disabled,
        EndpointStatus::Failing,
    ];

    /// The snake_case name used in storage and APIs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::PendingTest => "pending_test",
            EndpointStatus::Active => "active",
            EndpointStatus::Disabled => "disabled",
            EndpointStatus::Failing => "failing",
        }
    }
}

impl fmt::Display for EndpointStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for EndpointStatus {
    type Err = EndpointStatusError;

    fn from_str(value: &str) -> Result<Self, EndpointStatusError> {
        EndpointStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| EndpointStatusError {
                value: excerpt(value),
            })
    }
}

/// Which devices' events an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceFilter {
    /// Events from every device, and events without a device.
    All,
    /// Only events from these devices; never events without a device.
    Only(BTreeSet<DeviceId>),
}

/// Which event types an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTypeFilter {
    /// Every event type, catalog and custom.
    All,
    /// Only these event types.
    Only(BTreeSet<EventType>),
}

/// What an endpoint subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The tenant owning the endpoint; only its events can match.
    pub tenant_id: TenantId,
    /// Device filter.
    pub devices: DeviceFilter,
    /// Event type filter.
    pub event_types: EventTypeFilter,
}

/// Whether `event` is Herald's notice that `endpoint_id` itself was paused.
#[must_use]
pub fn is_own_disabled_notice(endpoint_id: &EndpointId, event: &Event) -> bool {
    event.channel == Channel::Internal
        && event.event_type == EventType::endpoint_disabled()
        && event.source_ref.as_deref() == Some(endpoint_id.as_str())
}

/// Whether the endpoint `endpoint_id` with `subscription` and `status`
/// receives `event`.
#[must_use]
pub fn subscription_matches(
    endpoint_id: &EndpointId,
    subscription: &Subscription,
    status: EndpointStatus,
    event: &Event,
) -> bool {
    if status != EndpointStatus::Active
        || subscription.tenant_id != event.tenant_id
        || is_own_disabled_notice(endpoint_id, event)
    {
        return false;
    }
    let device_matches = match &subscription.devices {
        DeviceFilter::All => true,
        DeviceFilter::Only(devices) => event
            .device_id
            .is_some_and(|device_id| devices.contains(&device_id)),
    };
    let type_matches = match &subscription.event_types {
        EventTypeFilter::All => true,
        EventTypeFilter::Only(types) => {
            types.contains(&event.event_type)
                || aliases_of(&event.event_type, event.channel)
                    .any(|alias| types.contains(alias.name))
        }
    };
    device_matches && type_matches
}

/// The name an endpoint receives `event` under: the alias it subscribed to
/// when it matched only through one (Kapso's receivers dispatch on
/// `whatsapp.message.received`), else `None` for the event's own type. An
/// endpoint subscribed to the type itself, or to every type, gets the
/// catalog name.
#[must_use]
pub fn subscribed_name(event_types: &EventTypeFilter, event: &Event) -> Option<EventType> {
    let EventTypeFilter::Only(types) = event_types else {
        return None;
    };
    if types.contains(&event.event_type) {
        return None;
    }
    aliases_of(&event.event_type, event.channel)
        .find_map(|alias| types.get(alias.name))
        .cloned()
}

/// One bucket of the index; `None` stands for "any".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BucketKey {
    tenant_id: TenantId,
    device_id: Option<DeviceId>,
    event_type: Option<EventType>,
}

/// All active endpoints' subscriptions, indexed for matching.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionIndex {
    /// The subscription each indexed endpoint was stored under, needed to find
    /// its buckets again on update or removal.
    subscriptions: HashMap<EndpointId, Subscription>,
    buckets: HashMap<BucketKey, BTreeSet<EndpointId>>,
}

impl SubscriptionIndex {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the endpoint's current subscription and status, replacing what
    /// was recorded before. Endpoints that are not active are removed.
    pub fn upsert(
        &mut self,
        endpoint_id: EndpointId,
        subscription: Subscription,
        status: EndpointStatus,
    ) {
        self.remove(&endpoint_id);
        if status != EndpointStatus::Active {
            return;
        }
        for key in bucket_keys(&subscription) {
            self.buckets.entry(key).or_default().insert(endpoint_id);
        }
        self.subscriptions.insert(endpoint_id, subscription);
    }

    /// Forgets the endpoint. Returns whether it was indexed.
    pub fn remove(&mut self, endpoint_id: &EndpointId) -> bool {
        let Some(subscription) = self.subscriptions.remove(endpoint_id) else {
            return false;
        };
        for key in bucket_keys(&subscription) {
            if let Entry::Occupied(mut bucket) = self.buckets.entry(key) {
                bucket.get_mut().remove(endpoint_id);
                // Empty buckets are dropped so memory follows the live
                // subscriptions, not every subscription ever seen.
                if bucket.get().is_empty() {
                    bucket.remove();
                }
            }
        }
        true
    }

    /// The endpoints that receive `event`, sorted and without duplicates.
    #[must_use]
    pub fn matches(&self, event: &Event) -> Vec<EndpointId> {
        let event_type = Some(event.event_type.clone());
        // An event without a device only reaches "any device" buckets.
        let device_choices = [None, event.device_id];
        let device_choices = if event.device_id.is_some() {
            &device_choices[..]
        } else {
            &device_choices[..1]
        };
        // An alias subscription is stored under the alias's name.
        let type_choices: Vec<Option<EventType>> = [event_type, None]
            .into_iter()
            .chain(
                aliases_of(&event.event_type, event.channel)
                    .filter_map(|alias| EventType::parse(alias.name).ok())
                    .map(Some),
            )
            .collect();
        let mut matched = Vec::new();
        for &device_id in device_choices {
            for event_type in type_choices.iter().cloned() {
                let key = BucketKey {
                    tenant_id: event.tenant_id,
                    device_id,
                    event_type,
                };
                if let Some(bucket) = self.buckets.get(&key) {
                    matched.extend(bucket.iter().copied());
                }
            }
        }
        matched.retain(|endpoint_id| !is_own_disabled_notice(endpoint_id, event));
        matched.sort_unstable();
        matched.dedup();
        matched
    }

    /// Number of indexed (active) endpoints.
    #[must_use]
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether no endpoint is indexed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }
}

/// Every bucket an endpoint with `subscription` belongs in: the product of its
/// device choices and its type choices.
fn bucket_keys(subscription: &Subscription) -> Vec<BucketKey> {
    let device_choices: Vec<Option<DeviceId>> = match &subscription.devices {
        DeviceFilter::All => vec![None],
        DeviceFilter::Only(devices) => devices.iter().copied().map(Some).collect(),
    };
    let type_choices: Vec<Option<EventType>> = match &subscription.event_types {
        EventTypeFilter::All => vec![None],
        EventTypeFilter::Only(types) => types.iter().cloned().map(Some).collect(),
    };
    let mut keys = Vec::with_capacity(device_choices.len() * type_choices.len());
    for device_id in &device_choices {
        for event_type in &type_choices {
            keys.push(BucketKey {
                tenant_id: subscription.tenant_id,
                device_id: *device_id,
                event_type: event_type.clone(),
            });
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample_event;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn tenant(n: u128) -> TenantId {
        TenantId::from_uuid(Uuid::from_u128(n))
    }

    fn device(n: u128) -> DeviceId {
        DeviceId::from_uuid(Uuid::from_u128(n))
    }

    fn endpoint(n: u128) -> EndpointId {
        EndpointId::from_uuid(Uuid::from_u128(n))
    }

    fn event_type(name: &str) -> EventType {
        EventType::parse(name).unwrap()
    }

    fn event(tenant_n: u128, device_n: Option<u128>, type_name: &str) -> Event {
        let mut event = sample_event();
        event.tenant_id = tenant(tenant_n);
        event.device_id = device_n.map(device);
        event.event_type = event_type(type_name);
        event
    }

    fn devices(ns: &[u128]) -> DeviceFilter {
        DeviceFilter::Only(ns.iter().copied().map(device).collect())
    }

    fn types(names: &[&str]) -> EventTypeFilter {
        EventTypeFilter::Only(names.iter().copied().map(event_type).collect())
    }

    fn subscription(
        tenant_n: u128,
        devices: DeviceFilter,
        event_types: EventTypeFilter,
    ) -> Subscription {
        Subscription {
            tenant_id: tenant(tenant_n),
            devices,
            event_types,
        }
    }

    #[test]
    fn status_names_round_trip() {
        for status in EndpointStatus::ALL {
            assert_eq!(status.as_str().parse::<EndpointStatus>().unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert_eq!(EndpointStatus::PendingTest.as_str(), "pending_test");
        let error = "Active".parse::<EndpointStatus>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown endpoint status \"Active\": expected one of pending_test, active, disabled, \
             failing"
        );
    }

    #[test]
    fn only_a_200_or_201_passes_a_test_delivery() {
        assert!(test_delivery_passed(true, 200));
        assert!(test_delivery_passed(true, 201));
        for code in [202, 204, 299] {
            assert!(!test_delivery_passed(true, code), "{code}");
        }
        for code in [0, 200, 500] {
            assert!(!test_delivery_passed(false, code), "{code}");
        }
    }

    #[test]
    fn subscription_matches_table() {
        use DeviceFilter::All as AnyDevice;
        use EventTypeFilter::All as AnyType;
        let active = EndpointStatus::Active;
        let cases: Vec<(&str, Subscription, EndpointStatus, Event, bool)> = vec![
            (
                "all/all active",
                subscription(1, AnyDevice, AnyType),
                active,
                event(1, Some(10), "message.received"),
                true,
            ),
            (
                "all/all without device",
                subscription(1, AnyDevice, AnyType),
                active,
                event(1, None, "message.received"),
                true,
            ),
            (
                "other tenant",
                subscription(2, AnyDevice, AnyType),
                active,
                event(1, Some(10), "message.received"),
                false,
            ),
            (
                "pending test",
                subscription(1, AnyDevice, AnyType),
                EndpointStatus::PendingTest,
                event(1, Some(10), "message.received"),
                false,
            ),
            (
                "disabled",
                subscription(1, AnyDevice, AnyType),
                EndpointStatus::Disabled,
                event(1, Some(10), "message.received"),
                false,
            ),
            (
                "failing",
                subscription(1, AnyDevice, AnyType),
                EndpointStatus::Failing,
                event(1, Some(10), "message.received"),
                false,
            ),
            (
                "device listed",
                subscription(1, devices(&[10, 11]), AnyType),
                active,
                event(1, Some(11), "message.sent"),
                true,
            ),
            (
                "device not listed",
                subscription(1, devices(&[10, 11]), AnyType),
                active,
                event(1, Some(12), "message.sent"),
                false,
            ),
            (
                "device filter, event without device",
                subscription(1, devices(&[10]), AnyType),
                active,
                event(1, None, "message.sent"),
                false,
            ),
            (
                "empty device set",
                subscription(1, devices(&[]), AnyType),
                active,
                event(1, Some(10), "message.sent"),
                false,
            ),
            (
                "type listed",
                subscription(1, AnyDevice, types(&["message.read", "order.shipped"])),
                active,
                event(1, None, "order.shipped"),
                true,
            ),
            (
                "type not listed",
                subscription(1, AnyDevice, types(&["message.read"])),
                active,
                event(1, None, "message.sent"),
                false,
            ),
            (
                "empty type set",
                subscription(1, AnyDevice, types(&[])),
                active,
                event(1, None, "message.sent"),
                false,
            ),
            (
                "both listed",
                subscription(1, devices(&[10]), types(&["message.read"])),
                active,
                event(1, Some(10), "message.read"),
                true,
            ),
            (
                "device ok, type not",
                subscription(1, devices(&[10]), types(&["message.read"])),
                active,
                event(1, Some(10), "message.sent"),
                false,
            ),
            (
                "type ok, device not",
                subscription(1, devices(&[10]), types(&["message.read"])),
                active,
                event(1, Some(11), "message.read"),
                false,
            ),
            (
                "same device id, other tenant",
                subscription(2, devices(&[10]), AnyType),
                active,
                event(1, Some(10), "message.read"),
                false,
            ),
        ];
        for (name, subscription, status, event, expected) in cases {
            assert_eq!(
                subscription_matches(&endpoint(1), &subscription, status, &event),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn an_endpoint_never_receives_its_own_disabled_notice() {
        let notice = |about: EndpointId| {
            let mut event = event(1, None, "endpoint.disabled");
            event.channel = Channel::Internal;
            event.source_ref = Some(about.to_string());
            event
        };
        let everything = subscription(1, DeviceFilter::All, EventTypeFilter::All);
        let mut index = SubscriptionIndex::new();
        index.upsert(endpoint(1), everything.clone(), EndpointStatus::Active);
        index.upsert(endpoint(2), everything.clone(), EndpointStatus::Active);
        assert_eq!(index.matches(&notice(endpoint(1))), [endpoint(2)]);
        assert!(!subscription_matches(
            &endpoint(1),
            &everything,
            EndpointStatus::Active,
            &notice(endpoint(1))
        ));
        assert!(subscription_matches(
            &endpoint(2),
            &everything,
            EndpointStatus::Active,
            &notice(endpoint(1))
        ));
        // Only Herald's own notice: a published event of that name from
        // another channel is an ordinary event.
        let mut published = notice(endpoint(1));
        published.channel = Channel::Waba;
        assert!(is_own_disabled_notice(&endpoint(1), &notice(endpoint(1))));
        assert!(!is_own_disabled_notice(&endpoint(1), &published));
    }

    #[test]
    fn index_matches_by_bucket() {
        let mut index = SubscriptionIndex::new();
        assert!(index.is_empty());
        index.upsert(
            endpoint(1),
            subscription(1, DeviceFilter::All, EventTypeFilter::All),
            EndpointStatus::Active,
        );
        index.upsert(
            endpoint(2),
            subscription(1, devices(&[10]), EventTypeFilter::All),
            EndpointStatus::Active,
        );
        index.upsert(
            endpoint(3),
            subscription(1, DeviceFilter::All, types(&["message.read"])),
            EndpointStatus::Active,
        );
        index.upsert(
            endpoint(4),
            subscription(
                1,
                devices(&[10, 11]),
                types(&["message.read", "message.sent"]),
            ),
            EndpointStatus::Active,
        );
        index.upsert(
            endpoint(5),
            subscription(2, DeviceFilter::All, EventTypeFilter::All),
            EndpointStatus::Active,
        );
        index.upsert(
            endpoint(6),
            subscription(1, DeviceFilter::All, EventTypeFilter::All),
            EndpointStatus::Disabled,
        );
        assert_eq!(index.len(), 5);

        assert_eq!(
            index.matches(&event(1, Some(10), "message.read")),
            vec![endpoint(1), endpoint(2), endpoint(3), endpoint(4)]
        );
        assert_eq!(
            index.matches(&event(1, Some(11), "message.sent")),
            vec![endpoint(1), endpoint(4)]
        );
        assert_eq!(
            index.matches(&event(1, None, "message.read")),
            vec![endpoint(1), endpoint(3)]
        );
        assert_eq!(index.matches(&event(2, Some(10), "x.y")), vec![endpoint(5)]);
        assert!(index.matches(&event(3, Some(10), "x.y")).is_empty());
    }

    #[test]
    fn upsert_replaces_and_deactivation_removes() {
        let mut index = SubscriptionIndex::new();
        index.upsert(
            endpoint(1),
            subscription(1, devices(&[10]), EventTypeFilter::All),
            EndpointStatus::Active,
        );
        assert_eq!(index.matches(&event(1, Some(10), "a.b")), vec![endpoint(1)]);

        index.upsert(
            endpoint(1),
            subscription(1, devices(&[11]), EventTypeFilter::All),
            EndpointStatus::Active,
        );
        assert!(index.matches(&event(1, Some(10), "a.b")).is_empty());
        assert_eq!(index.matches(&event(1, Some(11), "a.b")), vec![endpoint(1)]);
        assert_eq!(index.len(), 1);

        index.upsert(
            endpoint(1),
            subscription(1, devices(&[11]), EventTypeFilter::All),
            EndpointStatus::Failing,
        );
        assert!(index.matches(&event(1, Some(11), "a.b")).is_empty());
        assert!(index.is_empty());
        assert!(index.buckets.is_empty());
    }

    #[test]
    fn remove_reports_whether_the_endpoint_was_indexed() {
        let mut index = SubscriptionIndex::new();
        index.upsert(
            endpoint(1),
            subscription(1, DeviceFilter::All, types(&["a.b", "c.d"])),
            EndpointStatus::Active,
        );
        index.upsert(
            endpoint(2),
            subscription(1, DeviceFilter::All, types(&["a.b"])),
            EndpointStatus::Active,
        );
        assert!(index.remove(&endpoint(1)));
        assert!(!index.remove(&endpoint(1)));
        assert_eq!(index.matches(&event(1, None, "a.b")), vec![endpoint(2)]);
        assert!(index.matches(&event(1, None, "c.d")).is_empty());
        assert!(index.remove(&endpoint(2)));
        assert!(index.buckets.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Operation {
        Upsert(u128, Subscription, EndpointStatus),
        Remove(u128),
    }

    const TYPE_NAMES: [&str; 4] = [
        "message.received",
        "message.read",
        "order.shipped",
        "whatsapp.message.received",
    ];

    fn device_filter_strategy() -> impl Strategy<Value = DeviceFilter> {
        prop_oneof![
            Just(DeviceFilter::All),
            proptest::collection::btree_set(0u128..4, 0..3)
                .prop_map(|ns| DeviceFilter::Only(ns.into_iter().map(device).collect())),
        ]
    }

    fn type_filter_strategy() -> impl Strategy<Value = EventTypeFilter> {
        prop_oneof![
            Just(EventTypeFilter::All),
            proptest::collection::btree_set(0usize..3, 0..3).prop_map(|indexes| {
                EventTypeFilter::Only(
                    indexes
                        .into_iter()
                        .map(|i| event_type(TYPE_NAMES[i]))
                        .collect(),
                )
            }),
        ]
    }

    fn operation_strategy() -> impl Strategy<Value = Operation> {
        let status = proptest::sample::select(EndpointStatus::ALL.to_vec());
        prop_oneof![
            4 => (0u128..8, 0u128..3, device_filter_strategy(), type_filter_strategy(), status)
                .prop_map(|(endpoint_n, tenant_n, devices, event_types, status)| {
                    let subscription = subscription(tenant_n, devices, event_types);
                    Operation::Upsert(endpoint_n, subscription, status)
                }),
            1 => (0u128..8).prop_map(Operation::Remove),
        ]
    }

    #[test]
    fn an_alias_subscription_gets_its_channels_events_of_the_target_type() {
        let mut index = SubscriptionIndex::new();
        let alias = subscription(0, DeviceFilter::All, types(&["whatsapp.message.received"]));
        index.upsert(endpoint(1), alias.clone(), EndpointStatus::Active);
        for (channel, type_name, expected) in [
            (Channel::Whatsapp, "message.received", true),
            (Channel::Waba, "message.received", true),
            (Channel::Telegram, "message.received", false),
            (Channel::Whatsapp, "message.read", false),
        ] {
            let mut event = event(0, Some(1), type_name);
            event.channel = channel;
            assert_eq!(
                subscription_matches(&endpoint(1), &alias, EndpointStatus::Active, &event),
                expected,
                "{channel} {type_name}"
            );
            assert_eq!(
                index.matches(&event) == [endpoint(1)],
                expected,
                "{channel} {type_name}"
            );
        }
    }

    #[test]
    fn an_alias_subscriber_receives_the_event_under_the_alias() {
        let mut event = event(0, Some(1), "message.received");
        event.channel = Channel::Waba;
        let alias = types(&["whatsapp.message.received"]);
        assert_eq!(
            subscribed_name(&alias, &event).unwrap().as_str(),
            "whatsapp.message.received"
        );
        let both = types(&["whatsapp.message.received", "message.received"]);
        assert_eq!(subscribed_name(&both, &event), None);
        assert_eq!(subscribed_name(&EventTypeFilter::All, &event), None);
        event.channel = Channel::Telegram;
        assert_eq!(subscribed_name(&alias, &event), None);
    }

    proptest! {
        #[test]
        fn index_agrees_with_brute_force(
            operations in proptest::collection::vec(operation_strategy(), 0..40),
        ) {
            let mut index = SubscriptionIndex::new();
            let mut all: HashMap<EndpointId, (Subscription, EndpointStatus)> = HashMap::new();
            for operation in operations {
                match operation {
                    Operation::Upsert(endpoint_n, subscription, status) => {
                        index.upsert(endpoint(endpoint_n), subscription.clone(), status);
                        all.insert(endpoint(endpoint_n), (subscription, status));
                    }
                    Operation::Remove(endpoint_n) => {
                        index.remove(&endpoint(endpoint_n));
                        all.remove(&endpoint(endpoint_n));
                    }
                }
                let active = all
                    .values()
                    .filter(|(_, status)| *status == EndpointStatus::Active)
                    .count();
                prop_assert_eq!(index.len(), active);
                for tenant_n in 0..3 {
                    for device_n in [None, Some(0), Some(1), Some(2), Some(3)] {
                        for (type_name, channel) in TYPE_NAMES
                            .into_iter()
                            .flat_map(|name| [(name, Channel::Whatsapp), (name, Channel::Telegram)])
                        {
                            let mut event = event(tenant_n, device_n, type_name);
                            event.channel = channel;
                            let mut expected: Vec<EndpointId> = all
                                .iter()
                                .filter(|(endpoint_id, (subscription, status))| {
                                    subscription_matches(endpoint_id, subscription, *status, &event)
                                })
                                .map(|(endpoint_id, _)| *endpoint_id)
                                .collect();
                            expected.sort_unstable();
                            prop_assert_eq!(index.matches(&event), expected);
                        }
                    }
                }
            }
        }
    }
}
