//! An endpoint's transformation, run on a delivery before it is signed, so
//! the signature covers the bytes actually sent.

use herald_core::{
    endpoint::EndpointSettings,
    event::Event,
    id::DeliveryId,
    transform::{Input, Outcome, ScriptError, input_headers},
};
use herald_transform::Engine;

/// The body to send and what the program changed in the headers.
#[derive(Debug)]
pub(crate) struct Shaped {
    pub body: Vec<u8>,
    headers: Vec<(String, String)>,
    event_type: Option<String>,
}

/// Why a delivery is not sent after all.
#[derive(Debug)]
pub(crate) enum Unshaped {
    /// The program asked to skip it.
    Cancelled(String),
    /// The program failed: sending again would fail the same way.
    Failed(ScriptError),
}

/// `body` (the envelope) as the endpoint's program shapes it; unchanged
/// when the endpoint has none.
pub(crate) async fn shape(
    engine: &Engine,
    settings: &EndpointSettings,
    event: &Event,
    delivery_id: &DeliveryId,
    body: Vec<u8>,
) -> Result<Shaped, Unshaped> {
    let Some(program) = &settings.transformation else {
        return Ok(Shaped {
            body,
            headers: Vec::new(),
            event_type: None,
        });
    };
    let input = Input::new(
        &body,
        input_headers(event, delivery_id),
        settings.url.as_str(),
        event.event_type.as_str(),
    )
    .map_err(Unshaped::Failed)?;
    let now_millis =
        i64::try_from(event.occurred_at.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    match engine
        .run(program, &input, now_millis, &settings.scheme)
        .await
        .map_err(Unshaped::Failed)?
    {
        Outcome::Send(shaped) => Ok(Shaped {
            body: shaped.body,
            headers: shaped.headers,
            event_type: shaped.event_type,
        }),
        Outcome::Cancel { reason } => Err(Unshaped::Cancelled(match reason {
            Some(reason) => format!("cancelled by the endpoint's transformation: {reason}"),
            None => "cancelled by the endpoint's transformation".to_owned(),
        })),
    }
}

impl Shaped {
    /// Puts the program's event type name and headers into Herald's
    /// `headers` (which the program could not have set: the result's rules
    /// refuse Herald's own names).
    pub(crate) fn apply(self, headers: &mut Vec<(String, String)>) -> Vec<u8> {
        if let Some(event_type) = self.event_type {
            for (name, value) in headers.iter_mut() {
                if name.eq_ignore_ascii_case("X-Herald-Event") {
                    value.clone_from(&event_type);
                }
            }
        }
        headers.extend(self.headers);
        self.body
    }
}
