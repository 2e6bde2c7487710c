//! Durations as people write them: `"10m"`, `"2s"`, `"1h30m"`, `"250ms"`,
//! `"0s"`. One parser for the spec's fields and the binaries' flags.

use std::time::Duration;

/// Reads a duration: one or more whole numbers, each with a unit (`ms`, `s`,
/// `m`, `h`). The error says what was wrong with `text`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let wrong = |why: &str| format!("{text:?} is not a duration ({why}; e.g. \"10m\", \"2s\")");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(wrong("it is empty"));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(wrong("each part starts with a whole number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| wrong("a number is too large"))?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let one = match &rest[..unit] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "" => return Err(wrong("a number needs a unit: ms, s, m or h")),
            other => return Err(wrong(&format!("unknown unit {other:?}"))),
        };
        rest = &rest[unit..];
        let part = u32::try_from(number)
            .ok()
            .and_then(|n| one.checked_mul(n))
            .ok_or_else(|| wrong("it is too long"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| wrong("it is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "10", "m", "1.5h", "10 minutes", "-1s", "99999999999h"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
