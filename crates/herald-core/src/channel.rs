//! The messaging channels events come from.
//!
//! A closed enum rather than a free string: the channel decides which ingest
//! adapter produced an event and appears verbatim in the envelope, so an
//! unknown channel is a bug to refuse at the boundary, not data to pass along.
//! `internal` marks events Herald emits itself (for example
//! `endpoint.disabled`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::excerpt::excerpt;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// WhatsApp through a device gateway session.
    Whatsapp,
    /// A Telegram bot.
    Telegram,
    /// The WhatsApp Business (Cloud) API.
    Waba,
    /// Herald itself.
    Internal,
}

/// A channel name that is not one of [`Channel::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {value:?}: expected one of whatsapp, telegram, waba, internal")]
pub struct ChannelError {
    /// Excerpt of the refused value.
    pub value: String,
}

impl Channel {
    /// Every channel, in declaration order.
    pub const ALL: [Channel; 4] = [
        Channel::Whatsapp,
        Channel::Telegram,
        Channel::Waba,
        Channel::Internal,
    ];

    /// The lowercase wire name, as used in envelopes, headers and storage.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Telegram => "telegram",
            Channel::Waba => "waba",
            Channel::Internal => "internal",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = ChannelError;

    /// Accepts exactly the lowercase wire names, matching serde.
    fn from_str(value: &str) -> Result<Self, ChannelError> {
        Channel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == value)
            .ok_or_else(|| ChannelError {
                value: excerpt(value),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_display_and_serde() {
        for channel in Channel::ALL {
            assert_eq!(channel.as_str().parse::<Channel>().unwrap(), channel);
            assert_eq!(channel.to_string(), channel.as_str());
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json, format!("\"{}\"", channel.as_str()));
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), channel);
        }
    }

    #[test]
    fn wire_names_are_fixed() {
        let names: Vec<&str> = Channel::ALL
            .iter()
            .map(|channel| channel.as_str())
            .collect();
        assert_eq!(names, ["whatsapp", "telegram", "waba", "internal"]);
    }

    #[test]
    fn unknown_and_differently_cased_names_are_refused() {
        for value in ["", "sms", "WhatsApp", "WABA", " waba", "waba "] {
            let error = value.parse::<Channel>().unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "unknown channel {value:?}: expected one of whatsapp, telegram, waba, internal"
                )
            );
        }
        assert!(serde_json::from_str::<Channel>("\"sms\"").is_err());
    }
}
