//! Times as the protocol carries them: milliseconds since the Unix epoch,
//! in UTC. Now, and days of the proleptic Gregorian calendar both ways
//! (Howard Hinnant's `days_from_civil` and `civil_from_days`), so the
//! dashboard's dates and the cli's `--before DAY` agree.

use std::time::{SystemTime, UNIX_EPOCH};

const DAY_MS: i64 = 86_400_000;

/// Now, in milliseconds since the Unix epoch (0 on a clock set before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Midnight UTC of a date, in milliseconds since the Unix epoch; the
/// caller checks that the date exists.
pub fn day_start_ms(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era - 719_468) * DAY_MS
}

/// The UTC date and time of `ms`, to the minute: "2026-12-06 23:04 UTC".
pub fn utc_minute(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60
    )
}

/// The date `days` after 1970-01-01.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `date -u -d @SECONDS` gives each of these.
    #[test]
    fn dates_match_the_unix_calendar() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(1_796_597_799_944), "2026-12-06 22:56 UTC");
        assert_eq!(utc_minute(-1), "1969-12-31 23:59 UTC");
        assert_eq!(utc_minute(1_796_193_780_000), "2026-12-02 06:43 UTC");
        assert_eq!(utc_minute(951_825_600_000), "2000-02-29 12:00 UTC");
        assert_eq!(day_start_ms(2000, 2, 29), 951_782_400_000);
        assert_eq!(day_start_ms(1970, 1, 1), 0);
    }

    #[test]
    fn every_day_of_four_centuries_goes_there_and_back() {
        for days in -73_000..73_000 {
            let (year, month, day) = civil(days);
            assert_eq!(day_start_ms(year, month, day), days * DAY_MS, "{days}");
        }
    }
}
