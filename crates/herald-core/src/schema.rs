//! JSON Schemas for an event's `data`, and the validator that enforces them.
//!
//! Design decisions:
//! - A small, closed subset of JSON Schema (draft 2020-12 keywords): `type`,
//!   `properties`, `required`, `additionalProperties`, `items`, `enum`,
//!   `const`, `minimum`, `maximum`, `minLength`, `maxLength`, `minItems`,
//!   `maxItems`, plus the annotations `$schema`, `title`, `description`,
//!   `examples`, `default` and `$comment`, which are kept but never checked.
//!   Any other keyword is refused when the schema is registered rather than
//!   ignored: a customer who writes `pattern` would otherwise believe it is
//!   enforced. No `$ref`, so nothing is ever resolved or fetched and the
//!   validator stays free of I/O.
//! - A schema is checked once, when it is parsed into a [`DataSchema`]; code
//!   holding one only validates.
//! - A violation names the JSON path (`$.contact.tags[0]`) of the first
//!   value that breaks a rule, in document order of the schema's keywords,
//!   so the same payload always gets the same answer.
//! - Schema nesting is bounded ([`MAX_SCHEMA_DEPTH`]), which bounds the
//!   validator's recursion whatever the payload.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Largest schema accepted, in bytes of JSON text.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Deepest nesting of subschemas (`properties`, `items`,
/// `additionalProperties`) accepted.
pub const MAX_SCHEMA_DEPTH: usize = 32;

const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
];

/// Why a schema was refused. `path` is the JSON Pointer of the offending
/// keyword within the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Longer than [`MAX_SCHEMA_BYTES`].
    #[error("the schema is {length} bytes long, the limit is {MAX_SCHEMA_BYTES}")]
    TooLarge {
        /// Its length in bytes.
        length: usize,
    },
    /// Not JSON text.
    #[error("the schema is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not a schema Herald can enforce.
    #[error("the schema is invalid at {path:?}: {reason}")]
    Invalid {
        /// JSON Pointer of the keyword, `""` for the root.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The first value of a document that breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Violation {
    /// JSONPath of the value, `$` for the document itself.
    pub path: String,
    /// Which rule it breaks.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Object,
    Array,
    String,
    Number,
    Integer,
    Boolean,
    Null,
}

impl JsonType {
    fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "string" => JsonType::String,
            "number" => JsonType::Number,
            "integer" => JsonType::Integer,
            "boolean" => JsonType::Boolean,
            "null" => JsonType::Null,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Integer => "integer",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
        }
    }

    fn admits(self, value: &Value) -> bool {
        match (self, value) {
            (JsonType::Object, Value::Object(_))
            | (JsonType::Array, Value::Array(_))
            | (JsonType::String, Value::String(_))
            | (JsonType::Number, Value::Number(_))
            | (JsonType::Boolean, Value::Bool(_))
            | (JsonType::Null, Value::Null) => true,
            (JsonType::Integer, Value::Number(number)) => {
                number.is_i64()
                    || number.is_u64()
                    || number.as_f64().is_some_and(|float| float.fract() == 0.0)
            }
            _ => false,
        }
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Additional {
    Allowed,
    Forbidden,
    Schema(Box<Node>),
}

/// One (sub)schema, with every keyword already checked.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    types: Option<Vec<JsonType>>,
    properties: BTreeMap<String, Node>,
    required: Vec<String>,
    additional: Additional,
    items: Option<Box<Node>>,
    allowed: Option<Vec<Value>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
}

/// A checked schema for an event's `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSchema {
    root: Node,
    /// The schema as JSON, as served by the API.
    document: Value,
}

impl DataSchema {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<DataSchema, SchemaError> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(SchemaError::TooLarge { length: text.len() });
        }
        let document: Value =
            serde_json::from_str(text).map_err(|error| SchemaError::NotJson(error.to_string()))?;
        let root = node(&document, "", 0)?;
        Ok(DataSchema { root, document })
    }

    /// The schema as a JSON document.
    #[must_use]
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The first violation of the schema in `data`, if any.
    pub fn validate(&self, data: &Value) -> Result<(), Violation> {
        let mut path = String::from("$");
        check(&self.root, data, &mut path)
    }

    /// [`DataSchema::validate`] for JSON text; text that is not JSON is a
    /// violation at `$`.
    pub fn validate_text(&self, data: &str) -> Result<(), Violation> {
        let value: Value = serde_json::from_str(data).map_err(|error| Violation {
            path: "$".to_owned(),
            reason: format!("not JSON: {error}"),
        })?;
        self.validate(&value)
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn pointer(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn count(value: &Value, path: &str) -> Result<u64, SchemaError> {
    value
        .as_u64()
        .ok_or_else(|| invalid(path, "must be a non-negative integer"))
}

fn bound(value: &Value, path: &str) -> Result<f64, SchemaError> {
    value
        .as_f64()
        .filter(|bound| bound.is_finite())
        .ok_or_else(|| invalid(path, "must be a number"))
}

fn node(schema: &Value, path: &str, depth: usize) -> Result<Node, SchemaError> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(invalid(
            path,
            format!("subschemas nest deeper than {MAX_SCHEMA_DEPTH} levels"),
        ));
    }
    let Value::Object(keywords) = schema else {
        return Err(invalid(path, "a schema must be a JSON object"));
    };
    let mut node = Node {
        types: None,
        properties: BTreeMap::new(),
        required: Vec::new(),
        additional: Additional::Allowed,
        items: None,
        allowed: None,
        minimum: None,
        maximum: None,
        min_length: None,
        max_length: None,
        min_items: None,
        max_items: None,
    };
    for (keyword, value) in keywords {
        let at = pointer(path, keyword);
        match keyword.as_str() {
            "type" => node.types = Some(types(value, &at)?),
            "properties" => node.properties = properties(value, &at, depth)?,
            "required" => node.required = required(value, &at)?,
            "additionalProperties" => {
                node.additional = match value {
                    Value::Bool(true) => Additional::Allowed,
                    Value::Bool(false) => Additional::Forbidden,
                    other => Additional::Schema(Box::new(self::node(other, &at, depth + 1)?)),
                }
            }
            "items" => node.items = Some(Box::new(self::node(value, &at, depth + 1)?)),
            "enum" => {
                let values = value
                    .as_array()
                    .filter(|values| !values.is_empty())
                    .ok_or_else(|| invalid(&at, "must be a non-empty array"))?;
                node.allowed = Some(values.clone());
            }
            "const" => node.allowed = Some(vec![value.clone()]),
            "minimum" => node.minimum = Some(bound(value, &at)?),
            "maximum" => node.maximum = Some(bound(value, &at)?),
            "minLength" => node.min_length = Some(count(value, &at)?),
            "maxLength" => node.max_length = Some(count(value, &at)?),
            "minItems" => node.min_items = Some(count(value, &at)?),
            "maxItems" => node.max_items = Some(count(value, &at)?),
            annotation if ANNOTATIONS.contains(&annotation) => {}
            other => {
                return Err(invalid(
                    &at,
                    format!(
                        "keyword {other:?} is not supported; Herald enforces type, properties, \
                         required, additionalProperties, items, enum, const, minimum, maximum, \
                         minLength, maxLength, minItems and maxItems"
                    ),
                ));
            }
        }
    }
    Ok(node)
}

fn types(value: &Value, path: &str) -> Result<Vec<JsonType>, SchemaError> {
    let names: Vec<&Value> = match value {
        Value::Array(names) if !names.is_empty() => names.iter().collect(),
        Value::String(_) => vec![value],
        _ => {
            return Err(invalid(
                path,
                "must be a type name or a non-empty array of them",
            ));
        }
    };
    names
        .into_iter()
        .map(|name| {
            name.as_str().and_then(JsonType::parse).ok_or_else(|| {
                invalid(
                    path,
                    "types are object, array, string, number, integer, boolean and null",
                )
            })
        })
        .collect()
}

fn properties(
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<BTreeMap<String, Node>, SchemaError> {
    let Value::Object(properties) = value else {
        return Err(invalid(path, "must be an object of schemas"));
    };
    properties
        .iter()
        .map(|(name, schema)| Ok((name.clone(), node(schema, &pointer(path, name), depth + 1)?)))
        .collect()
}

fn required(value: &Value, path: &str) -> Result<Vec<String>, SchemaError> {
    value
        .as_array()
        .and_then(|names| {
            names
                .iter()
                .map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| invalid(path, "must be an array of property names"))
}

/// Appends `.key`, or `['key']` when the key is not a plain identifier.
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str("['");
        for character in key.chars() {
            if matches!(character, '\'' | '\\') {
                path.push('\\');
            }
            path.push(character);
        }
        path.push_str("']");
    }
}

fn violation(path: &str, reason: impl Into<String>) -> Violation {
    Violation {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn check(node: &Node, value: &Value, path: &mut String) -> Result<(), Violation> {
    if let Some(types) = &node.types
        && !types.iter().any(|kind| kind.admits(value))
    {
        let expected: Vec<&str> = types.iter().map(|kind| kind.name()).collect();
        return Err(violation(
            path,
            format!(
                "expected {}, found {}",
                expected.join(" or "),
                type_of(value)
            ),
        ));
    }
    if let Some(allowed) = &node.allowed
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(violation(
            path,
            format!("must be one of {}", listed.join(", ")),
        ));
    }
    match value {
        Value::Object(object) => check_object(node, object, path),
        Value::Array(items) => check_array(node, items, path),
        Value::String(text) => {
            let length = text.chars().count() as u64;
            if let Some(min) = node.min_length
                && length < min
            {
                return Err(violation(
                    path,
                    format!("must be at least {min} characters"),
                ));
            }
            if let Some(max) = node.max_length
                && length > max
            {
                return Err(violation(path, format!("must be at most {max} characters")));
            }
            Ok(())
        }
        Value::Number(number) => {
            // Without serde_json's arbitrary precision every number has an
            // f64 value.
            let number = number.as_f64().unwrap_or_default();
            if let Some(min) = node.minimum
                && number < min
            {
                return Err(violation(path, format!("must be at least {min}")));
            }
            if let Some(max) = node.maximum
                && number > max
            {
                return Err(violation(path, format!("must be at most {max}")));
            }
            Ok(())
        }
        Value::Bool(_) | Value::Null => Ok(()),
    }
}

fn check_object(
    node: &Node,
    object: &Map<String, Value>,
    path: &mut String,
) -> Result<(), Violation> {
    for name in &node.required {
        if !object.contains_key(name) {
            let mut at = path.clone();
            push_key(&mut at, name);
            return Err(violation(&at, "is required"));
        }
    }
    for (key, value) in object {
        let length = path.len();
        push_key(path, key);
        let outcome = match (node.properties.get(key), &node.additional) {
            (Some(property), _) => check(property, value, path),
            (None, Additional::Allowed) => Ok(()),
            (None, Additional::Forbidden) => Err(violation(path, "is not an allowed property")),
            (None, Additional::Schema(schema)) => check(schema, value, path),
        };
        outcome?;
        path.truncate(length);
    }
    Ok(())
}

fn check_array(node: &Node, items: &[Value], path: &mut String) -> Result<(), Violation> {
    let length = items.len() as u64;
    if let Some(min) = node.min_items
        && length < min
    {
        return Err(violation(path, format!("must have at least {min} items")));
    }
    if let Some(max) = node.max_items
        && length > max
    {
        return Err(violation(path, format!("must have at most {max} items")));
    }
    if let Some(schema) = &node.items {
        for (index, item) in items.iter().enumerate() {
            let length = path.len();
            let _ = write!(path, "[{index}]");
            check(schema, item, path)?;
            path.truncate(length);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn schema(value: Value) -> DataSchema {
        DataSchema::parse(&value.to_string()).unwrap()
    }

    fn path_of(schema: &DataSchema, value: Value) -> String {
        schema.validate(&value).unwrap_err().path
    }

    #[test]
    fn types_properties_and_required_are_enforced_with_the_path() {
        let contact = schema(json!({
            "type": "object",
            "required": ["contact"],
            "properties": {
                "contact": {
                    "type": "object",
                    "required": ["phone"],
                    "properties": {
                        "phone": {"type": "string", "minLength": 3, "maxLength": 20},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                        "odd key": {"type": "integer", "minimum": 0, "maximum": 10}
                    },
                    "additionalProperties": false
                },
                "kind": {"enum": ["text", "image"]}
            }
        }));
        assert!(
            contact
                .validate(&json!({"contact": {"phone": "+351"}, "kind": "text", "x": 1}))
                .is_ok()
        );
        let cases = [
            (json!([]), "$", "expected object, found array"),
            (json!({}), "$.contact", "is required"),
            (json!({"contact": {}}), "$.contact.phone", "is required"),
            (
                json!({"contact": {"phone": 351}}),
                "$.contact.phone",
                "expected string, found number",
            ),
            (
                json!({"contact": {"phone": "35"}}),
                "$.contact.phone",
                "at least 3",
            ),
            (
                json!({"contact": {"phone": "351", "tags": ["a", 2]}}),
                "$.contact.tags[1]",
                "expected string",
            ),
            (
                json!({"contact": {"phone": "351", "tags": ["a", "b", "c"]}}),
                "$.contact.tags",
                "at most 2 items",
            ),
            (
                json!({"contact": {"phone": "351", "odd key": 11}}),
                "$.contact['odd key']",
                "at most 10",
            ),
            (
                json!({"contact": {"phone": "351", "odd key": 1.5}}),
                "$.contact['odd key']",
                "expected integer",
            ),
            (
                json!({"contact": {"phone": "351", "name": "x"}}),
                "$.contact.name",
                "not an allowed property",
            ),
            (
                json!({"contact": {"phone": "351"}, "kind": "audio"}),
                "$.kind",
                "one of \"text\", \"image\"",
            ),
        ];
        for (value, path, reason) in cases {
            let violation = contact.validate(&value).unwrap_err();
            assert_eq!(violation.path, path, "{value}");
            assert!(
                violation.reason.contains(reason),
                "{value}: {violation} lacks {reason:?}"
            );
        }
    }

    #[test]
    fn additional_properties_may_be_a_schema_and_types_a_list() {
        let answers = schema(json!({
            "type": "object",
            "additionalProperties": {"type": ["string", "null"]}
        }));
        assert!(answers.validate(&json!({"a": "x", "b": null})).is_ok());
        assert_eq!(path_of(&answers, json!({"a": "x", "b": 1})), "$.b");
        let integer = schema(json!({"type": "integer"}));
        assert!(integer.validate(&json!(3.0)).is_ok());
        assert!(integer.validate(&json!(-7)).is_ok());
    }

    #[test]
    fn keys_that_are_not_identifiers_are_quoted_in_the_path() {
        let forbid = schema(json!({"type": "object", "additionalProperties": false}));
        assert_eq!(path_of(&forbid, json!({"it's": 1})), "$['it\\'s']");
        assert_eq!(path_of(&forbid, json!({"1a": 1})), "$['1a']");
        assert_eq!(path_of(&forbid, json!({"_a1": 1})), "$._a1");
    }

    #[test]
    fn schemas_herald_cannot_enforce_are_refused_naming_the_keyword() {
        let cases = [
            ("[]", "", "must be a JSON object"),
            (r#"{"type":"text"}"#, "/type", "types are"),
            (r#"{"type":[]}"#, "/type", "non-empty array"),
            (
                r#"{"pattern":"^a"}"#,
                "/pattern",
                "\"pattern\" is not supported",
            ),
            (
                r##"{"properties":{"a":{"$ref":"#/x"}}}"##,
                "/properties/a/$ref",
                "not supported",
            ),
            (
                r#"{"required":"a"}"#,
                "/required",
                "array of property names",
            ),
            (r#"{"maxLength":-1}"#, "/maxLength", "non-negative integer"),
            (r#"{"minimum":"1"}"#, "/minimum", "must be a number"),
            (r#"{"enum":[]}"#, "/enum", "non-empty array"),
            (r#"{"items":true}"#, "/items", "must be a JSON object"),
            (
                r#"{"properties":{"a/b":{"type":1}}}"#,
                "/properties/a~1b/type",
                "",
            ),
        ];
        for (text, path, reason) in cases {
            match DataSchema::parse(text).unwrap_err() {
                SchemaError::Invalid {
                    path: found,
                    reason: why,
                } => {
                    assert_eq!(found, path, "{text}");
                    assert!(why.contains(reason), "{text}: {why}");
                }
                other => panic!("{text}: {other}"),
            }
        }
        assert!(matches!(
            DataSchema::parse("{"),
            Err(SchemaError::NotJson(_))
        ));
        let deep = format!(
            "{}{{}}{}",
            r#"{"items":"#.repeat(MAX_SCHEMA_DEPTH + 1),
            "}".repeat(MAX_SCHEMA_DEPTH + 1)
        );
        assert!(matches!(
            DataSchema::parse(&deep),
            Err(SchemaError::Invalid { .. })
        ));
        let large = format!(r#"{{"description":"{}"}}"#, "x".repeat(MAX_SCHEMA_BYTES));
        assert!(matches!(
            DataSchema::parse(&large),
            Err(SchemaError::TooLarge { .. })
        ));
    }

    #[test]
    fn annotations_are_kept_and_not_checked() {
        let annotated = schema(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "T", "description": "D", "examples": [1], "default": 2, "$comment": "c"
        }));
        assert!(annotated.validate(&json!("anything")).is_ok());
        assert_eq!(annotated.document()["title"], "T");
    }

    /// A schema every field of `value` must satisfy exactly: its type, each
    /// property required, no others, every array item like the first.
    fn exact_schema(value: &Value) -> Value {
        match value {
            Value::Object(object) => json!({
                "type": "object",
                "required": object.keys().collect::<Vec<_>>(),
                "additionalProperties": false,
                "properties": object
                    .iter()
                    .map(|(key, value)| (key.clone(), exact_schema(value)))
                    .collect::<Map<String, Value>>(),
            }),
            Value::Array(items) => match items.first() {
                Some(first) if items.iter().all(|item| type_of(item) == type_of(first)) => {
                    json!({"type": "array", "items": {"type": type_of(first)}})
                }
                _ => json!({"type": "array"}),
            },
            other => json!({"type": type_of(other), "enum": [other]}),
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z ']{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z' ]{1,5}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_value_satisfies_its_own_exact_schema(value in json_value()) {
            let exact = schema(exact_schema(&value));
            prop_assert!(exact.validate(&value).is_ok());
        }

        #[test]
        fn an_extra_property_is_reported_at_its_path(value in json_value(), key in "[a-z]{1,4}") {
            let exact = schema(exact_schema(&value));
            if let Value::Object(mut object) = value {
                let extra = format!("zz{key}");
                object.insert(extra.clone(), Value::Null);
                let violation = exact.validate(&Value::Object(object)).unwrap_err();
                prop_assert_eq!(violation.path, format!("$.{extra}"));
            }
        }

        #[test]
        fn validation_never_panics(value in json_value(), other in json_value()) {
            let exact = schema(exact_schema(&value));
            let _ = exact.validate(&other);
            let _ = DataSchema::parse(&other.to_string());
        }
    }
}
