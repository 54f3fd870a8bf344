//! Server-sent events: `GET /api/v1/events` streams the caller tenant's job
//! changes (`event: job`, the JSON of `GET /api/v1/jobs/{id}`) by polling the store.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{ApiError, ApiResult, AppState, caller, job_json};
use crate::auth::Action;
use crate::store::{Job, JobFilter};

/// How often a stream looks for changed jobs.
const TICK: Duration = Duration::from_millis(500);
/// How many of the tenant's newest jobs a stream watches.
const WATCHED: u64 = 500;
/// How often an idle stream sends a comment so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The events route, for the API's router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// What a job looks like to a watcher: when any of it changes, the job is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    updated_at: i64,
    state: &'static str,
    total: i64,
    succeeded: i64,
    failed: i64,
    progress_at: Option<i64>,
    fuel_used: i64,
}

impl Fingerprint {
    /// The fingerprint of a job row.
    pub fn of(job: &Job) -> Self {
        Fingerprint {
            updated_at: job.updated_at,
            state: job.state().as_str(),
            total: job.total,
            succeeded: job.succeeded,
            failed: job.failed,
            progress_at: job.progress_at,
            fuel_used: job.fuel_used,
        }
    }
}

/// The difference between two looks at a tenant's jobs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Jobs that are new or whose fingerprint changed, in the order of `now`.
    pub changed: Vec<String>,
    /// Jobs seen before and not now (deleted, or pushed out of the watched window).
    pub vanished: Vec<String>,
}

/// Compares the jobs seen at the last tick with the jobs seen now.
pub fn diff(before: &HashMap<String, Fingerprint>, now: &[(String, Fingerprint)]) -> Changes {
    let mut changes = Changes::default();
    for (id, print) in now {
        if before.get(id) != Some(print) {
            changes.changed.push(id.clone());
        }
    }
    let present: std::collections::HashSet<&String> = now.iter().map(|(id, _)| id).collect();
    let mut vanished: Vec<String> = before
        .keys()
        .filter(|id| !present.contains(id))
        .cloned()
        .collect();
    vanished.sort();
    changes.vanished = vanished;
    changes
}

/// One client's watch over a tenant's jobs.
struct Watch {
    app: AppState,
    tenant: String,
    seen: HashMap<String, Fingerprint>,
    queue: VecDeque<Event>,
    ticker: tokio::time::Interval,
    /// Ends the stream when the server is asked to stop (Ctrl-C), since a
    /// graceful shutdown waits for every open response.
    shutdown: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send + Sync>>,
}

impl Watch {
    /// The tenant's newest jobs, the window this watch follows.
    async fn look(&self) -> ApiResult<Vec<Job>> {
        let filter = JobFilter {
            tenant: Some(self.tenant.clone()),
            limit: WATCHED,
            ..JobFilter::default()
        };
        Ok(self.app.store.list_jobs(&filter).await?.0)
    }

    /// Queues an event per job changed since the last tick, and one per job deleted.
    async fn tick(&mut self) -> ApiResult<()> {
        let jobs = self.look().await?;
        let now: Vec<(String, Fingerprint)> = jobs
            .iter()
            .map(|j| (j.id.clone(), Fingerprint::of(j)))
            .collect();
        let changes = diff(&self.seen, &now);
        for job in jobs.iter().filter(|j| changes.changed.contains(&j.id)) {
            let counts = self.app.store.task_counts(job).await?;
            self.queue.push_back(
                Event::default()
                    .event("job")
                    .data(job_json(job, counts).to_string()),
            );
        }
        for id in &changes.vanished {
            // Out of the window is not deleted: only a job the store no longer has is.
            if self.app.store.get_job(id).await?.is_none() {
                self.queue.push_back(
                    Event::default()
                        .event("deleted")
                        .data(json!({ "id": id }).to_string()),
                );
            }
        }
        self.seen = now.into_iter().collect();
        Ok(())
    }

    /// The next event: waits for ticks until one has something to send.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            tokio::select! {
                _ = &mut self.shutdown => return None,
                _ = self.ticker.tick() => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = ?e, tenant = %self.tenant, "job events: reading the store failed");
            }
        }
    }
}

/// True if the request asks for `text/event-stream` by name (as EventSource
/// does): a client that takes anything (`*/*`) would wait for the end of an endless answer.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// `GET /api/v1/events`: a `text/event-stream` of the caller tenant's job
/// changes. It starts with `event: ready` (the client may load the job list
/// then), then sends `event: job` with a job's JSON (as `GET /api/v1/jobs/{id}`)
/// whenever one of the tenant's 500 newest jobs is created or changes, and
/// `event: deleted` with `{"id"}` when one is deleted. Changes are found by
/// reading the tenant's jobs every 500 ms and comparing each job's update
/// time, state and counts with the previous look. The request must send
/// `Accept: text/event-stream` (406 otherwise).
#[utoipa::path(get, path = "/api/v1/events", tag = "jobs", responses((status = 200, description = "text/event-stream: `ready`, then `job` (the job's JSON) and `deleted` (`{id}`) events", content_type = "text/event-stream", body = String), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 406, description = "No `Accept: text/event-stream`")))]
pub(crate) async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    if !accepts_event_stream(&headers) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            Some("Accept"),
            "this is an endless stream: send Accept: text/event-stream",
        ));
    }
    let mut watch = Watch {
        app,
        tenant: caller.tenant,
        seen: HashMap::new(),
        queue: VecDeque::new(),
        ticker: tokio::time::interval(TICK),
        shutdown: Box::pin(tokio::signal::ctrl_c()),
    };
    watch
        .ticker
        .set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first look is the baseline: the client reads the list itself after `ready`.
    watch.ticker.tick().await;
    watch.seen = watch
        .look()
        .await?
        .iter()
        .map(|j| (j.id.clone(), Fingerprint::of(j)))
        .collect();
    watch
        .queue
        .push_back(Event::default().event("ready").data("{}"));
    let stream = futures_util::stream::unfold(watch, Watch::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(updated_at: i64, succeeded: i64) -> Fingerprint {
        Fingerprint {
            updated_at,
            state: "Active",
            total: 10,
            succeeded,
            failed: 0,
            progress_at: None,
            fuel_used: 0,
        }
    }

    #[test]
    fn new_and_changed_jobs_are_sent_unchanged_ones_not() {
        let before: HashMap<String, Fingerprint> = [
            ("a".to_string(), print(1, 0)),
            ("b".to_string(), print(1, 0)),
        ]
        .into();
        let now = vec![
            ("c".to_string(), print(5, 0)),
            ("b".to_string(), print(1, 0)),
            ("a".to_string(), print(1, 1)),
        ];
        let changes = diff(&before, &now);
        assert_eq!(changes.changed, vec!["c".to_string(), "a".to_string()]);
        assert!(changes.vanished.is_empty());
    }

    #[test]
    fn a_change_within_the_same_millisecond_is_still_seen() {
        let before: HashMap<String, Fingerprint> = [("a".to_string(), print(7, 1))].into();
        let changes = diff(&before, &[("a".to_string(), print(7, 2))]);
        assert_eq!(changes.changed, vec!["a".to_string()]);
    }

    #[test]
    fn only_a_request_naming_the_event_stream_gets_it() {
        let with = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, accept.parse().unwrap());
            accepts_event_stream(&headers)
        };
        assert!(with("text/event-stream"));
        assert!(with("application/json, Text/Event-Stream;q=0.9"));
        assert!(!with("*/*"));
        assert!(!with("text/*"));
        assert!(!accepts_event_stream(&HeaderMap::new()));
    }

    #[test]
    fn jobs_no_longer_listed_have_vanished() {
        let before: HashMap<String, Fingerprint> = [
            ("b".to_string(), print(1, 0)),
            ("a".to_string(), print(1, 0)),
        ]
        .into();
        let changes = diff(&before, &[("a".to_string(), print(1, 0))]);
        assert_eq!(
            changes,
            Changes {
                changed: vec![],
                vanished: vec!["b".to_string()]
            }
        );
    }
}
