//! Recurring schedules: each has a cron expression (UTC) and a job submission;
//! on each tick the ticker checks the submission again and creates the job.

use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use tokio::sync::Notify;

use crate::plugins::Registry;
use crate::purge::parse_schedule;
use crate::store::{ScheduleRow, Store, StoreError, now_ms};
use crate::submission;

/// How often the ticker looks for due schedules.
const TICK: Duration = Duration::from_secs(1);

/// The first time after `after_ms` at which `cron` fires, in ms.
pub fn next_run(cron: &Cron, after_ms: i64) -> Option<i64> {
    let after = chrono::DateTime::from_timestamp_millis(after_ms)?;
    cron.find_next_occurrence(&after, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Creates the jobs of due schedules until the process ends.
pub async fn run(store: Store, registry: Arc<Registry>, wake: Arc<Notify>) {
    loop {
        if let Err(e) = tick(&store, &registry, &wake).await {
            tracing::error!(error = %e, "schedule tick failed");
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Creates one job for every schedule that is due now.
pub async fn tick(store: &Store, registry: &Registry, wake: &Notify) -> Result<usize, StoreError> {
    let now = now_ms();
    let mut created = 0;
    for schedule in store.list_schedules(None).await? {
        if schedule.next_run > now {
            continue;
        }
        let Some(next) = parse_schedule(&schedule.cron)
            .ok()
            .and_then(|c| next_run(&c, now))
        else {
            tracing::warn!(schedule = %schedule.id, cron = %schedule.cron, "schedule never fires again");
            continue;
        };
        // Claim the tick first, so one tick makes one job even with several tickers.
        if !store
            .advance_schedule(&schedule.id, schedule.next_run, next, None)
            .await?
        {
            continue;
        }
        match make_job(store, registry, &schedule).await? {
            Ok(id) => {
                store
                    .advance_schedule(&schedule.id, next, next, Some(&id))
                    .await?;
                created += 1;
                wake.notify_one();
            }
            Err(reason) => {
                tracing::warn!(schedule = %schedule.id, name = %schedule.name, %reason, "scheduled job not created");
            }
        }
    }
    Ok(created)
}

async fn make_job(
    store: &Store,
    registry: &Registry,
    schedule: &ScheduleRow,
) -> Result<Result<String, String>, StoreError> {
    let mut job = match submission::parse(
        schedule.template.as_bytes(),
        &schedule.tenant,
        &schedule.created_by,
        registry,
    ) {
        Ok(job) => job,
        Err(invalid) => return Ok(Err(invalid.to_string())),
    };
    job.schedule_id = Some(schedule.id.clone());
    job.name = None; // a name is unique per tenant; each run is a new job
    job.run_at = None;
    let job = store.insert_job(&job).await?;
    store
        .log(
            &job.id,
            "info",
            &format!(
                "created by schedule {:?} ({})",
                schedule.name, schedule.cron
            ),
        )
        .await?;
    Ok(Ok(job.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_follows_the_expression() {
        let every_minute = parse_schedule("* * * * *").unwrap();
        let at = 1_795_500_000_000; // 2026-11-23T...
        let next = next_run(&every_minute, at).unwrap();
        assert!(next > at && next - at <= 60_000, "{}", next - at);
        assert_eq!(next % 60_000, 0, "on a minute boundary");
        let hourly = parse_schedule("0 * * * *").unwrap();
        assert_eq!(next_run(&hourly, at).unwrap() % 3_600_000, 0);
        let every_two_seconds = parse_schedule("*/2 * * * * *").unwrap();
        assert_eq!(next_run(&every_two_seconds, at + 500).unwrap(), at + 2000);
    }
}
