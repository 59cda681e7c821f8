//! Timestamps as berth stores and shows them.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, as stored: RFC 3339 UTC with milliseconds (`2026-01-20T10:00:00.000Z`).
pub fn now_rfc3339() -> String {
    to_rfc3339(Utc::now())
}

pub fn to_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored timestamp as Unix seconds (0 when unparsable).
pub fn unix_seconds(stored: &str) -> i64 {
    parse(stored).map_or(0, |t| t.timestamp())
}

pub fn parse(stored: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(stored)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A stored timestamp shown without milliseconds (`2026-01-20T10:00:00Z`), as seed 000 does.
pub fn to_seconds_precision(stored: &str) -> String {
    parse(stored).map_or_else(
        || stored.to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(unix_seconds("2024-01-15T08:00:00.000Z"), 1_705_305_600);
        assert_eq!(
            to_seconds_precision("2026-01-20T10:00:00.000Z"),
            "2026-01-20T10:00:00Z"
        );
        assert_eq!(unix_seconds("garbage"), 0);
    }
}
