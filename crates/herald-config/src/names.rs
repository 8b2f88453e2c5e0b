//! The lowercase names enums are stored under: readable in the database,
//! and the same words the API documentation uses.

use herald_core::matching::EndpointStatus as CoreStatus;
use herald_proto::v1::{AttemptStatus, Channel, DeliveryTrigger, EndpointStatus, TokenScope};

/// A status's name as herald-core spells it; unspecified reads as pending.
pub fn endpoint_status(status: EndpointStatus) -> &'static str {
    CoreStatus::try_from(status)
        .unwrap_or(CoreStatus::PendingTest)
        .as_str()
}

/// Unknown names read as pending: such an endpoint waits for a test.
pub fn parse_endpoint_status(name: &str) -> EndpointStatus {
    name.parse::<CoreStatus>()
        .unwrap_or(CoreStatus::PendingTest)
        .into()
}

pub fn attempt_status(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Succeeded => "succeeded",
        AttemptStatus::Failed => "failed",
        AttemptStatus::Retrying => "retrying",
        AttemptStatus::Dead => "dead",
        AttemptStatus::Skipped => "skipped",
        AttemptStatus::Unspecified => "unspecified",
    }
}

pub fn parse_attempt_status(name: &str) -> AttemptStatus {
    match name {
        "succeeded" => AttemptStatus::Succeeded,
        "failed" => AttemptStatus::Failed,
        "retrying" => AttemptStatus::Retrying,
        "dead" => AttemptStatus::Dead,
        "skipped" => AttemptStatus::Skipped,
        _ => AttemptStatus::Unspecified,
    }
}

pub fn trigger(trigger: DeliveryTrigger) -> &'static str {
    match trigger {
        DeliveryTrigger::Live => "live",
        DeliveryTrigger::Test => "test",
        DeliveryTrigger::Replay => "replay",
        DeliveryTrigger::Redrive => "redrive",
        DeliveryTrigger::Recover => "recover",
        DeliveryTrigger::Unspecified => "unspecified",
    }
}

pub fn parse_trigger(name: &str) -> DeliveryTrigger {
    match name {
        "live" => DeliveryTrigger::Live,
        "test" => DeliveryTrigger::Test,
        "replay" => DeliveryTrigger::Replay,
        "redrive" => DeliveryTrigger::Redrive,
        "recover" => DeliveryTrigger::Recover,
        _ => DeliveryTrigger::Unspecified,
    }
}

pub fn token_scope(scope: TokenScope) -> &'static str {
    match scope {
        TokenScope::Publish => "publish",
        TokenScope::Read => "read",
        TokenScope::Tenant | TokenScope::Unspecified => "tenant",
    }
}

/// Unknown names fall back to the narrowest scope.
pub fn parse_token_scope(name: &str) -> TokenScope {
    match name {
        "tenant" => TokenScope::Tenant,
        "publish" => TokenScope::Publish,
        _ => TokenScope::Read,
    }
}

pub fn channel(channel: Channel) -> &'static str {
    match channel {
        Channel::Whatsapp => "whatsapp",
        Channel::Telegram => "telegram",
        Channel::Waba => "waba",
        Channel::Internal => "internal",
        Channel::Unspecified => "unspecified",
    }
}

pub fn parse_channel(name: &str) -> Channel {
    match name {
        "whatsapp" => Channel::Whatsapp,
        "telegram" => Channel::Telegram,
        "waba" => Channel::Waba,
        "internal" => Channel::Internal,
        _ => Channel::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in [
            EndpointStatus::PendingTest,
            EndpointStatus::Active,
            EndpointStatus::Disabled,
            EndpointStatus::Failing,
        ] {
            assert_eq!(parse_endpoint_status(endpoint_status(status)), status);
        }
        for status in [
            AttemptStatus::Succeeded,
            AttemptStatus::Failed,
            AttemptStatus::Retrying,
            AttemptStatus::Dead,
            AttemptStatus::Skipped,
        ] {
            assert_eq!(parse_attempt_status(attempt_status(status)), status);
        }
        for value in [
            DeliveryTrigger::Live,
            DeliveryTrigger::Test,
            DeliveryTrigger::Replay,
            DeliveryTrigger::Redrive,
            DeliveryTrigger::Recover,
        ] {
            assert_eq!(parse_trigger(trigger(value)), value);
        }
        for scope in [TokenScope::Tenant, TokenScope::Publish, TokenScope::Read] {
            assert_eq!(parse_token_scope(token_scope(scope)), scope);
        }
        for value in [
            Channel::Whatsapp,
            Channel::Telegram,
            Channel::Waba,
            Channel::Internal,
        ] {
            assert_eq!(parse_channel(channel(value)), value);
        }
    }
}
