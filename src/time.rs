//! Time: the millisecond timestamps the store keeps, RFC 3339 text for the API, time zones for
//! scheduled sends, and civil dates for the SMS codecs. Built on `jiff` (its time zone data comes
//! from the system's `/usr/share/zoneinfo`).

use jiff::{civil, tz, Timestamp};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    Timestamp::now().as_millisecond()
}

/// RFC 3339 UTC text of a millisecond timestamp, always with milliseconds:
/// `2026-12-06T09:00:00.000Z`. Out of jiff's range (beyond ±9999 years): the nearest end.
pub fn rfc3339(ms: Millis) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { Timestamp::MIN } else { Timestamp::MAX });
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parse a point in time: RFC 3339 with `Z` or an offset (`2026-01-02T03:04:05.5+01:00`), or a
/// civil time in a named zone (RFC 9557: `2026-01-02T09:00[Europe/London]`).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts.as_millisecond());
    }
    if s.ends_with(']') {
        if let Ok(z) = s.parse::<jiff::ZonedDateTime>() {
            return Some(z.timestamp().as_millisecond());
        }
    }
    None
}

/// The instant of a civil date and time at an offset from UTC in minutes (an SMS service
/// centre time stamp); `None` for a date or time that does not exist (outside bytes may say
/// month 13).
pub fn civil_to_ms(
    (year, month, day): (i16, i8, i8),
    (hour, minute, second): (i8, i8, i8),
    offset_minutes: i32,
) -> Option<Millis> {
    let dt = civil::DateTime::new(year, month, day, hour, minute, second, 0).ok()?;
    let offset = tz::Offset::from_seconds(offset_minutes.checked_mul(60)?).ok()?;
    Some(offset.to_timestamp(dt).ok()?.as_millisecond())
}

/// The UTC civil date and time of an instant: (year, month, day), (hour, minute, second).
pub fn utc_civil(ms: Millis) -> ((i16, i8, i8), (i8, i8, i8)) {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { Timestamp::MIN } else { Timestamp::MAX });
    let dt = tz::Offset::UTC.to_datetime(ts);
    ((dt.year(), dt.month(), dt.day()), (dt.hour(), dt.minute(), dt.second()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        let t = parse_rfc3339("2026-11-22T13:33:38.5+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-11-22T12:33:38.500Z");
        assert_eq!(parse_rfc3339("2026-11-22T12:33:38Z"), Some(t - 500));
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-11-22T12:33:38").is_none(), "a civil time needs a zone");
        let _ = rfc3339(i64::MAX);
        let _ = rfc3339(i64::MIN);
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        // London is UTC+0 in winter and UTC+1 in summer.
        let winter = parse_rfc3339("2026-01-15T09:00[Europe/London]").unwrap();
        assert_eq!(rfc3339(winter), "2026-01-15T09:00:00.000Z");
        let summer = parse_rfc3339("2026-07-15T09:00[Europe/London]").unwrap();
        assert_eq!(rfc3339(summer), "2026-07-15T08:00:00.000Z");
        assert!(parse_rfc3339("2026-07-15T09:00[Nowhere/Atlantis]").is_none());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_to_ms((1970, 1, 1), (0, 0, 0), 0), Some(0));
        assert_eq!(civil_to_ms((1970, 1, 1), (1, 0, 0), 60), Some(0));
        assert_eq!(civil_to_ms((2026, 13, 1), (0, 0, 0), 0), None);
        assert_eq!(civil_to_ms((2026, 2, 30), (0, 0, 0), 0), None);
        assert_eq!(utc_civil(0), ((1970, 1, 1), (0, 0, 0)));
        let t = civil_to_ms((2024, 2, 29), (23, 59, 59), 0).unwrap();
        assert_eq!(utc_civil(t), ((2024, 2, 29), (23, 59, 59)));
    }
}
