//! Retention: removes finished jobs (their tasks and logs; reports stay in the
//! asset store) older than N days and beyond the newest M, on a cron schedule and on demand.

use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use thiserror::Error;

use crate::store::{Store, StoreError, now_ms};

/// How long finished jobs are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// When the purge runs (five-field cron, UTC), e.g. `0 3 * * *`.
    pub schedule: Cron,
    /// Finished jobs older than this many days go.
    pub max_age_days: u64,
    /// At most this many finished jobs stay (the most recently finished).
    pub max_finished: u64,
}

/// A schedule that is not a cron expression.
#[derive(Debug, Error)]
#[error("{0:?} is not a cron expression: {1}")]
pub struct BadSchedule(pub String, pub String);

/// Parses a five-field cron expression (minute hour day month weekday).
pub fn parse_schedule(text: &str) -> Result<Cron, BadSchedule> {
    Cron::from_str(text).map_err(|e| BadSchedule(text.to_string(), e.to_string()))
}

impl Retention {
    /// Purges once now; returns how many jobs were removed.
    pub async fn purge(&self, store: &Store) -> Result<u64, StoreError> {
        let cutoff = now_ms() - (self.max_age_days as i64) * 86_400_000;
        let removed = store.purge_finished(cutoff, self.max_finished).await?;
        if removed > 0 {
            tracing::info!(
                removed,
                max_age_days = self.max_age_days,
                max_finished = self.max_finished,
                "purged finished jobs"
            );
        }
        Ok(removed)
    }

    /// How long until the schedule next fires.
    pub fn until_next(&self) -> Option<Duration> {
        let now = chrono::Utc::now();
        let next = self.schedule.find_next_occurrence(&now, false).ok()?;
        (next - now).to_std().ok()
    }

    /// Purges on the schedule until the process ends.
    pub async fn run(self, store: Store) {
        while let Some(wait) = self.until_next() {
            tokio::time::sleep(wait).await;
            if let Err(e) = self.purge(&store).await {
                tracing::error!(error = %e, "scheduled purge failed");
            }
        }
        tracing::warn!("the purge schedule never fires again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_fire_in_the_future() {
        let retention = Retention {
            schedule: parse_schedule("0 3 * * *").unwrap(),
            max_age_days: 30,
            max_finished: 10,
        };
        let wait = retention.until_next().unwrap();
        assert!(wait <= Duration::from_secs(86_400), "{wait:?}");
        assert!(parse_schedule("every day").is_err());
        assert!(parse_schedule("61 * * * *").is_err());
    }
}
