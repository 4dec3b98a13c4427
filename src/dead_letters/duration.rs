//! Durations on the command line (`--older-than 2h`) and ages in listings (`2h05m`).

use std::time::Duration;

/// A duration argument that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {value:?}: expected a whole number followed by s, m, h or d \
     (e.g. 30s, 15m, 2h, 1d, or 1h30m)"
)]
pub struct DurationError {
    pub value: String,
}

/// Parses `30s`, `15m`, `2h`, `1d`, or several of them in a row (`1h30m`).
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError {
        value: value.to_owned(),
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for character in value.trim().chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit = match character {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let number: u64 = digits.parse().map_err(|_| invalid())?;
        let seconds = number.checked_mul(unit).ok_or_else(invalid)?;
        total = total.checked_add(seconds).ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() || value.trim().is_empty() {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// Formats an age with its two largest units: `45s`, `3m12s`, `2h05m`, `4d01h`.
pub fn format_age(age: Duration) -> String {
    let seconds = age.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{minutes}m{:02}s", seconds % 60)
    } else if seconds < 86_400 {
        format!("{hours}h{minutes:02}m")
    } else {
        format!("{days}d{hours:02}h")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn parse_combined() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn parse_rejects_bad_values() {
        for value in ["", "10", "h", "2x", "1.5h", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(value).is_err(), "{value:?} accepted");
        }
    }

    #[test]
    fn parse_error_names_value() {
        let error = parse_duration("2 weeks").unwrap_err().to_string();
        assert!(error.contains("\"2 weeks\""), "{error}");
    }

    #[test]
    fn age_formats() {
        assert_eq!(format_age(Duration::from_secs(45)), "45s");
        assert_eq!(format_age(Duration::from_secs(192)), "3m12s");
        assert_eq!(format_age(Duration::from_secs(2 * 3600 + 5 * 60)), "2h05m");
        assert_eq!(format_age(Duration::from_secs(4 * 86_400 + 3600)), "4d01h");
    }
}
