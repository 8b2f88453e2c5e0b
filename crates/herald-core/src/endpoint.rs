//! An endpoint as delivery works with it: where to send, how to sign, how
//! to retry, how fast and how long to wait. Built once from the wire form
//! when the configuration changes, not on every job.

use std::{collections::HashMap, time::Duration};

use time::OffsetDateTime;
use url::Url;

use crate::{
    id::{EndpointId, TenantId},
    matching::{EndpointStatus, EventTypeFilter},
    preset::Preset,
    rate::RateLimit,
    retry::RetrySchedule,
    signing::{EndpointSecret, SigningScheme},
    transform::Transformation,
};

/// How long a request may take when the endpoint names no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether an endpoint's deliveries keep the order their events arrived in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ordering {
    #[default]
    Unordered,
    /// One delivery at a time, in the order ingest accepted the events.
    Fifo,
}

/// The endpoint's current secret and, while a rotation's overlap lasts, the
/// previous one.
#[derive(Clone, Debug, Default)]
pub struct EndpointSecrets {
    pub current: Option<EndpointSecret>,
    /// The previous secret and when it stops signing.
    pub previous: Option<(EndpointSecret, OffsetDateTime)>,
}

impl EndpointSecrets {
    /// The secrets a delivery made at `now` is signed with: the current
    /// one, then the previous one while its overlap lasts. Without a
    /// current secret, none (signing then reports the missing secret).
    #[must_use]
    pub fn signing(&self, now: OffsetDateTime) -> Vec<EndpointSecret> {
        let Some(current) = &self.current else {
            return Vec::new();
        };
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(secret, _)| secret.clone());
        std::iter::once(current.clone()).chain(previous).collect()
    }
}

/// Everything a delivery needs to know about its endpoint.
#[derive(Clone, Debug)]
pub struct EndpointSettings {
    pub id: EndpointId,
    pub tenant_id: TenantId,
    /// The configuration revision of this version of the endpoint.
    pub revision: u64,
    pub status: EndpointStatus,
    pub url: Url,
    /// The payload contract; `None`: Herald's own envelope.
    pub preset: Option<Preset>,
    /// The preset's own scheme when there is a preset.
    pub scheme: SigningScheme,
    pub secrets: EndpointSecrets,
    /// Custom request headers, by name.
    pub headers: HashMap<String, String>,
    pub retry: RetrySchedule,
    /// `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    pub timeout: Duration,
    pub ordering: Ordering,
    /// The subscribed event types: an alias subscriber receives events
    /// under the alias's name (see [`crate::matching::subscribed_name`]).
    pub event_types: EventTypeFilter,
    /// The program that reshapes each delivery; `None`: the envelope as is.
    pub transformation: Option<Transformation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_secret_signs_only_during_its_overlap() {
        let now = OffsetDateTime::now_utc();
        let secret = |value: &str| EndpointSecret::parse(value).unwrap();
        let secrets = |expires_at: OffsetDateTime| EndpointSecrets {
            current: Some(secret("current-secret")),
            previous: Some((secret("previous-secret"), expires_at)),
        };
        let during = secrets(now + time::Duration::hours(1)).signing(now);
        assert_eq!(
            during
                .iter()
                .map(EndpointSecret::expose)
                .collect::<Vec<_>>(),
            ["current-secret", "previous-secret"]
        );
        assert_eq!(
            secrets(now - time::Duration::seconds(1)).signing(now).len(),
            1
        );
        let previous_only = EndpointSecrets {
            current: None,
            ..secrets(now + time::Duration::hours(1))
        };
        assert!(previous_only.signing(now).is_empty());
    }
}
