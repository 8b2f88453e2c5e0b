//! The page frame and the small pieces every page uses: status badges,
//! times, pagination, flash messages.

use herald_core::catalog::{EventType, alias};
use maud::{DOCTYPE, Markup, html};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::{assets, session::Session};

/// Which navigation item a page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    Webhooks,
    Devices,
    Logs,
    DeadLetters,
}

/// A one-line message shown at the top of the next page.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashKind {
    Success,
    Info,
    Warning,
}

impl Flash {
    pub fn success(text: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Success,
            text: text.into(),
        }
    }

    pub fn info(text: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Info,
            text: text.into(),
        }
    }

    pub fn warning(text: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Warning,
            text: text.into(),
        }
    }
}

fn logo() -> Markup {
    html! {
        svg class="logo" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true" focusable="false" {
            rect width="32" height="32" rx="8" fill="currentColor" {}
            path d="M9 22V10m0 6h14m0-6v12" stroke="#fff" stroke-width="3" stroke-linecap="round" fill="none" {}
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light";
            title { (title) " · Herald" }
            link rel="icon" href=(assets::path("logo.svg")) type="image/svg+xml";
            link rel="stylesheet" href=(assets::path("app.css"));
            script src=(assets::path("app.js")) defer {}
        }
    }
}

/// A signed-in page: the sidebar, the page head, an optional flash, `body`.
pub fn page(
    session: &Session,
    nav: Nav,
    title: &str,
    flash: Option<&Flash>,
    actions: Markup,
    body: Markup,
) -> Markup {
    let current = |item: Nav| if item == nav { Some("page") } else { None };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a class="skip-link" href="#main" { "Skip to content" }
                div class="shell" {
                    header class="sidebar" {
                        a class="brand" href="/console/" { (logo()) span { "Herald" } }
                        nav aria-label="Main" {
                            ul {
                                li { a href="/console/" aria-current=[current(Nav::Webhooks)] { "Webhooks" } }
                                li { a href="/console/devices" aria-current=[current(Nav::Devices)] { "Devices" } }
                                li { a href="/console/logs" aria-current=[current(Nav::Logs)] { "Logs" } }
                                li { a href="/console/dead-letters" aria-current=[current(Nav::DeadLetters)] { "Dead letters" } }
                            }
                        }
                        form class="sign-out" method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button class="button ghost small" type="submit" { "Sign out" }
                        }
                    }
                    main id="main" class="content" tabindex="-1" {
                        div class="page-head" {
                            h1 { (title) }
                            div class="page-actions" { (actions) }
                        }
                        @if let Some(flash) = flash { (flash_banner(flash)) }
                        (body)
                    }
                }
            }
        }
    }
}

pub fn flash_banner(flash: &Flash) -> Markup {
    let class = match flash.kind {
        FlashKind::Success => "flash success",
        FlashKind::Info => "flash info",
        FlashKind::Warning => "flash warning",
    };
    html! { div class=(class) role="status" { (flash.text) } }
}

/// A page outside the signed-in frame: sign-in, errors.
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body class="bare" {
                main id="main" class="bare-main" {
                    div class="bare-brand" { (logo()) span { "Herald" } }
                    (body)
                }
            }
        }
    }
}

pub fn error_page(title: &str, message: &str) -> Markup {
    bare_page(
        title,
        html! {
            section class="card narrow" {
                h1 { (title) }
                p { (message) }
                p { a class="button" href="/console/" { "Back to the console" } }
            }
        },
    )
}

/// A badge whose colour follows `tone`; the text always says it, so colour
/// is never the only signal.
pub fn badge(tone: &str, text: &str) -> Markup {
    html! { span class={ "badge " (tone) } { (text) } }
}

pub fn endpoint_status_badge(status: herald_proto::v1::EndpointStatus) -> Markup {
    use herald_proto::v1::EndpointStatus;
    match status {
        EndpointStatus::Active => badge("green", "Active"),
        EndpointStatus::Disabled => badge("gray", "Disabled"),
        EndpointStatus::Failing => badge("red", "Failing"),
        EndpointStatus::PendingTest | EndpointStatus::Unspecified => badge("amber", "Pending test"),
    }
}

pub fn attempt_status_badge(status: herald_proto::v1::AttemptStatus) -> Markup {
    use herald_proto::v1::AttemptStatus;
    match status {
        AttemptStatus::Succeeded => badge("green", "Succeeded"),
        AttemptStatus::Failed => badge("red", "Failed"),
        AttemptStatus::Retrying => badge("amber", "Retrying"),
        AttemptStatus::Dead => badge("red", "Dead"),
        AttemptStatus::Skipped => badge("gray", "Skipped"),
        AttemptStatus::Unspecified => badge("gray", "Unknown"),
    }
}

pub fn to_time(timestamp: Option<&prost_types::Timestamp>) -> Option<OffsetDateTime> {
    herald_proto::timestamp_from_wire("timestamp", timestamp.copied()).ok()
}

/// `2026-11-25 12:00:03 UTC`.
pub fn absolute(moment: OffsetDateTime) -> String {
    moment
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default()
}

/// "3 min ago", with the exact time for machines and on hover.
pub fn time_ago(timestamp: Option<&prost_types::Timestamp>) -> Markup {
    let Some(moment) = to_time(timestamp) else {
        return html! { span class="muted" { "—" } };
    };
    let seconds = (OffsetDateTime::now_utc() - moment).whole_seconds().max(0);
    let text = match seconds {
        0..=9 => "just now".to_owned(),
        10..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    };
    html! {
        time datetime=(moment.format(&Rfc3339).unwrap_or_default()) title=(absolute(moment)) { (text) }
    }
}

pub fn exact_time(timestamp: Option<&prost_types::Timestamp>) -> Markup {
    match to_time(timestamp) {
        Some(moment) => html! {
            time datetime=(moment.format(&Rfc3339).unwrap_or_default()) { (absolute(moment)) }
        },
        None => html! { span class="muted" { "—" } },
    }
}

pub fn duration_ms(duration: Option<&prost_types::Duration>) -> String {
    let Some(duration) = duration else {
        return "—".to_owned();
    };
    let millis = duration.seconds as f64 * 1000.0 + f64::from(duration.nanos) / 1e6;
    // Attempts keep microseconds: a local receiver answers in a fraction of one.
    if millis < 1.0 {
        format!("{millis:.2} ms")
    } else if millis < 10.0 {
        format!("{millis:.1} ms")
    } else if millis < 10_000.0 {
        format!("{millis:.0} ms")
    } else {
        format!("{:.1} s", millis / 1000.0)
    }
}

/// Keyset pages are walked forward with the server's token; the trail of
/// tokens that led here (dot-separated: tokens are base64url) makes
/// "Previous" work without server state or JavaScript.
#[derive(Clone, Debug, Default)]
pub struct Pager {
    pub page_token: String,
    pub trail: Vec<String>,
}

impl Pager {
    pub fn from_query(page: Option<&str>, trail: Option<&str>) -> Pager {
        Pager {
            page_token: page.unwrap_or_default().to_owned(),
            trail: trail
                .filter(|trail| !trail.is_empty())
                .map(|trail| trail.split('.').map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    pub fn number(&self) -> usize {
        if self.page_token.is_empty() {
            1
        } else {
            self.trail.len() + 2
        }
    }

    /// Pagination links, each keeping the `other` query parameters (filters).
    pub fn links(&self, base: &str, other: &[(&str, String)], next_page_token: &str) -> Markup {
        let query = |page: &str, trail: &[String]| {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in other {
                if !value.is_empty() {
                    serializer.append_pair(key, value);
                }
            }
            if !page.is_empty() {
                serializer.append_pair("page", page);
                if !trail.is_empty() {
                    serializer.append_pair("trail", &trail.join("."));
                }
            }
            let query = serializer.finish();
            if query.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{query}")
            }
        };
        let previous = (!self.page_token.is_empty()).then(|| match self.trail.split_last() {
            Some((last, rest)) => query(last, rest),
            None => query("", &[]),
        });
        let next = (!next_page_token.is_empty()).then(|| {
            let mut trail = self.trail.clone();
            if !self.page_token.is_empty() {
                trail.push(self.page_token.clone());
            }
            query(next_page_token, &trail)
        });
        html! {
            nav class="pager" aria-label="Pagination" {
                @if let Some(previous) = previous {
                    a class="button ghost small" href=(previous) rel="prev" { "← Previous" }
                } @else {
                    span class="button ghost small disabled" aria-disabled="true" { "← Previous" }
                }
                span class="pager-page" { "Page " (self.number()) }
                @if let Some(next) = next {
                    a class="button ghost small" href=(next) rel="next" { "Next →" }
                } @else {
                    span class="button ghost small disabled" aria-disabled="true" { "Next →" }
                }
            }
        }
    }
}

/// A copy button for the element `target` (shown only with JavaScript).
pub fn copy_button(target: &str) -> Markup {
    html! {
        button class="button small ghost copy" type="button" data-copy=(target) hidden { "Copy" }
    }
}

/// Channel names as people write them.
pub fn channel_label(channel: herald_proto::v1::Channel) -> &'static str {
    use herald_proto::v1::Channel;
    match channel {
        Channel::Whatsapp => "WhatsApp",
        Channel::Telegram => "Telegram",
        Channel::Waba => "WABA",
        _ => "Other",
    }
}

/// A channel's name in ids, classes and URLs.
pub fn channel_slug(channel: herald_proto::v1::Channel) -> &'static str {
    use herald_proto::v1::Channel;
    match channel {
        Channel::Whatsapp => "whatsapp",
        Channel::Telegram => "telegram",
        Channel::Waba => "waba",
        _ => "other",
    }
}

/// The name people know an event type by, shown beside its catalog name:
/// the catalog's label (see `herald_core::catalog`), an alias's target's
/// label for the WhatsApp channels, else the name in words.
pub fn event_label(name: &str) -> String {
    if let Some(entry) = EventType::catalog(name).and_then(|event_type| event_type.catalog_entry())
    {
        return entry.label.to_owned();
    }
    if let Some(target) = alias(name)
        .and_then(|alias| EventType::catalog(alias.target))
        .and_then(|event_type| event_type.catalog_entry())
    {
        return format!("WhatsApp: {}", target.label);
    }
    let words = name.replace(['.', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The channels whose devices produce `name`, when only some of the
/// messaging channels do (receipts: the WhatsApp gateway's acks and WABA's
/// statuses, never Telegram), as the core catalog says. `None`: any channel
/// (or an event published through the API, or Herald's own).
pub fn event_channels(name: &str) -> Option<Vec<herald_proto::v1::Channel>> {
    use herald_core::channel::Channel;
    const MESSAGING: [Channel; 3] = [Channel::Whatsapp, Channel::Telegram, Channel::Waba];
    let channels = EventType::catalog(name)
        .and_then(|event_type| event_type.catalog_entry())
        .map(|entry| entry.channels)
        .or_else(|| alias(name).map(|alias| alias.channels))?;
    let produced: Vec<Channel> = MESSAGING
        .into_iter()
        .filter(|channel| channels.contains(channel))
        .collect();
    if produced.is_empty() || produced.len() == MESSAGING.len() {
        return None;
    }
    Some(
        produced
            .into_iter()
            .map(herald_proto::v1::Channel::from)
            .collect(),
    )
}

pub fn empty_state(title: &str, text: Markup) -> Markup {
    html! {
        div class="empty" {
            p class="empty-title" { (title) }
            p { (text) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_have_human_labels() {
        assert_eq!(event_label("message.received"), "Incoming Message");
        assert_eq!(event_label("form.submitted"), "Submission");
        assert_eq!(event_label("message.read"), "Message status: read");
        assert_eq!(event_label("contact.opted_out"), "Contact opted out");
        assert_eq!(
            event_label("whatsapp.message.received"),
            "WhatsApp: Incoming Message"
        );
        assert_eq!(event_label("order.shipped"), "Order shipped");
        assert!(event_channels("message.received").is_none());
        assert!(event_channels("order.shipped").is_none());
        assert!(event_channels("endpoint.disabled").is_none());
        assert_eq!(
            event_channels("message.delivered").map(|channels| channels.len()),
            Some(2)
        );
        assert_eq!(
            event_channels("whatsapp.message.read"),
            Some(vec![
                herald_proto::v1::Channel::Whatsapp,
                herald_proto::v1::Channel::Waba
            ])
        );
    }

    #[test]
    fn hardening_19_durations_show_fractions_of_a_millisecond() {
        let duration = |nanos: u64| {
            prost_types::Duration::try_from(std::time::Duration::from_nanos(nanos)).unwrap()
        };
        assert_eq!(duration_ms(Some(&duration(250_000))), "0.25 ms");
        assert_eq!(duration_ms(Some(&duration(1_260_000))), "1.3 ms");
        assert_eq!(duration_ms(Some(&duration(42_000_000))), "42 ms");
        assert_eq!(duration_ms(None), "—");
    }
}
