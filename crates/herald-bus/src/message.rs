//! Every message Herald puts on its streams, built in one place: subject,
//! routing headers, payload type and `Nats-Msg-Id`. The message ids are
//! what JetStream deduplicates by, so each format is written once, here.

use async_nats::HeaderMap;
use bytes::Bytes;
use herald_core::{
    event::Event,
    id::{EndpointId, TenantId},
};
use herald_proto::v1;
use prost::Message as _;

use crate::{JobLane, Outgoing, headers, topology::Topology};

/// Which publish of a delivery job this is: its `Nats-Msg-Id`.
#[derive(Clone, Copy, Debug)]
pub enum JobPublish<'a> {
    /// Fanout's one job per event and endpoint: `<event>:<endpoint>`.
    Live,
    /// A test delivery: its delivery id, new for every test.
    Test,
    /// A replay, recovery or redrive re-sending a delivery:
    /// `<recovery job>.<delivery>`, so a resumed job does not enqueue twice.
    Resend { recovery_job: &'a str },
}

/// The routing headers every message about an event carries.
fn event_headers(tenant: &str, event_id: &str, event_type: &str, message_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(headers::TENANT, tenant);
    headers.insert(headers::EVENT_ID, event_id);
    headers.insert(headers::EVENT_TYPE, event_type);
    headers.insert(headers::MESSAGE_TYPE, message_type);
    headers
}

impl Topology {
    /// An accepted event, deduplicated by its idempotency key.
    pub fn event_message(&self, event: &Event) -> Outgoing {
        Outgoing {
            subject: self.event_subject(event),
            message_id: event.idempotency_key.clone(),
            headers: event_headers(
                event.tenant_id.as_str(),
                event.id.as_str(),
                event.event_type.as_str(),
                "herald.v1.Event",
            ),
            payload: Bytes::from(v1::Event::from(event).encode_to_vec()),
        }
    }

    /// A delivery job for `endpoint`'s `lane`; the routing headers come from
    /// the job's event.
    pub fn job_message(
        &self,
        job: &v1::DeliveryJob,
        endpoint: &EndpointId,
        lane: JobLane,
        publish: JobPublish<'_>,
    ) -> Outgoing {
        let event = job.event.clone().unwrap_or_default();
        let mut headers = event_headers(
            &event.tenant_id,
            &event.id,
            &event.r#type,
            "herald.v1.DeliveryJob",
        );
        headers.insert(headers::ENDPOINT, endpoint.as_str());
        let message_id = match publish {
            JobPublish::Live => format!("{}:{endpoint}", event.id),
            JobPublish::Test => job.delivery_id.clone(),
            JobPublish::Resend { recovery_job } => format!("{recovery_job}.{}", job.delivery_id),
        };
        Outgoing {
            subject: self.job_subject(endpoint, lane),
            message_id,
            headers,
            payload: Bytes::from(job.encode_to_vec()),
        }
    }

    /// One attempt's record, deduplicated by the attempt id.
    pub fn attempt_message(
        &self,
        attempt: &v1::Attempt,
        tenant: &TenantId,
        endpoint: &EndpointId,
    ) -> Outgoing {
        let mut headers = event_headers(
            tenant.as_str(),
            &attempt.event_id,
            &attempt.event_type,
            "herald.v1.Attempt",
        );
        headers.insert(headers::ENDPOINT, endpoint.as_str());
        Outgoing {
            subject: self.attempt_subject(tenant, endpoint),
            message_id: attempt.id.clone(),
            headers,
            payload: Bytes::from(attempt.encode_to_vec()),
        }
    }

    /// A dead letter, deduplicated by the attempt that made it dead
    /// (`dead.<attempt>`); it replaces the delivery's older dead letter.
    pub fn dead_letter_message(
        &self,
        dead_letter: &v1::DeadLetter,
        tenant: &TenantId,
        endpoint: &EndpointId,
        delivery: &herald_core::id::DeliveryId,
        last_attempt: &str,
    ) -> Outgoing {
        let event = dead_letter.event.clone().unwrap_or_default();
        let mut headers = event_headers(
            tenant.as_str(),
            &event.id,
            &event.r#type,
            "herald.v1.DeadLetter",
        );
        headers.insert(headers::ENDPOINT, endpoint.as_str());
        Outgoing {
            subject: self.dead_letter_subject(tenant, endpoint, delivery),
            message_id: format!("dead.{last_attempt}"),
            headers,
            payload: Bytes::from(dead_letter.encode_to_vec()),
        }
    }
}

impl Outgoing {
    /// Continues the trace `from` carries (a redrive, a replay) instead of
    /// the current span's.
    #[must_use]
    pub fn continuing(mut self, from: Option<&HeaderMap>) -> Outgoing {
        headers::copy_trace_context(from, &mut self.headers);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{
        catalog::EventType,
        channel::Channel,
        event::parse_data,
        id::{AttemptId, DeliveryId, EventId},
    };
    use time::OffsetDateTime;

    fn event() -> Event {
        let now = OffsetDateTime::now_utc();
        Event {
            id: EventId::generate(),
            tenant_id: TenantId::generate(),
            channel: Channel::Internal,
            device_id: None,
            event_type: EventType::parse("message.received").unwrap(),
            occurred_at: now,
            received_at: now,
            source_ref: None,
            idempotency_key: "internal:key-1".to_owned(),
            data: parse_data(b"{}").unwrap(),
        }
    }

    fn header<'a>(message: &'a Outgoing, name: &str) -> &'a str {
        message.headers.get(name).map_or("", |value| value.as_str())
    }

    #[test]
    fn message_ids_keep_their_formats() {
        let topology = Topology::new("herald", 16).unwrap();
        let event = event();
        let endpoint = EndpointId::generate();
        let delivery = DeliveryId::for_event_endpoint(&event.id, &endpoint);
        assert_eq!(topology.event_message(&event).message_id, "internal:key-1");
        let job = v1::DeliveryJob {
            delivery_id: delivery.to_string(),
            event: Some(v1::Event::from(&event)),
            endpoint_id: endpoint.to_string(),
            ..v1::DeliveryJob::default()
        };
        let id = |publish| {
            topology
                .job_message(&job, &endpoint, JobLane::Pool, publish)
                .message_id
        };
        assert_eq!(id(JobPublish::Live), format!("{}:{endpoint}", event.id));
        assert_eq!(id(JobPublish::Test), delivery.to_string());
        assert_eq!(
            id(JobPublish::Resend {
                recovery_job: "rcv_1"
            }),
            format!("rcv_1.{delivery}")
        );
        let attempt = v1::Attempt {
            id: AttemptId::for_delivery(&delivery, 2).to_string(),
            event_id: event.id.to_string(),
            event_type: event.event_type.as_str().to_owned(),
            ..v1::Attempt::default()
        };
        assert_eq!(
            topology
                .attempt_message(&attempt, &event.tenant_id, &endpoint)
                .message_id,
            attempt.id
        );
        let dead_letter = v1::DeadLetter {
            event: job.event.clone(),
            ..v1::DeadLetter::default()
        };
        assert_eq!(
            topology
                .dead_letter_message(
                    &dead_letter,
                    &event.tenant_id,
                    &endpoint,
                    &delivery,
                    &attempt.id
                )
                .message_id,
            format!("dead.{}", attempt.id)
        );
    }

    #[test]
    fn every_job_carries_its_routing_headers() {
        let topology = Topology::new("herald", 16).unwrap();
        let event = event();
        let endpoint = EndpointId::generate();
        let job = v1::DeliveryJob {
            event: Some(v1::Event::from(&event)),
            test: true,
            ..v1::DeliveryJob::default()
        };
        let message = topology.job_message(&job, &endpoint, JobLane::Pool, JobPublish::Test);
        assert_eq!(header(&message, headers::TENANT), event.tenant_id.as_str());
        assert_eq!(header(&message, headers::EVENT_ID), event.id.as_str());
        assert_eq!(header(&message, headers::EVENT_TYPE), "message.received");
        assert_eq!(header(&message, headers::ENDPOINT), endpoint.as_str());
        assert_eq!(
            header(&message, headers::MESSAGE_TYPE),
            "herald.v1.DeliveryJob"
        );
    }
}
