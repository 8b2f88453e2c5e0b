//! What characters a configured text field (a name, a description, a reason,
//! a header value) may hold.
//!
//! Control characters are refused everywhere: PostgreSQL's text columns cannot
//! store NUL at all, and the others (ESC sequences, C1 controls such as NEL,
//! DEL) would be stored and then replayed into terminals, logs and pages that
//! show configuration. Only what a field explicitly permits gets through:
//! tabs in header values, line breaks and tabs in free-form descriptions.

use std::fmt;

/// Which whitespace controls a field permits; every other control character
/// is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Nothing: one line of text (names, ids, reasons).
    SingleLine,
    /// Horizontal tab, as HTTP field values allow.
    Tab,
    /// Tab, line feed and carriage return (browsers submit `\r\n`), for
    /// descriptions people write on several lines.
    MultiLine,
}

impl Permit {
    fn allows(self, character: char) -> bool {
        match self {
            Permit::SingleLine => false,
            Permit::Tab => character == '\t',
            Permit::MultiLine => matches!(character, '\t' | '\n' | '\r'),
        }
    }
}

/// A refused character, by its position so the message never echoes a
/// terminal escape back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must not contain control characters: {} at character {position}{}",
    CodePoint(*character),
    permitted_note(*permit)
)]
pub struct ControlCharacter {
    /// The refused character.
    pub character: char,
    /// Its 1-based position, in characters.
    pub position: usize,
    /// What the field permits.
    pub permit: Permit,
}

struct CodePoint(char);

impl fmt::Display for CodePoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "U+{:04X}", u32::from(self.0))
    }
}

fn permitted_note(permit: Permit) -> &'static str {
    match permit {
        Permit::SingleLine => "",
        Permit::Tab => " (only tabs are allowed)",
        Permit::MultiLine => " (only tabs and line breaks are allowed)",
    }
}

/// Whether `character` is a control character: C0 (U+0000 to U+001F), DEL
/// (U+007F) or C1 (U+0080 to U+009F), Unicode's `Cc` category.
#[must_use]
pub fn is_control(character: char) -> bool {
    character.is_control()
}

/// Refuses the first control character of `value` that `permit` does not
/// allow.
pub fn check(value: &str, permit: Permit) -> Result<(), ControlCharacter> {
    match value
        .chars()
        .enumerate()
        .find(|(_, character)| is_control(*character) && !permit.allows(*character))
    {
        Some((index, character)) => Err(ControlCharacter {
            character,
            position: index.saturating_add(1),
            permit,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_strings_are_refused_in_every_field_kind() {
        for hostile in [
            "a\u{0}b",
            "\u{1b}[31mred",
            "next\u{85}line",
            "del\u{7f}",
            "\u{7}",
            "\u{9b}2J",
            "\u{1f}",
        ] {
            for permit in [Permit::SingleLine, Permit::Tab, Permit::MultiLine] {
                assert!(check(hostile, permit).is_err(), "{hostile:?} {permit:?}");
            }
        }
    }

    #[test]
    fn only_what_a_field_permits_gets_through() {
        assert!(check("Orders — prod ✓", Permit::SingleLine).is_ok());
        assert!(check("a\tb", Permit::SingleLine).is_err());
        assert!(check("a\tb", Permit::Tab).is_ok());
        assert!(check("a\nb", Permit::Tab).is_err());
        assert!(check("line one\r\nline two\tend", Permit::MultiLine).is_ok());
    }

    #[test]
    fn the_message_names_the_code_point_not_the_character() {
        let error = check("ab\u{1b}[2J", Permit::SingleLine).unwrap_err();
        assert_eq!(error.position, 3);
        let message = error.to_string();
        assert!(message.contains("U+001B at character 3"), "{message}");
        assert!(!message.contains('\u{1b}'));
    }

    proptest! {
        #[test]
        fn accepted_text_has_no_control_but_the_permitted(value in any::<String>()) {
            match check(&value, Permit::MultiLine) {
                Ok(()) => prop_assert!(value
                    .chars()
                    .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))),
                Err(error) => {
                    prop_assert!(error.character.is_control());
                    prop_assert_eq!(value.chars().nth(error.position - 1), Some(error.character));
                }
            }
            if check(&value, Permit::SingleLine).is_ok() {
                prop_assert!(!value.contains('\0'));
                prop_assert!(check(&value, Permit::Tab).is_ok());
            }
        }
    }
}
