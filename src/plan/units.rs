//! Human-readable durations (`6h`, `1h30m`, `7d`) and sizes (`64MiB`, `2GB`).
//!
//! Plans are written by people, so objectives and limits are written the way people say
//! them. This module is the one place that text becomes a number, and the one place a
//! number becomes text again, so a diagnostic echoes a value in the form it was written.

use std::time::Duration;

/// Why a duration or size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?} is empty")]
    Empty(String),
    #[error("{0:?} has a number without a unit")]
    MissingUnit(String),
    #[error("{text:?} has an unknown unit {unit:?}")]
    UnknownUnit { text: String, unit: String },
    #[error("{0:?} does not start with a number")]
    MissingNumber(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

impl UnitError {
    /// What to write instead, for the `— fix` half of a diagnostic.
    pub fn duration_hint() -> &'static str {
        "write a number and a unit (s, m, h, d, w), e.g. \"30m\", \"6h\", \"7d\" or \"1h30m\""
    }

    /// What to write instead for a size.
    pub fn size_hint() -> &'static str {
        "write a number and a unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), e.g. \"64MiB\""
    }
}

const SECOND: u64 = 1;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;

fn duration_unit(unit: &str) -> Option<u64> {
    match unit {
        "s" | "sec" | "secs" => Some(SECOND),
        "m" | "min" | "mins" => Some(MINUTE),
        "h" | "hr" | "hrs" => Some(HOUR),
        "d" | "day" | "days" => Some(DAY),
        "w" | "week" | "weeks" => Some(WEEK),
        _ => None,
    }
}

fn size_unit(unit: &str) -> Option<u64> {
    match unit {
        "B" => Some(1),
        "KB" => Some(1_000),
        "MB" => Some(1_000_000),
        "GB" => Some(1_000_000_000),
        "TB" => Some(1_000_000_000_000),
        "KiB" => Some(1 << 10),
        "MiB" => Some(1 << 20),
        "GiB" => Some(1 << 30),
        "TiB" => Some(1 << 40),
        _ => None,
    }
}

/// Splits `"1h30m"` into `[(1, "h"), (30, "m")]`.
fn terms(text: &str) -> Result<Vec<(u64, &str)>, UnitError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(UnitError::Empty(text.to_string()));
    }
    let mut out = Vec::new();
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(UnitError::MissingNumber(text.to_string()));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| UnitError::Overflow(text.to_string()))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        if unit.is_empty() {
            return Err(UnitError::MissingUnit(text.to_string()));
        }
        out.push((number, unit));
        rest = &rest[unit_len..];
    }
    Ok(out)
}

fn sum(text: &str, unit_of: fn(&str) -> Option<u64>) -> Result<u64, UnitError> {
    let mut total: u64 = 0;
    for (number, unit) in terms(text)? {
        let scale = unit_of(unit).ok_or_else(|| UnitError::UnknownUnit {
            text: text.to_string(),
            unit: unit.to_string(),
        })?;
        total = number
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| UnitError::Overflow(text.to_string()))?;
    }
    Ok(total)
}

/// Parses `"6h"`, `"30m"`, `"7d"`, `"2w"`, `"45s"` or a sum such as `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    sum(text, duration_unit).map(Duration::from_secs)
}

/// Parses `"64MiB"`, `"2GB"`, `"512B"` (binary and decimal units) into bytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    sum(text, size_unit)
}

/// Renders a duration in days, hours, minutes and seconds, e.g. `30d`, `1d6h`, `30m`, `0s`.
/// Weeks are left out on purpose: `30d` reads better than `4w2d`.
pub fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (scale, unit) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s")] {
        if secs >= scale {
            out.push_str(&format!("{}{unit}", secs / scale));
            secs %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86400)));
    }

    #[test]
    fn duration_sums_terms_with_or_without_spaces() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn duration_rejects_missing_or_unknown_units() {
        assert_eq!(parse_duration("6"), Err(UnitError::MissingUnit("6".into())));
        assert!(matches!(parse_duration("6y"), Err(UnitError::UnknownUnit { .. })));
        assert_eq!(parse_duration(""), Err(UnitError::Empty("".into())));
        assert_eq!(parse_duration("h"), Err(UnitError::MissingNumber("h".into())));
        assert!(matches!(parse_duration("-1h"), Err(UnitError::MissingNumber(_))));
    }

    #[test]
    fn duration_overflow_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_duration("99999999999999999999w"),
            Err(UnitError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("999999999999999999w"),
            Err(UnitError::Overflow(_))
        ));
    }

    #[test]
    fn sizes_in_binary_and_decimal_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert!(matches!(parse_size("64mib"), Err(UnitError::UnknownUnit { .. })));
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        for text in ["0s", "45s", "30m", "6h", "1d6h", "30d", "8d1h1m1s"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
    }
}
