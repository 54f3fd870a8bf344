//! The compatibility facade: the paths and JSON field names of the widely used
//! asset-processing API (`/bin/guides/v1/assets/process...`) over wasmq's jobs.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{self, ApiError, ApiResult, AppState, Caller};
use crate::auth::Action;
use crate::jobs::{Event, JobState, transition};
use crate::store::{Job, JobFilter};
use crate::submission;

/// The facade's routes, to merge into the API's router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(process))
        .routes(routes!(status))
        .routes(routes!(logs))
        .routes(routes!(logs_download))
        .routes(routes!(cancel))
        .routes(routes!(resume))
        .routes(routes!(history))
}

/// The facade's five statuses for wasmq's twelve states.
pub fn status_of(state: JobState) -> &'static str {
    match state {
        JobState::New
        | JobState::Preparing
        | JobState::Suspended
        | JobState::Ready
        | JobState::Paused => "WAITING",
        JobState::Active | JobState::Pausing | JobState::Failing | JobState::Cancelling => {
            "RUNNING"
        }
        JobState::Complete => "SUCCESS",
        JobState::Failed => "FAILED",
        JobState::Cancelled => "CANCELLED",
    }
}

/// The facade's status object for a job.
async fn status_json(app: &AppState, job: &Job) -> ApiResult<Value> {
    let counts = app.store.task_counts(job).await?;
    let planned = !matches!(job.state(), JobState::New | JobState::Preparing);
    let full = api::job_json(job, counts);
    Ok(json!({
        "processingId": job.id,
        "path": job.path,
        "excludedPaths": full["excludedPaths"],
        "status": status_of(job.state()),
        "triggeredCount": counts.succeeded + counts.failed + counts.running,
        "startedAt": full["startedAt"],
        "completedAt": full["completedAt"],
        "hasLogs": app.store.log_count(&job.id).await? > 0,
        "createdBy": job.created_by,
        "type": job.job_type,
        "migrationSet": {
            "totalFiles": counts.total,
            "calculationStatus": if planned { "DONE" } else { "IN_PROGRESS" },
        },
        "eta": full["progress"]["eta"],
        "comments": job.comments,
        "restartable": transition(job.state(), Event::Restart).is_ok(),
        "resumable": transition(job.state(), Event::Resume).is_ok(),
        "cancellable": transition(job.state(), Event::Cancel).is_ok(),
    }))
}

/// The `processingId` of a request: the query parameter, or a JSON body field.
fn processing_id(query: &HashMap<String, String>, body: &[u8]) -> ApiResult<String> {
    if let Some(id) = query.get("processingId") {
        return Ok(id.clone());
    }
    let from_body = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("processingId")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    from_body.ok_or_else(|| ApiError::bad("processingId", "is required"))
}

async fn job_for(
    app: &AppState,
    headers: &HeaderMap,
    action: Action,
    id: &str,
) -> ApiResult<(Caller, Job)> {
    let caller = api::caller(app, headers, action).await?;
    let job = api::find_job(app, &caller, id).await?;
    Ok((caller, job))
}

/// `POST /bin/guides/v1/assets/process` `{path, excludedPaths, type}` -> `{processingId}`.
#[utoipa::path(post, path = "/bin/guides/v1/assets/process", tag = "processing API", request_body(content = serde_json::Value, description = "path, excludedPaths, type", content_type = "application/json"), responses((status = 202, description = "{processingId}", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn process(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = api::caller(&app, &headers, Action::Act).await?;
    api::require_json(&headers)?;
    let new_job = submission::parse(&body, &caller.tenant, &caller.user, &app.registry)?;
    let job = app.store.insert_job(&new_job).await?;
    app.store
        .log(
            &job.id,
            "info",
            &format!("submitted by {} through the processing API", caller.user),
        )
        .await?;
    app.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "processingId": job.id })),
    )
        .into_response())
}

#[utoipa::path(get, path = "/bin/guides/v1/assets/process/status", tag = "processing API", params(("processingId" = String, Query, description = "The job id")), responses((status = 200, description = "Status", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn status(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let id = processing_id(&query, b"")?;
    let (_, job) = job_for(&app, &headers, Action::Read, &id).await?;
    Ok(Json(status_json(&app, &job).await?))
}

#[utoipa::path(get, path = "/bin/guides/v1/assets/process/logs", tag = "processing API", params(("processingId" = String, Query, description = "The job id"), ("offset" = Option<u64>, Query, description = "Skip"), ("limit" = Option<u64>, Query, description = "1-10000"), ("tail" = Option<u64>, Query, description = "The last N lines")), responses((status = 200, description = "Log lines", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn logs(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let id = processing_id(&query, b"")?;
    let (_, job) = job_for(&app, &headers, Action::Read, &id).await?;
    let mut page = api::log_page(&app, &job.id, &query).await?;
    page["processingId"] = json!(job.id);
    Ok(Json(page))
}

#[utoipa::path(get, path = "/bin/guides/v1/assets/process/logs/download", tag = "processing API", params(("processingId" = String, Query, description = "The job id")), responses((status = 200, description = "The log in a ZIP", content_type = "application/zip"), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn logs_download(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id = processing_id(&query, b"")?;
    let (_, job) = job_for(&app, &headers, Action::Read, &id).await?;
    api::log_zip(&app, &job.id).await
}

async fn act(
    app: AppState,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
    event: Event,
) -> ApiResult<Json<Value>> {
    let id = processing_id(&query, &body)?;
    let (caller, job) = job_for(&app, &headers, Action::Act, &id).await?;
    app.store.apply(&job.id, event, "api").await?;
    let job = api::changed(
        &app,
        &caller,
        &job.id,
        &format!("{event:?} requested through the processing API"),
    )
    .await?;
    Ok(Json(status_json(&app, &job).await?))
}

#[utoipa::path(post, path = "/bin/guides/v1/assets/process/cancel", tag = "processing API", params(("processingId" = Option<String>, Query, description = "The job id, or in the body")), responses((status = 200, description = "Status", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job"), (status = 409, description = "Forbidden transition")))]
async fn cancel(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    act(app, headers, query, body, Event::Cancel).await
}

#[utoipa::path(post, path = "/bin/guides/v1/assets/process/resume", tag = "processing API", params(("processingId" = Option<String>, Query, description = "The job id, or in the body")), responses((status = 200, description = "Status", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job"), (status = 409, description = "Forbidden transition")))]
async fn resume(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    act(app, headers, query, body, Event::Resume).await
}

#[utoipa::path(get, path = "/bin/guides/v1/assets/process/history", tag = "processing API", params(("limit" = Option<u64>, Query, description = "1-1000")), responses((status = 200, description = "{executionHistory}", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn history(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let caller = api::caller(&app, &headers, Action::Read).await?;
    let filter = JobFilter {
        tenant: Some(caller.tenant),
        limit: api::int_param(&query, "limit", 10, 1, 1000)?,
        ..JobFilter::default()
    };
    let (jobs, _) = app.store.list_jobs(&filter).await?;
    let mut history = Vec::with_capacity(jobs.len());
    for job in &jobs {
        history.push(status_json(&app, job).await?);
    }
    Ok(Json(json!({ "executionHistory": history })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::ALL_STATES;

    #[test]
    fn every_state_has_one_of_the_five_statuses() {
        for state in ALL_STATES {
            assert!(
                ["WAITING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"]
                    .contains(&status_of(state))
            );
        }
        assert_eq!(status_of(JobState::Complete), "SUCCESS");
        assert_eq!(status_of(JobState::Cancelling), "RUNNING");
        assert_eq!(status_of(JobState::Paused), "WAITING");
    }
}
