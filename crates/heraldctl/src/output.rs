//! Printing results: aligned tables for people, JSON or YAML for scripts.

use std::io::{IsTerminal, Write};

use herald_proto::json::to_readable_json;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{cli::Format, error::CtlError};

/// A table: column titles and rows of cells.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// Prints `messages` (of protobuf type `full_name`) as a table built by
/// `row`, or as a JSON/YAML array of the messages.
pub fn print_list<M: prost::Message>(
    format: Format,
    full_name: &str,
    columns: &[&'static str],
    messages: &[M],
    row: impl Fn(&M) -> Vec<String>,
) -> Result<(), CtlError> {
    match format {
        Format::Table => print_table(&Table {
            columns: columns.to_vec(),
            rows: messages.iter().map(row).collect(),
        }),
        Format::Json | Format::Yaml => {
            let values = messages
                .iter()
                .map(|message| {
                    to_readable_json(full_name, message)
                        .map_err(|error| CtlError::Output(error.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            print_value(format, &Value::Array(values))
        }
    }
}

/// Prints one message as a one-row table (the same columns a list of them
/// has), or as a JSON/YAML object.
pub fn print_single<M: prost::Message>(
    format: Format,
    full_name: &str,
    columns: &[&'static str],
    message: &M,
    row: impl Fn(&M) -> Vec<String>,
) -> Result<(), CtlError> {
    match format {
        Format::Table => print_table(&Table {
            columns: columns.to_vec(),
            rows: vec![row(message)],
        }),
        Format::Json | Format::Yaml => print_one(format, full_name, message),
    }
}

/// Prints one message: as `field: value` lines, or JSON/YAML. Enum values
/// are named as in tables (`pending_test`) in every format.
pub fn print_one<M: prost::Message>(
    format: Format,
    full_name: &str,
    message: &M,
) -> Result<(), CtlError> {
    let value = to_readable_json(full_name, message)
        .map_err(|error| CtlError::Output(error.to_string()))?;
    match format {
        Format::Table => print_value(Format::Yaml, &value),
        _ => print_value(format, &value),
    }
}

pub fn print_value(format: Format, value: &Value) -> Result<(), CtlError> {
    let text = match format {
        Format::Json | Format::Table => serde_json::to_string_pretty(value)
            .map_err(|error| CtlError::Output(error.to_string()))?,
        Format::Yaml => to_yaml(value),
    };
    write_out(&text)
}

fn write_out(text: &str) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", text.trim_end()).map_err(|error| CtlError::Output(error.to_string()))
}

pub fn print_table(table: &Table) -> Result<(), CtlError> {
    let mut widths: Vec<usize> = table
        .columns
        .iter()
        .map(|column| column.chars().count())
        .collect();
    for row in &table.rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(visible_width(cell));
            }
        }
    }
    let mut text = String::new();
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(index, cell)| {
                let padding = widths
                    .get(index)
                    .copied()
                    .unwrap_or_default()
                    .saturating_sub(visible_width(cell));
                format!("{cell}{}", " ".repeat(padding))
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    text.push_str(&line(
        table
            .columns
            .iter()
            .map(|column| column.to_string())
            .collect(),
    ));
    text.push('\n');
    for row in &table.rows {
        text.push_str(&line(row.clone()));
        text.push('\n');
    }
    write_out(&text)
}

/// Width without ANSI colour codes.
fn visible_width(cell: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for character in cell.chars() {
        match (in_escape, character) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// A status word, coloured when stdout is a terminal.
pub fn badge(text: &str) -> String {
    if !std::io::stdout().is_terminal() {
        return text.to_owned();
    }
    let colour = match text {
        "active" | "succeeded" => "32",
        "pending_test" | "retrying" | "running" => "33",
        "failing" | "failed" | "dead" => "31",
        _ => "90",
    };
    format!("\u{1b}[{colour}m{text}\u{1b}[0m")
}

/// A recovery job's progress as one terminal line: a bar of the work done
/// (enqueued or skipped) out of the total, then the counts.
pub fn progress_bar(enqueued: u64, skipped: u64, total: u64) -> String {
    const WIDTH: usize = 30;
    if total == 0 {
        return format!("[{}] counting…", " ".repeat(WIDTH));
    }
    let done = enqueued.saturating_add(skipped).min(total);
    let filled = usize::try_from(u128::from(done) * WIDTH as u128 / u128::from(total))
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    format!(
        "[{}{}] {enqueued}/{total} enqueued{skipped}",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled)
    )
}

/// `3m ago`, `in 2h`, or `-` when unset.
pub fn relative(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(timestamp) = timestamp else {
        return "-".into();
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let delta = now - timestamp.seconds;
    let (amount, future) = (delta.unsigned_abs(), delta < 0);
    let text = match amount {
        0..=59 => format!("{amount}s"),
        60..=3_599 => format!("{}m", amount / 60),
        3_600..=86_399 => format!("{}h", amount / 3_600),
        _ => format!("{}d", amount / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Minimal YAML for JSON values: block mappings and sequences, quoted
/// strings where YAML would misread them.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    write_yaml(value, 0, &mut out);
    out
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                match value {
                    Value::Object(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(value, indent + 2, out);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(value, indent, out);
                    }
                    scalar => out.push_str(&format!("{pad}{key}: {}\n", yaml_scalar(scalar))),
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        let mut nested = String::new();
                        write_yaml(item, indent + 2, &mut nested);
                        let nested = nested.trim_start();
                        out.push_str(&format!("{pad}- {nested}"));
                    }
                    scalar => out.push_str(&format!("{pad}- {}\n", yaml_scalar(scalar))),
                }
            }
        }
        scalar => out.push_str(&format!("{pad}{}\n", yaml_scalar(scalar))),
    }
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => serde_json::to_string(text).unwrap_or_default(),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_nests_mappings_and_sequences() {
        let yaml = to_yaml(
            &json!({"name": "Orders", "spec": {"events": ["a", "b"], "empty": []}, "n": 3}),
        );
        assert_eq!(
            yaml,
            "n: 3\nname: \"Orders\"\nspec:\n  empty: []\n  events:\n  - \"a\"\n  - \"b\"\n"
        );
        assert_eq!(to_yaml(&json!([{"a": 1, "b": 2}])), "- a: 1\n  b: 2\n");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert_eq!(relative(Some(&at(now - 90))), "1m ago");
        assert_eq!(relative(Some(&at(now + 7_200))), "in 2h");
        assert_eq!(relative(None), "-");
    }

    #[test]
    fn progress_fills_with_the_work_done() {
        assert_eq!(
            progress_bar(0, 0, 0),
            format!("[{}] counting…", " ".repeat(30))
        );
        assert_eq!(
            progress_bar(10, 5, 30),
            format!(
                "[{}{}] 10/30 enqueued, 5 skipped",
                "#".repeat(15),
                " ".repeat(15)
            )
        );
        assert_eq!(
            progress_bar(u64::MAX, 1, u64::MAX),
            format!(
                "[{}] {}/{} enqueued, 1 skipped",
                "#".repeat(30),
                u64::MAX,
                u64::MAX
            )
        );
    }

    #[test]
    fn colour_codes_do_not_count_towards_width() {
        assert_eq!(visible_width("\u{1b}[32mactive\u{1b}[0m"), 6);
    }
}
