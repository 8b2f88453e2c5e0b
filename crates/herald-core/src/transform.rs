//! Transformations: an endpoint's program that reshapes each delivery, and
//! the rules around it that need no engine: the limits, the program's size,
//! the input it is given and what counts as a well-formed result.
//!
//! A program is JavaScript of the shape Svix and Convoy users know,
//! `function handler(webhook) { ...; return webhook; }`. It receives
//! `{"event": <envelope>, "headers": {...}, "url": "...", "eventType": "..."}`
//! and returns an object whose `event` is the body to send (any JSON),
//! `headers` the headers to add, `eventType` the event name the headers
//! carry, or `cancel: true` (with an optional `reason`) to skip the
//! delivery. The engine that runs it lives in `herald-transform`.

use std::{sync::Arc, time::Duration};

use serde_json::{Map, Value};

use crate::{
    digest::sha256,
    event::Event,
    excerpt::excerpt,
    id::DeliveryId,
    signing::{CustomHeaderError, SigningScheme, validate_custom_headers},
};

/// The largest program an endpoint may hold, in bytes of UTF-8.
pub const MAX_CODE_BYTES: usize = 64 * 1024;
/// CPU time one call may take (measured on the engine's own thread, which
/// runs nothing else while a program runs).
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(10);
/// The heap one program may use.
pub const DEFAULT_HEAP_LIMIT: usize = 16 * 1024 * 1024;
/// The largest body a program may return.
pub const MAX_OUTPUT_BODY_BYTES: usize = 1024 * 1024;
/// The longest event type name a program may set for the headers.
pub const MAX_EVENT_TYPE_LEN: usize = 128;
/// The longest cancel reason kept in the attempt record.
pub const MAX_REASON_CHARS: usize = 500;

/// How much a program may use per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub time: Duration,
    pub heap_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            time: DEFAULT_TIME_LIMIT,
            heap_bytes: DEFAULT_HEAP_LIMIT,
        }
    }
}

/// An endpoint's program, with the digest engines cache its compiled form
/// under (two endpoints with the same code share it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transformation {
    code: Arc<str>,
    digest: [u8; 32],
}

/// Why a program cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("is {bytes} bytes long; at most {MAX_CODE_BYTES} are allowed")]
    TooLong { bytes: usize },
}

impl Transformation {
    /// The endpoint's program; `None` when `code` is blank (no
    /// transformation).
    pub fn new(code: &str) -> Result<Option<Transformation>, CodeError> {
        if code.trim().is_empty() {
            return Ok(None);
        }
        if code.len() > MAX_CODE_BYTES {
            return Err(CodeError::TooLong { bytes: code.len() });
        }
        Ok(Some(Transformation {
            code: Arc::from(code),
            digest: sha256(code.as_bytes()),
        }))
    }

    #[must_use]
    pub fn code(&self) -> &str {
        &self.code
    }

    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// What kind of failure a [`ScriptError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptErrorKind {
    /// The program does not parse, or defines no `handler` function.
    Syntax,
    /// The program threw.
    Thrown,
    /// The call took longer than its time limit.
    TimeLimit,
    /// The program used more heap than its limit.
    MemoryLimit,
    /// The program returned something that cannot be sent.
    Malformed,
    /// The engine itself failed (it could not start a runtime).
    Engine,
}

impl ScriptErrorKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptErrorKind::Syntax => "syntax",
            ScriptErrorKind::Thrown => "thrown",
            ScriptErrorKind::TimeLimit => "time_limit",
            ScriptErrorKind::MemoryLimit => "memory_limit",
            ScriptErrorKind::Malformed => "malformed_result",
            ScriptErrorKind::Engine => "engine",
        }
    }
}

/// A program's failure, with where in the program it happened when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    pub kind: ScriptErrorKind,
    pub message: String,
    /// 1-based.
    pub line: Option<u32>,
    /// 1-based.
    pub column: Option<u32>,
}

impl ScriptError {
    #[must_use]
    pub fn new(kind: ScriptErrorKind, message: impl Into<String>) -> ScriptError {
        ScriptError {
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }

    fn malformed(message: impl Into<String>) -> ScriptError {
        ScriptError::new(ScriptErrorKind::Malformed, message)
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transformation failed ({}): {}",
            self.kind.as_str(),
            self.message
        )?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " at line {line}, column {column}"),
            (Some(line), None) => write!(f, " at line {line}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ScriptError {}

/// Where a stack trace or error message places `file`: the first
/// `file:line:column` (or `file:line`) in `text`.
#[must_use]
pub fn location_in(text: &str, file: &str) -> Option<(u32, Option<u32>)> {
    let pattern = format!("{file}:");
    let start = text.find(&pattern)?.checked_add(pattern.len())?;
    let rest = text.get(start..)?;
    let mut numbers = rest
        .split(|character: char| !character.is_ascii_digit())
        .take(2);
    let line = numbers.next()?.parse().ok()?;
    let line_digits = rest.chars().take_while(char::is_ascii_digit).count();
    let column = rest
        .get(line_digits..)
        .filter(|after| after.starts_with(':'))
        .and_then(|_| numbers.next())
        .and_then(|column| column.parse().ok());
    Some((line, column))
}

/// The headers a program sees: Herald's own that say what the delivery is.
/// Signatures are made after the program runs, and the endpoint's custom
/// headers may hold credentials, so neither is shown.
#[must_use]
pub fn input_headers(event: &Event, delivery_id: &DeliveryId) -> Vec<(String, String)> {
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("X-Herald-Event".to_owned(), event.event_type.to_string()),
    ];
    if let Some(device_id) = &event.device_id {
        headers.push(("X-Herald-Device".to_owned(), device_id.to_string()));
    }
    headers.push(("X-Idempotency-Key".to_owned(), delivery_id.to_string()));
    headers
}

/// What a program is given: the JSON text of its argument, and the headers
/// in it (a returned header equal to one of them is Herald's own, handed
/// back unchanged, and is not added again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    json: String,
    headers: Vec<(String, String)>,
}

impl Input {
    /// `envelope` is the body Herald would send, spliced in unchanged.
    ///
    /// # Errors
    /// When `envelope` is not JSON (Herald's envelope always is).
    pub fn new(
        envelope: &[u8],
        headers: Vec<(String, String)>,
        url: &str,
        event_type: &str,
    ) -> Result<Input, ScriptError> {
        let envelope = std::str::from_utf8(envelope)
            .ok()
            .and_then(|text| serde_json::from_str::<&serde_json::value::RawValue>(text).ok())
            .ok_or_else(|| ScriptError::new(ScriptErrorKind::Engine, "the event is not JSON"))?;
        let header_map: Map<String, Value> = headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        let json = serde_json::json!({
            "event": envelope,
            "headers": header_map,
            "url": url,
            "eventType": event_type,
        })
        .to_string();
        Ok(Input { json, headers })
    }

    #[must_use]
    pub fn json(&self) -> &str {
        &self.json
    }

    #[must_use]
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    fn gave(&self, name: &str, value: &str) -> bool {
        self.headers
            .iter()
            .any(|(given, given_value)| given.eq_ignore_ascii_case(name) && given_value == value)
    }
}

/// What a program decided for one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Send(Shaped),
    /// Skip this delivery.
    Cancel {
        reason: Option<String>,
    },
}

/// The delivery as the program shaped it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shaped {
    /// The JSON body to send.
    pub body: Vec<u8>,
    /// Headers to add; none of them is one Herald sets itself.
    pub headers: Vec<(String, String)>,
    /// The event type name the headers carry instead of the event's own.
    pub event_type: Option<String>,
}

/// Reads a program's result (the handler's return value as JSON) into what
/// to do. `scheme` is the endpoint's signing scheme, whose signature
/// header a program may not set; headers of `input` returned unchanged
/// are left out (Herald sends its own anyway).
///
/// # Errors
/// A [`ScriptErrorKind::Malformed`] error naming what is wrong.
pub fn interpret(
    result: Value,
    scheme: &SigningScheme,
    input: &Input,
) -> Result<Outcome, ScriptError> {
    let Value::Object(mut result) = result else {
        return Err(ScriptError::malformed(format!(
            "handler must return an object, not {}",
            kind_of(&result)
        )));
    };
    match result.remove("cancel") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            let reason = match result.remove("reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(reason)) => Some(excerpt_chars(&reason, MAX_REASON_CHARS)),
                Some(other) => {
                    return Err(ScriptError::malformed(format!(
                        "reason must be a string, not {}",
                        kind_of(&other)
                    )));
                }
            };
            return Ok(Outcome::Cancel { reason });
        }
        Some(other) => {
            return Err(ScriptError::malformed(format!(
                "cancel must be a boolean, not {}",
                kind_of(&other)
            )));
        }
    }
    let body = match result.remove("event") {
        None => {
            return Err(ScriptError::malformed(
                "the returned object has no event (the body to send)",
            ));
        }
        Some(event) => serde_json::to_vec(&event)
            .map_err(|error| ScriptError::malformed(format!("event is not JSON: {error}")))?,
    };
    if body.len() > MAX_OUTPUT_BODY_BYTES {
        return Err(ScriptError::malformed(format!(
            "event is {} bytes as JSON; at most {MAX_OUTPUT_BODY_BYTES} are allowed",
            body.len()
        )));
    }
    let headers = match result.remove("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(headers)) => headers
            .into_iter()
            .filter(|(name, value)| !value.as_str().is_some_and(|value| input.gave(name, value)))
            .map(|(name, value)| match value {
                Value::String(value) => Ok((name, value)),
                other => Err(ScriptError::malformed(format!(
                    "header {} must be a string, not {}",
                    excerpt(&name),
                    kind_of(&other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(ScriptError::malformed(format!(
                "headers must be an object of strings, not {}",
                kind_of(&other)
            )));
        }
    };
    validate_custom_headers(
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
        scheme,
    )
    .map_err(|error| ScriptError::malformed(header_refusal(&error)))?;
    let event_type = match result.remove("eventType") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            if name.is_empty()
                || name.len() > MAX_EVENT_TYPE_LEN
                || !name.bytes().all(|byte| byte.is_ascii_graphic())
            {
                return Err(ScriptError::malformed(format!(
                    "eventType {:?} must be 1 to {MAX_EVENT_TYPE_LEN} visible ASCII characters",
                    excerpt(&name)
                )));
            }
            Some(name)
        }
        Some(other) => {
            return Err(ScriptError::malformed(format!(
                "eventType must be a string, not {}",
                kind_of(&other)
            )));
        }
    };
    Ok(Outcome::Send(Shaped {
        body,
        headers,
        event_type,
    }))
}

fn header_refusal(error: &CustomHeaderError) -> String {
    format!("headers: {error}")
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn excerpt_chars(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn given() -> Input {
        Input::new(
            b"{}",
            vec![("X-Herald-Event".into(), "message.received".into())],
            "https://example.com/hook",
            "message.received",
        )
        .unwrap()
    }

    fn send(result: Value) -> Shaped {
        match interpret(result, &SigningScheme::Standard, &given()).unwrap() {
            Outcome::Send(shaped) => shaped,
            Outcome::Cancel { .. } => panic!("cancelled"),
        }
    }

    fn refusal(result: Value) -> String {
        let error = interpret(result, &SigningScheme::Standard, &given()).unwrap_err();
        assert_eq!(error.kind, ScriptErrorKind::Malformed);
        error.message
    }

    #[test]
    fn a_result_becomes_body_headers_and_event_type() {
        let shaped = send(json!({
            "event": {"a": [1, 2]},
            "headers": {"X-Custom": "yes"},
            "eventType": "whatsapp.message.received",
            "url": "ignored",
        }));
        assert_eq!(shaped.body, br#"{"a":[1,2]}"#);
        assert_eq!(shaped.headers, [("X-Custom".to_owned(), "yes".to_owned())]);
        assert_eq!(
            shaped.event_type.as_deref(),
            Some("whatsapp.message.received")
        );
        assert_eq!(send(json!({"event": "text"})).body, br#""text""#);
        assert_eq!(send(json!({"event": null, "cancel": false})).body, b"null");
        let unchanged =
            send(json!({"event": 1, "headers": {"x-herald-event": "message.received"}}));
        assert!(unchanged.headers.is_empty());
    }

    #[test]
    fn cancel_skips_with_its_reason() {
        assert_eq!(
            interpret(
                json!({"cancel": true, "reason": "not for us"}),
                &SigningScheme::Standard,
                &given()
            ),
            Ok(Outcome::Cancel {
                reason: Some("not for us".into())
            })
        );
        assert_eq!(
            interpret(json!({"cancel": true}), &SigningScheme::Standard, &given()),
            Ok(Outcome::Cancel { reason: None })
        );
    }

    #[test]
    fn malformed_results_say_what_is_wrong() {
        assert!(refusal(json!(3)).contains("object"));
        assert!(refusal(json!({})).contains("no event"));
        assert!(refusal(json!({"cancel": "yes"})).contains("cancel"));
        assert!(refusal(json!({"event": 1, "headers": [1]})).contains("headers"));
        assert!(refusal(json!({"event": 1, "headers": {"X-A": 1}})).contains("X-A"));
        assert!(
            refusal(json!({"event": 1, "headers": {"webhook-signature": "v1,x"}}))
                .contains("webhook-signature")
        );
        assert!(refusal(json!({"event": 1, "headers": {"X-A": "a\nb"}})).contains("X-A"));
        assert!(
            refusal(json!({"event": 1, "headers": {"X-Herald-Event": "forged"}}))
                .contains("X-Herald-Event")
        );
        assert!(refusal(json!({"event": 1, "eventType": ""})).contains("eventType"));
        assert!(refusal(json!({"event": 1, "eventType": 5})).contains("eventType"));
        let huge = "x".repeat(MAX_OUTPUT_BODY_BYTES);
        assert!(refusal(json!({"event": huge})).contains("bytes"));
        let sha = SigningScheme::parse("sha256-hex", Some("X-Sig")).unwrap();
        let error = interpret(
            json!({"event": 1, "headers": {"x-sig": "forged"}}),
            &sha,
            &given(),
        )
        .unwrap_err();
        assert!(error.message.contains("x-sig"), "{error}");
    }

    #[test]
    fn blank_code_is_no_transformation_and_long_code_is_refused() {
        assert_eq!(Transformation::new("  \n"), Ok(None));
        let code = "function handler(w) { return w; }";
        let program = Transformation::new(code).unwrap().unwrap();
        assert_eq!(program.code(), code);
        assert_eq!(program.digest(), sha256(code.as_bytes()));
        let long = "x".repeat(MAX_CODE_BYTES + 1);
        assert_eq!(
            Transformation::new(&long),
            Err(CodeError::TooLong {
                bytes: MAX_CODE_BYTES + 1
            })
        );
    }

    #[test]
    fn locations_are_read_from_stack_traces() {
        assert_eq!(
            location_in(
                "    at handler (transformation.js:3:11)\n",
                "transformation.js"
            ),
            Some((3, Some(11)))
        );
        assert_eq!(
            location_in("at transformation.js:7\n", "transformation.js"),
            Some((7, None))
        );
        assert_eq!(location_in("at <eval>:1:1", "transformation.js"), None);
    }

    #[test]
    fn the_input_holds_the_envelope_unchanged() {
        let input = Input::new(
            br#"{"id":"evt_1","data":{"n":12345678901234567890}}"#,
            vec![("X-Herald-Event".into(), "message.received".into())],
            "https://example.com/hook",
            "message.received",
        )
        .unwrap();
        let input = input.json();
        assert!(input.contains(r#""n":12345678901234567890"#), "{input}");
        let parsed: Value = serde_json::from_str(input).unwrap();
        assert_eq!(parsed["headers"]["X-Herald-Event"], "message.received");
        assert_eq!(parsed["url"], "https://example.com/hook");
        assert_eq!(parsed["eventType"], "message.received");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("event".to_owned()),
                        Just("headers".to_owned()),
                        Just("cancel".to_owned()),
                        Just("eventType".to_owned()),
                        Just("reason".to_owned()),
                        "[A-Za-z-]{1,10}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_result_is_an_outcome_or_a_malformed_error(result in json_value()) {
            match interpret(result, &SigningScheme::Standard, &given()) {
                Ok(Outcome::Send(shaped)) => {
                    prop_assert!(serde_json::from_slice::<Value>(&shaped.body).is_ok());
                    for (name, _) in &shaped.headers {
                        prop_assert!(!crate::signing::is_reserved_header_name(name));
                    }
                }
                Ok(Outcome::Cancel { .. }) => {}
                Err(error) => prop_assert_eq!(error.kind, ScriptErrorKind::Malformed),
            }
        }
    }
}
