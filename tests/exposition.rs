//! A strict parser of the OpenMetrics text format, what `/metrics` serves,
//! so tests read scrapes the way Prometheus does and a malformed exposition
//! fails the test instead of being skimmed.
//!
//! It checks what a scraper relies on: `# TYPE` before a family's samples,
//! each family declared once, sample names allowed by their family's type
//! (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms, `_info`
//! for info), label syntax and escaping, unique series, numeric values,
//! cumulative histogram buckets ending in `+Inf` equal to `_count`, and the
//! closing `# EOF`.

use std::collections::{BTreeMap, BTreeSet};

/// One series' value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A metric family: its type, help and samples in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricFamily {
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// A parsed exposition, by family name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    pub families: BTreeMap<String, MetricFamily>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut exposition = Exposition::default();
        let mut current: Option<String> = None;
        let mut series = BTreeSet::new();
        let mut ended = false;
        for (number, line) in text.lines().enumerate() {
            let at = |message: String| format!("line {}: {message}: {line:?}", number + 1);
            if ended {
                return Err(at("content after # EOF".to_owned()));
            }
            if line == "# EOF" {
                ended = true;
                continue;
            }
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                let (keyword, name, rest) = (parts.next(), parts.next(), parts.next());
                let (Some(keyword), Some(name)) = (keyword, name) else {
                    return Err(at("a comment needs a keyword and a name".to_owned()));
                };
                check_name(name).map_err(at)?;
                match keyword {
                    "TYPE" => {
                        let kind = rest.unwrap_or_default();
                        if !matches!(
                            kind,
                            "counter"
                                | "gauge"
                                | "histogram"
                                | "gaugehistogram"
                                | "summary"
                                | "info"
                                | "stateset"
                                | "unknown"
                        ) {
                            return Err(at(format!("unknown type {kind:?}")));
                        }
                        let family = exposition.families.entry(name.to_owned()).or_default();
                        if !family.kind.is_empty() {
                            return Err(at(format!("family {name} declared twice")));
                        }
                        family.kind = kind.to_owned();
                        current = Some(name.to_owned());
                    }
                    "HELP" => {
                        exposition.families.entry(name.to_owned()).or_default().help =
                            unescape(rest.unwrap_or_default()).map_err(at)?;
                    }
                    "UNIT" => {}
                    other => return Err(at(format!("unknown comment {other:?}"))),
                }
                continue;
            }
            let sample = parse_sample(line).map_err(at)?;
            let Some(family_name) = &current else {
                return Err(at("a sample before any # TYPE".to_owned()));
            };
            let family = exposition
                .families
                .get_mut(family_name)
                .ok_or_else(|| at("no current family".to_owned()))?;
            let suffix = sample
                .name
                .strip_prefix(family_name.as_str())
                .ok_or_else(|| at(format!("sample outside family {family_name}")))?;
            let allowed: &[&str] = match family.kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" | "gaugehistogram" => {
                    &["_bucket", "_sum", "_count", "_created", "_gcount", "_gsum"]
                }
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            if !allowed.contains(&suffix) {
                return Err(at(format!(
                    "{} is not a sample name of {} family {family_name}",
                    sample.name, family.kind
                )));
            }
            if !series.insert((sample.name.clone(), sample.labels.clone())) {
                return Err(at("repeated series".to_owned()));
            }
            family.samples.push(sample);
        }
        if !ended {
            return Err("the exposition does not end with # EOF".to_owned());
        }
        for (name, family) in &exposition.families {
            if family.kind.is_empty() {
                return Err(format!("family {name} has HELP but no TYPE"));
            }
            if family.kind == "histogram" {
                check_histogram(name, family)?;
            }
        }
        Ok(exposition)
    }

    /// The value of the series `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        self.families
            .values()
            .flat_map(|family| &family.samples)
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// The sum of every series named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.families
            .values()
            .flat_map(|family| &family.samples)
            .filter(|sample| {
                sample.name == name
                    && labels.iter().all(|(key, value)| {
                        sample.labels.get(*key).map(String::as_str) == Some(*value)
                    })
            })
            .map(|sample| sample.value)
            .sum()
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':');
    if valid_start && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "a sample needs a value".to_owned())?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inside)?;
        labels = parsed;
        rest = after;
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| "a single space must precede the value".to_owned())?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or_default())?;
    if let Some(timestamp) = fields.next() {
        parse_value(timestamp)?;
    }
    if fields.next().is_some() {
        return Err("trailing fields after the timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Labels after the `{`, and what follows the closing `}`.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let equals = text.find('=').ok_or("a label needs =")?;
        let key = &text[..equals];
        check_name(key)?;
        let mut value = String::new();
        let mut chars = text[equals + 1..]
            .strip_prefix('"')
            .ok_or("a label value must be quoted")?
            .char_indices();
        let end = loop {
            match chars.next() {
                Some((index, '"')) => break index,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("invalid escape in a label value".to_owned()),
                },
                Some((_, other)) => value.push(other),
                None => return Err("unterminated label value".to_owned()),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} repeated"));
        }
        // Past the opening quote, the value and the closing quote.
        text = &text[equals + 1 + 1 + end + 1..];
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        }
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("invalid number {text:?}")),
    }
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                _ => return Err("invalid escape in HELP".to_owned()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// A series' labels, without `le`.
type SeriesLabels = Vec<(String, String)>;

/// Buckets are cumulative and end in `+Inf`, which equals `_count`.
fn check_histogram(name: &str, family: &MetricFamily) -> Result<(), String> {
    // Per series: (upper bound, cumulative count) of each bucket.
    let mut by_series: BTreeMap<SeriesLabels, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for sample in &family.samples {
        let mut labels = sample.labels.clone();
        if sample.name.ends_with("_bucket") {
            let bound = labels
                .remove("le")
                .ok_or_else(|| format!("{name}: a bucket without le"))?;
            by_series
                .entry(labels.into_iter().collect())
                .or_default()
                .push((parse_value(&bound)?, sample.value));
        } else if sample.name.ends_with("_count") {
            counts.insert(labels.into_iter().collect::<SeriesLabels>(), sample.value);
        }
    }
    for (labels, buckets) in by_series {
        if buckets
            .windows(2)
            .any(|pair| pair[0].0 >= pair[1].0 || pair[0].1 > pair[1].1)
        {
            return Err(format!("{name}{labels:?}: buckets are not cumulative"));
        }
        let last = buckets.last().copied().unwrap_or_default();
        if last.0 != f64::INFINITY || Some(&last.1) != counts.get(&labels) {
            return Err(format!(
                "{name}{labels:?}: the +Inf bucket is not the count"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"# HELP herald_deliveries Delivery attempts recorded, by outcome.
# TYPE herald_deliveries counter
herald_deliveries_total{outcome="succeeded"} 3
herald_deliveries_total{outcome="failed"} 1
# HELP herald_ready 1 when ready.
# TYPE herald_ready gauge
herald_ready 1
# HELP herald_build Herald build information.
# TYPE herald_build info
herald_build_info{service="all",version="0.1.0"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_sum{route="/a/{id}"} 0.5
latency_seconds_count{route="/a/{id}"} 2
latency_seconds_bucket{le="0.1",route="/a/{id}"} 1
latency_seconds_bucket{le="1.0",route="/a/{id}"} 2
latency_seconds_bucket{le="+Inf",route="/a/{id}"} 2
# HELP quoted Escapes: \\ and \n.
# TYPE quoted gauge
quoted{text="a \"b\", c\\d\n"} -1.5e3
# EOF
"#;

    #[test]
    fn a_valid_exposition_parses() {
        let parsed = Exposition::parse(GOOD).unwrap();
        assert_eq!(
            parsed.value("herald_deliveries_total", &[("outcome", "succeeded")]),
            Some(3.0)
        );
        assert_eq!(parsed.sum("herald_deliveries_total", &[]), 4.0);
        assert_eq!(parsed.value("herald_ready", &[]), Some(1.0));
        assert_eq!(
            parsed.value("quoted", &[("text", "a \"b\", c\\d\n")]),
            Some(-1500.0)
        );
        assert_eq!(parsed.families["herald_deliveries"].kind, "counter");
        assert_eq!(parsed.families["quoted"].help, "Escapes: \\ and \n.");
        assert_eq!(parsed.families["latency_seconds"].samples.len(), 5);
    }

    #[test]
    fn malformed_expositions_are_refused() {
        let without_eof = GOOD.trim_end().trim_end_matches("# EOF");
        for (bad, why) in [
            (without_eof.to_owned(), "no EOF"),
            (
                GOOD.replace(
                    "herald_deliveries_total{outcome=\"failed\"}",
                    "herald_deliveries{outcome=\"failed\"}",
                ),
                "counter sample without _total",
            ),
            (
                GOOD.replace("# TYPE herald_ready gauge\n", ""),
                "sample before its TYPE",
            ),
            (
                GOOD.replace("herald_ready 1", "herald_ready one"),
                "not a number",
            ),
            (
                GOOD.replace("{outcome=\"failed\"}", "{outcome=failed}"),
                "unquoted label",
            ),
            (
                GOOD.replace("{outcome=\"failed\"}", "{outcome=\"succeeded\"}"),
                "repeated series",
            ),
            (
                GOOD.replace(
                    "le=\"1.0\",route=\"/a/{id}\"} 2",
                    "le=\"1.0\",route=\"/a/{id}\"} 0",
                ),
                "buckets not cumulative",
            ),
            (
                GOOD.replace(
                    "latency_seconds_count{route=\"/a/{id}\"} 2",
                    "latency_seconds_count{route=\"/a/{id}\"} 3",
                ),
                "+Inf is not the count",
            ),
            (format!("{GOOD}extra 1\n"), "content after EOF"),
            (
                GOOD.replace(
                    "# TYPE herald_ready gauge",
                    "# TYPE herald_ready gauge\n# TYPE herald_ready gauge",
                ),
                "declared twice",
            ),
            (GOOD.replace("quoted{text", "1quoted{text"), "invalid name"),
            (GOOD.replace("\\\"b\\\"", "\\qb"), "invalid escape"),
        ] {
            assert!(Exposition::parse(&bad).is_err(), "accepted: {why}");
        }
    }
}
