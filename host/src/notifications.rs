//! Notifications when a job ends: the dispatcher turns each job that reached a final state
//! into its inbox entry and pending webhook/email deliveries, and the sender delivers them with retries.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{AnyPool, Row};
use tokio::sync::Notify;

use crate::api::timestamp;
use crate::db::Db;
use crate::jobs::JobState;
use crate::mail::SmtpConfig;
use crate::messages::{self, JobEnded};
use crate::store::{Store, now_ms};
use crate::webhooks::{self, Outcome};

/// How notifications are sent.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The server's public base URL, for links in messages.
    pub public_url: Option<String>,
    /// The SMTP relay; None: no email.
    pub smtp: Option<SmtpConfig>,
    /// Retries of failed deliveries.
    pub retry: RetryPolicy,
    /// How often the dispatcher and the sender look for work without being woken.
    pub poll: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            public_url: None,
            smtp: None,
            retry: RetryPolicy::default(),
            poll: Duration::from_secs(5),
        }
    }
}

/// When a failed delivery is tried again, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt; it doubles after each one.
    pub base: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
    /// Attempts in all before a delivery is recorded as failed.
    pub attempts: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1 for the first):
    /// `base * 2^(attempt-1)`, at most `max_delay`.
    pub fn delay(&self, attempt: i64) -> Duration {
        let doublings = attempt.clamp(1, 63) as u32 - 1;
        self.base
            .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Wakes the dispatcher: a job has just reached a final state.
static JOB_ENDED: Notify = Notify::const_new();

/// Tells the dispatcher that a job has just ended (called where the state changes).
pub fn job_ended() {
    JOB_ENDED.notify_one();
}

/// Spawns the dispatcher and the sender.
pub fn start(store: Store, config: NotifyConfig) {
    let config = Arc::new(config);
    let queued = Arc::new(Notify::new());
    tokio::spawn(dispatch_loop(
        store.db().clone(),
        config.clone(),
        queued.clone(),
    ));
    tokio::spawn(send_loop(store.pool().clone(), config, queued));
}

async fn dispatch_loop(db: Db, config: Arc<NotifyConfig>, queued: Arc<Notify>) {
    loop {
        match dispatch(&db, &config).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(jobs = n, "job-ended notifications queued");
                queued.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "dispatching notifications failed; will retry"),
        }
        tokio::select! {
            _ = JOB_ENDED.notified() => {}
            _ = tokio::time::sleep(config.poll) => {}
        }
    }
}

/// A job that ended, as the messages need it.
#[derive(sqlx::FromRow)]
struct Ended {
    id: String,
    tenant: String,
    job_type: String,
    name: Option<String>,
    state: String,
    created_by: String,
    locale: Option<String>,
    submitter_email: Option<String>,
    total: i64,
    succeeded: i64,
    failed: i64,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
}

const UNNOTIFIED: &str =
    "state IN ('Complete', 'Failed', 'Cancelled') AND notified_at IS DISTINCT FROM completed_at";

/// Notifies every job that ended and is not notified yet, each in one
/// transaction (inbox entry, deliveries, mark); returns how many.
pub async fn dispatch(db: &Db, config: &NotifyConfig) -> Result<usize, sqlx::Error> {
    let mut count = 0;
    // The partial index holds only the jobs still to notify.
    let index = db.indexed_by("jobs_to_notify");
    loop {
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM jobs{index} WHERE {UNNOTIFIED} ORDER BY completed_at LIMIT 100"
        ))
        .fetch_all(db.pool())
        .await?;
        if ids.is_empty() {
            return Ok(count);
        }
        for id in &ids {
            if notify_job(db, config, id).await? {
                count += 1;
            }
        }
    }
}

/// Writes one ended job's notifications and marks it notified, at most once
/// per ending; false if it needed none (any more).
async fn notify_job(db: &Db, config: &NotifyConfig, id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let job: Option<Ended> = sqlx::query_as(&format!(
        "SELECT id, tenant, job_type, name, state, created_by, locale, submitter_email, total, succeeded, \
         failed, error, created_at, started_at, completed_at FROM jobs WHERE id = $1 AND {UNNOTIFIED}{}",
        db.for_update()
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(job) = job else {
        return Ok(false);
    };
    let state: JobState = job.state.parse().unwrap_or(JobState::Failed);
    let link = config
        .public_url
        .as_ref()
        .map(|u| format!("{}/api/v1/jobs/{}", u.trim_end_matches('/'), job.id));
    let message = messages::job_ended(
        &JobEnded {
            id: &job.id,
            name: job.name.as_deref(),
            job_type: &job.job_type,
            state,
            total: job.total,
            succeeded: job.succeeded,
            failed: job.failed,
            error: job.error.as_deref(),
            link: link.clone(),
        },
        job.locale.as_deref(),
    );
    let now = now_ms();
    sqlx::query(
        "INSERT INTO inbox (id, tenant, user_name, job_id, job_state, locale, subject, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&job.tenant)
    .bind(&job.created_by)
    .bind(&job.id)
    .bind(&job.state)
    .bind(message.locale)
    .bind(&message.subject)
    .bind(&message.body)
    .bind(now)
    .execute(&mut *tx)
    .await?;

    let hooks = sqlx::query("SELECT id, url, events FROM webhooks WHERE tenant = $1")
        .bind(&job.tenant)
        .fetch_all(&mut *tx)
        .await?;
    for hook in hooks {
        let events: Vec<String> =
            serde_json::from_str(&hook.get::<String, _>("events")).unwrap_or_default();
        if !events.iter().any(|e| e == "job.ended") {
            continue;
        }
        let delivery = uuid::Uuid::now_v7().to_string();
        let payload = json!({
            "event": "job.ended",
            "deliveryId": delivery,
            "createdAt": timestamp(Some(now)),
            "job": {
                "id": job.id,
                "name": job.name,
                "type": job.job_type,
                "tenant": job.tenant,
                "state": job.state,
                "createdBy": job.created_by,
                "counts": { "total": job.total, "succeeded": job.succeeded, "failed": job.failed },
                "createdAt": timestamp(Some(job.created_at)),
                "startedAt": timestamp(job.started_at),
                "completedAt": timestamp(job.completed_at),
                "error": job.error,
                "url": link,
            },
            "message": { "locale": message.locale, "subject": message.subject, "body": message.body },
        });
        insert_delivery(
            &mut tx,
            &Queued {
                id: &delivery,
                kind: "webhook",
                tenant: &job.tenant,
                webhook_id: Some(&hook.get::<String, _>("id")),
                recipient: &hook.get::<String, _>("url"),
                job_id: &job.id,
                subject: &message.subject,
                body: &payload.to_string(),
                now,
            },
        )
        .await?;
    }
    if config.smtp.is_some()
        && let Some(email) = &job.submitter_email
    {
        insert_delivery(
            &mut tx,
            &Queued {
                id: &uuid::Uuid::now_v7().to_string(),
                kind: "email",
                tenant: &job.tenant,
                webhook_id: None,
                recipient: email,
                job_id: &job.id,
                subject: &message.subject,
                body: &message.body,
                now,
            },
        )
        .await?;
    }
    sqlx::query("UPDATE jobs SET notified_at = completed_at WHERE id = $1")
        .bind(&job.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// A delivery to queue.
struct Queued<'a> {
    id: &'a str,
    kind: &'a str,
    tenant: &'a str,
    webhook_id: Option<&'a str>,
    recipient: &'a str,
    job_id: &'a str,
    subject: &'a str,
    body: &'a str,
    now: i64,
}

async fn insert_delivery(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: &Queued<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deliveries (id, kind, tenant, webhook_id, recipient, job_id, event, subject, body, \
         state, next_attempt, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'job.ended', $7, $8, 'pending', $9, $10)",
    )
    .bind(d.id)
    .bind(d.kind)
    .bind(d.tenant)
    .bind(d.webhook_id)
    .bind(d.recipient)
    .bind(d.job_id)
    .bind(d.subject)
    .bind(d.body)
    .bind(d.now)
    .bind(d.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A delivery due to be sent.
#[derive(sqlx::FromRow)]
struct Due {
    id: String,
    kind: String,
    webhook_id: Option<String>,
    recipient: String,
    event: String,
    subject: String,
    body: String,
    attempts: i64,
}

/// Which pending deliveries this server can send: email only with a relay.
fn sendable(config: &NotifyConfig) -> &'static str {
    if config.smtp.is_some() {
        "state = 'pending'"
    } else {
        "state = 'pending' AND kind = 'webhook'"
    }
}

async fn send_loop(pool: AnyPool, config: Arc<NotifyConfig>, queued: Arc<Notify>) {
    let client = reqwest::Client::new();
    loop {
        let wait = match send_due(&pool, &config, &client).await {
            Ok(Some(next)) => {
                Duration::from_millis((next - now_ms()).max(0) as u64).min(config.poll)
            }
            Ok(None) => config.poll,
            Err(e) => {
                tracing::warn!(error = %e, "sending notifications failed; will retry");
                config.poll
            }
        };
        tokio::select! {
            _ = queued.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
        }
    }
}

/// Sends the deliveries that are due, at once; returns when the next pending one is due.
async fn send_due(
    pool: &AnyPool,
    config: &Arc<NotifyConfig>,
    client: &reqwest::Client,
) -> Result<Option<i64>, sqlx::Error> {
    let due: Vec<Due> = sqlx::query_as(&format!(
        "SELECT id, kind, webhook_id, recipient, event, subject, body, attempts FROM deliveries \
         WHERE {} AND next_attempt <= $1 ORDER BY next_attempt LIMIT 32",
        sendable(config)
    ))
    .bind(now_ms())
    .fetch_all(pool)
    .await?;
    let mut sends = tokio::task::JoinSet::new();
    for d in due {
        let (pool, config, client) = (pool.clone(), config.clone(), client.clone());
        sends.spawn(async move {
            if let Err(e) = attempt(&pool, &config, &client, d).await {
                tracing::warn!(error = %e, "recording a delivery attempt failed");
            }
        });
    }
    while sends.join_next().await.is_some() {}
    sqlx::query_scalar(&format!(
        "SELECT min(next_attempt) FROM deliveries WHERE {}",
        sendable(config)
    ))
    .fetch_one(pool)
    .await
}

/// Makes one attempt at a delivery and records its outcome: delivered,
/// another attempt after the backoff, or failed for good.
async fn attempt(
    pool: &AnyPool,
    config: &NotifyConfig,
    client: &reqwest::Client,
    d: Due,
) -> Result<(), sqlx::Error> {
    let outcome = match (d.kind.as_str(), &config.smtp) {
        ("webhook", _) => {
            let secret: Option<String> =
                sqlx::query_scalar("SELECT secret FROM webhooks WHERE id = $1")
                    .bind(&d.webhook_id)
                    .fetch_optional(pool)
                    .await?;
            match secret {
                Some(secret) => {
                    webhooks::post(client, &d.recipient, &secret, &d.event, &d.id, &d.body).await
                }
                None => {
                    return finish(
                        pool,
                        &d.id,
                        "failed",
                        d.attempts,
                        None,
                        Some("the webhook was deleted"),
                    )
                    .await;
                }
            }
        }
        ("email", Some(smtp)) => {
            match crate::mail::send(smtp, &d.recipient, &d.subject, &d.body).await {
                Ok(()) => Outcome::Delivered(250),
                Err(error) => Outcome::Failed {
                    status: None,
                    error,
                },
            }
        }
        (kind, _) => {
            let error = format!("cannot send a delivery of kind {kind:?}");
            return finish(pool, &d.id, "failed", d.attempts, None, Some(&error)).await;
        }
    };
    let attempts = d.attempts + 1;
    match outcome {
        Outcome::Delivered(status) => {
            tracing::info!(delivery = %d.id, kind = %d.kind, to = %d.recipient, attempts, "notification delivered");
            finish(pool, &d.id, "delivered", attempts, Some(status), None).await
        }
        Outcome::Failed { status, error } if attempts >= config.retry.attempts => {
            tracing::warn!(delivery = %d.id, kind = %d.kind, to = %d.recipient, attempts, %error, "notification failed for good");
            finish(pool, &d.id, "failed", attempts, status, Some(&error)).await
        }
        Outcome::Failed { status, error } => {
            let next = now_ms() + config.retry.delay(attempts).as_millis() as i64;
            tracing::info!(delivery = %d.id, kind = %d.kind, to = %d.recipient, attempts, %error, "notification failed; will retry");
            sqlx::query(
                "UPDATE deliveries SET attempts = $1, next_attempt = $2, last_status = $3, last_error = $4 \
                 WHERE id = $5 AND state = 'pending'",
            )
            .bind(attempts)
            .bind(next)
            .bind(status.map(i64::from))
            .bind(&error)
            .bind(&d.id)
            .execute(pool)
            .await?;
            Ok(())
        }
    }
}

/// Records a delivery's last outcome.
async fn finish(
    pool: &AnyPool,
    id: &str,
    state: &str,
    attempts: i64,
    status: Option<u16>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET state = $1, attempts = $2, last_status = $3, last_error = $4, finished_at = $5 \
         WHERE id = $6 AND state = 'pending'",
    )
    .bind(state)
    .bind(attempts)
    .bind(status.map(i64::from))
    .bind(error)
    .bind(now_ms())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            attempts: 10,
        };
        let delays: Vec<u128> = (1..=7).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(policy.delay(1000), Duration::from_secs(5));
        assert_eq!(policy.delay(0), Duration::from_millis(200));
    }
}
