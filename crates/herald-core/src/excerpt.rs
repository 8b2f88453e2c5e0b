//! Bounded copies of outside input for error messages.
//!
//! Errors quote the value they refuse so that an operator can see what was sent,
//! but a refused value can be megabytes long (an oversized event type, a URL
//! pasted with a whole document behind it). Errors therefore keep at most
//! [`MAX_EXCERPT_CHARS`] characters of it.

/// How many characters of a refused value an error message keeps.
pub(crate) const MAX_EXCERPT_CHARS: usize = 120;

/// Returns `value` unchanged when it is short, otherwise its first
/// [`MAX_EXCERPT_CHARS`] characters followed by `...`.
pub(crate) fn excerpt(value: &str) -> String {
    match value.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept_whole() {
        assert_eq!(excerpt(""), "");
        assert_eq!(excerpt("message.received"), "message.received");
        let exactly_limit = "a".repeat(MAX_EXCERPT_CHARS);
        assert_eq!(excerpt(&exactly_limit), exactly_limit);
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_EXCERPT_CHARS + 10);
        let cut = excerpt(&long);
        assert!(cut.ends_with("..."));
        assert_eq!(cut.chars().count(), MAX_EXCERPT_CHARS + 3);
    }
}
