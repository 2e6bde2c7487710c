//! `sweep cache`: what the result cache holds, and forgetting results so
//! that tasks with their keys train again (see `sweep_spec::result_key`).

use serde_json::json;
use sweep_proto::clock::{day_start_ms, now_ms};
use sweep_proto::{Forget, Results};

use crate::args::{CacheCommand, Endpoint, Format};
use crate::cluster::{connect, resolve};
use crate::output::{Listing, Print, ago};

pub async fn run(command: CacheCommand) -> anyhow::Result<()> {
    match command {
        CacheCommand::Stats { endpoint, output } => stats(&endpoint, output.format).await,
        CacheCommand::Forget {
            before,
            sweep,
            endpoint,
        } => {
            let client = connect(&endpoint).await?;
            let which = match (before, sweep) {
                (Some(day), _) => Forget::Before(parse_day(&day)?),
                (None, Some(sweep)) => Forget::Sweep(resolve(&client, &sweep).await?),
                (None, None) => anyhow::bail!("say which results: --before DATE or --sweep SWEEP"),
            };
            let forgotten = client.forget_results(which).await?;
            println!("forgot {forgotten} results; tasks with their keys train again");
            Ok(())
        }
    }
}

async fn stats(endpoint: &Endpoint, format: Format) -> anyhow::Result<()> {
    let stats = connect(endpoint).await?.cache_stats().await?;
    let now = now_ms();
    let when = |ms: Option<i64>| ms.map_or_else(String::new, |ms| ago(ms, now));
    let mut listing = Listing::new(&["results", "training", "cached_tasks", "oldest", "newest"]);
    listing.push(vec![
        json!(stats.results),
        json!(stats.training),
        json!(stats.cached_tasks),
        json!(when(stats.oldest)),
        json!(when(stats.newest)),
    ]);
    listing.print(format)
}

/// Midnight UTC of a day written `YYYY-MM-DD`, in ms since the epoch.
fn parse_day(text: &str) -> anyhow::Result<i64> {
    let wrong = || anyhow::anyhow!("--before {text:?}: expected a day as YYYY-MM-DD (UTC)");
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return Err(wrong());
    };
    let (year, month, day): (i64, u32, u32) = (
        year.parse().map_err(|_| wrong())?,
        month.parse().map_err(|_| wrong())?,
        day.parse().map_err(|_| wrong())?,
    );
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        2 if leap => 29,
        1..=12 => month_days[(month - 1) as usize],
        _ => return Err(wrong()),
    };
    if !(1970..=9999).contains(&year) || !(1..=days_in_month).contains(&day) {
        return Err(wrong());
    }
    Ok(day_start_ms(year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_its_midnight_in_utc() {
        assert_eq!(parse_day("1970-01-01").unwrap(), 0);
        assert_eq!(parse_day("2000-03-01").unwrap(), 951_868_800_000);
        assert_eq!(parse_day("2026-12-03").unwrap(), 1_796_256_000_000);
        assert_eq!(parse_day("2024-02-29").unwrap(), 1_709_164_800_000);
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-12",
            "yesterday",
            "2026-1-32",
        ] {
            let err = parse_day(bad).unwrap_err().to_string();
            assert!(err.contains("YYYY-MM-DD"), "{bad}: {err}");
        }
    }
}
