//! How timestamps are stored: a BIGINT of microseconds since the Unix epoch,
//! on both backends.
//!
//! Integers order and compare identically on PostgreSQL and SQLite (SQLite
//! has no date type, and text timestamps only sort correctly when every
//! writer formats them identically), so `ORDER BY attempted_at` and range
//! filters behave the same everywhere. Precision is one microsecond, the
//! same as PostgreSQL's `timestamptz`: finer parts are truncated (towards
//! the past) on write, and records read back are in UTC.

use time::OffsetDateTime;

use crate::StoreError;

/// Microseconds since the epoch, truncated towards the past. Instants that
/// do not fit in an i64 (beyond ±292,000 years) saturate.
pub(crate) fn to_micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn to_micros_opt(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(to_micros)
}

/// Reads a stored timestamp back; a value `time` cannot represent is a
/// corrupt row.
pub(crate) fn from_micros(
    kind: &'static str,
    id: &str,
    column: &str,
    micros: i64,
) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|error| {
        StoreError::Corrupt {
            kind,
            id: id.to_owned(),
            detail: format!("{column} = {micros} is not a valid timestamp: {error}"),
        }
    })
}

pub(crate) fn from_micros_opt(
    kind: &'static str,
    id: &str,
    column: &str,
    micros: Option<i64>,
) -> Result<Option<OffsetDateTime>, StoreError> {
    micros
        .map(|micros| from_micros(kind, id, column, micros))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
            .expect("a valid instant");
        let micros = to_micros(at);
        assert_eq!(micros, 1_700_000_000_123_456);
        let back = from_micros("tenant", "t", "created_at", micros).expect("in range");
        assert_eq!(back.unix_timestamp_nanos(), 1_700_000_000_123_456_000);
    }

    #[test]
    fn instants_before_the_epoch_truncate_towards_the_past() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(-1_500).expect("a valid instant");
        assert_eq!(to_micros(at), -2);
    }

    #[test]
    fn out_of_range_values_are_corrupt_rows_not_panics() {
        let error = from_micros("attempt", "a1", "attempted_at", i64::MAX).unwrap_err();
        assert!(matches!(
            error,
            StoreError::Corrupt {
                kind: "attempt",
                ..
            }
        ));
        assert!(error.to_string().contains("attempted_at"), "{error}");
    }
}
