//! Readiness: `GET /readyz` answers 200 once the database answers, the initial plugin load
//! is done and the scheduler runs, else 503 naming what is not ready (`/healthz` is liveness).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::AppState;

/// How long the database may take to answer the readiness probe.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the host has finished starting; shared with `/readyz`.
#[derive(Debug, Default)]
pub struct Readiness {
    plugins_loaded: AtomicBool,
    scheduler: OnceLock<JoinHandle<()>>,
}

impl Readiness {
    /// Records that the plugin directory has been loaded once.
    pub fn plugins_loaded(&self) {
        self.plugins_loaded.store(true, Ordering::SeqCst);
    }

    /// Keeps the scheduler's task, to tell whether it still runs.
    pub fn scheduler_started(&self, task: JoinHandle<()>) {
        let _ = self.scheduler.set(task);
    }

    fn scheduler_check(&self) -> Result<(), String> {
        match self.scheduler.get() {
            None => Err("not started yet".into()),
            Some(task) if task.is_finished() => Err("the scheduler task has stopped".into()),
            Some(_) => Ok(()),
        }
    }

    fn plugins_check(&self) -> Result<(), String> {
        if self.plugins_loaded.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("the plugin directory is still being loaded".into())
        }
    }
}

/// The answer to a readiness probe from its named checks: 200 if all passed,
/// else 503 with `notReady` listing the failed ones.
pub fn verdict(checks: &[(&str, Result<(), String>)]) -> (StatusCode, Value) {
    let mut details = Map::new();
    let mut not_ready = Vec::new();
    for (name, outcome) in checks {
        let entry = match outcome {
            Ok(()) => json!({ "ok": true }),
            Err(reason) => {
                not_ready.push(*name);
                json!({ "ok": false, "error": reason })
            }
        };
        details.insert(name.to_string(), entry);
    }
    let ready = not_ready.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        json!({ "ready": ready, "notReady": not_ready, "checks": details }),
    )
}

/// The readiness route, to merge into the API's router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(readyz))
}

/// `GET /readyz` (no token, for probes).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200, description = "Ready: `{ready: true, notReady: [], checks: {database, plugins, scheduler}}`", body = serde_json::Value), (status = 503, description = "Not ready: `notReady` names the failed checks, `checks.NAME.error` says why", body = serde_json::Value)))]
async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = match tokio::time::timeout(
        DATABASE_TIMEOUT,
        sqlx::query("SELECT 1").fetch_one(app.store.pool()),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("the database does not answer: {e}")),
        Err(_) => Err(format!(
            "the database did not answer within {DATABASE_TIMEOUT:?}"
        )),
    };
    let (status, body) = verdict(&[
        ("database", database),
        ("plugins", app.readiness.plugins_check()),
        ("scheduler", app.readiness.scheduler_check()),
    ]);
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_checks_passing_is_ready() {
        let (status, body) = verdict(&[("database", Ok(())), ("plugins", Ok(()))]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ready"], true);
        assert_eq!(body["notReady"], json!([]));
        assert_eq!(body["checks"]["database"]["ok"], true);
    }

    #[test]
    fn a_failed_check_is_named_with_its_reason() {
        let (status, body) = verdict(&[
            ("database", Err("unable to open database file".into())),
            ("plugins", Ok(())),
        ]);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["ready"], false);
        assert_eq!(body["notReady"], json!(["database"]));
        assert_eq!(
            body["checks"]["database"]["error"],
            "unable to open database file"
        );
        assert_eq!(body["checks"]["plugins"]["ok"], true);
    }

    #[tokio::test]
    async fn a_stopped_or_missing_scheduler_is_not_ready() {
        let readiness = Readiness::default();
        assert!(readiness.scheduler_check().is_err());
        assert!(readiness.plugins_check().is_err());
        readiness.plugins_loaded();
        assert!(readiness.plugins_check().is_ok());
        let task = tokio::spawn(async {});
        while !task.is_finished() {
            tokio::task::yield_now().await;
        }
        readiness.scheduler_started(task);
        assert!(readiness.scheduler_check().is_err());
        let running = Readiness::default();
        running.scheduler_started(tokio::spawn(std::future::pending()));
        assert!(running.scheduler_check().is_ok());
    }
}
