//! The HTTP API (axum): submitting, reading and listing jobs, their tasks,
//! plugins and assets, with 4xx answers that name the offending field.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::assets::AssetRepo;
use crate::auth::{Action, Role};
use crate::jobs::{Event, JobState, transition};
use crate::paths;
use crate::plugins::Registry;
use crate::store::{Job, JobFilter, Store, StoreError, TaskCounts};
use crate::submission::{self, Invalid};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub assets: AssetRepo,
    pub registry: Arc<Registry>,
    /// Where uploaded plugins are written (the watched plugin directory).
    pub plugins_dir: std::path::PathBuf,
    /// Wakes the scheduler after a submission.
    pub wake: Arc<Notify>,
    /// Which submissions are answered synchronously.
    pub sync: Arc<SyncPolicy>,
    /// How long finished jobs are kept.
    pub retention: Arc<crate::purge::Retention>,
    /// What has finished starting, for `/readyz`.
    pub readiness: Arc<crate::health::Readiness>,
}

/// Small jobs run within their request: a job of a type whose threshold is N
/// (0 turns it off) that plans at most N items is answered 200 when it ends,
/// if it ends within `wait`; anything else is answered 202 at once.
#[derive(Debug, Clone)]
pub struct SyncPolicy {
    /// The threshold for job types not named in `per_type`.
    pub default: u64,
    /// Thresholds by job type.
    pub per_type: HashMap<String, u64>,
    /// How long a request waits for a small job at most.
    pub wait: Duration,
}

impl SyncPolicy {
    /// The threshold for `job_type`.
    pub fn threshold(&self, job_type: &str) -> u64 {
        self.per_type.get(job_type).copied().unwrap_or(self.default)
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(list_jobs, submit_job))
        .routes(routes!(get_job, patch_job, delete_job))
        .routes(routes!(control_job))
        .routes(routes!(list_tasks))
        .routes(routes!(job_logs))
        .routes(routes!(job_logs_download))
        .routes(routes!(job_report))
        .routes(routes!(history))
        .routes(routes!(list_plugins))
        .routes(routes!(put_plugin, delete_plugin))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(list_tenants))
        .routes(routes!(put_tenant))
        .routes(routes!(delete_token))
        .routes(routes!(purge_now))
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(delete_schedule))
        .routes(routes!(list_assets))
        .merge(crate::facade::routes())
        .merge(crate::health::routes())
        .merge(crate::metrics::routes())
        .merge(crate::inbox::routes())
        .merge(crate::webhooks::routes())
        .merge(crate::events::routes())
        .split_for_parts();
    let spec = Arc::new(openapi);
    router
        .merge(crate::asset_routes::routes())
        .merge(crate::ui::routes())
        .route(
            "/openapi.json",
            get(move || async move { Json(spec.as_ref().clone()) }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, None, "no such endpoint") })
        .with_state(state)
}

/// The OpenAPI document's fixed parts; the paths come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "wasmq", description = "A job runtime for bulk asset operations whose job types are WebAssembly components"),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the bearer-token scheme every route but `/healthz` requires.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
    }
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "The server is up")))]
async fn healthz() -> &'static str {
    "ok"
}

/// An error answer: `{"error": {"field": ..., "message": ...}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
    /// The job's current state, for a 409 on a forbidden transition.
    state: Option<JobState>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            field: field.map(str::to_string),
            message: message.into(),
            state: None,
        }
    }

    pub(crate) fn bad(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %message, "internal error in a request");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "field": self.field, "message": self.message });
        if let Some(state) = self.state {
            error["state"] = json!(state.as_str());
        }
        let body = json!({ "error": error });
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            let retry = [(axum::http::header::RETRY_AFTER, "1")];
            return (self.status, retry, Json(body)).into_response();
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.field.as_deref(), e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken(name) => ApiError::new(
                StatusCode::CONFLICT,
                Some("name"),
                format!("this tenant already has a job named {name:?}"),
            ),
            StoreError::NoJob(id) => {
                ApiError::new(StatusCode::NOT_FOUND, Some("id"), format!("no job {id:?}"))
            }
            StoreError::Forbidden(f) => ApiError {
                state: Some(f.from),
                ..ApiError::new(StatusCode::CONFLICT, None, f.to_string())
            },
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "database unavailable in a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    format!("the database is unavailable; try again: {other}"),
                )
            }
            other => {
                tracing::error!(error = %other, "store error in a request");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, other.to_string())
            }
        }
    }
}

impl From<crate::assets::AssetError> for ApiError {
    fn from(e: crate::assets::AssetError) -> Self {
        use crate::assets::AssetError;
        match e {
            AssetError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, Some("path"), e.to_string())
            }
            AssetError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, Some("path"), e.to_string())
            }
            AssetError::BadValue { .. } => ApiError::bad("metadata", e.to_string()),
            AssetError::BadRenditionName(_) => ApiError::bad("rendition", e.to_string()),
            _ => {
                tracing::error!(error = %e, "asset error in a request");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string())
            }
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Who is asking: the token's name, role and the tenant the request acts in.
pub(crate) struct Caller {
    pub(crate) tenant: String,
    pub(crate) user: String,
}

const TENANT_HEADER: &str = "x-wasmq-tenant";

/// Authenticates the request's bearer token and checks that its role may do
/// `action`; an admin may act in another tenant named by `X-Wasmq-Tenant`.
pub(crate) async fn caller(
    app: &AppState,
    headers: &HeaderMap,
    action: Action,
) -> ApiResult<Caller> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, Some("Authorization"), message);
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("an API token is required: Authorization: Bearer <token>"))?;
    let token = app
        .store
        .token_by_secret(secret.trim())
        .await?
        .ok_or_else(|| unauthorized("the API token is not valid (unknown or revoked)"))?;
    let role: Role = token.role.parse().map_err(|e: crate::auth::UnknownRole| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string())
    })?;
    if !role.may(action) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            None,
            format!(
                "a {role} token may not {}",
                match action {
                    Action::Read => "read",
                    Action::Act => "submit or change jobs",
                    Action::Administer => "administer the server",
                }
            ),
        ));
    }
    let tenant = match headers.get(TENANT_HEADER) {
        None => token.tenant.clone(),
        Some(v) => {
            let tenant = v.to_str().unwrap_or("");
            if !crate::auth::valid_tenant(tenant) {
                return Err(ApiError::bad(
                    "X-Wasmq-Tenant",
                    "must be 1-64 of a-z, 0-9, '-' and '_'",
                ));
            }
            if tenant != token.tenant && !role.crosses_tenants() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    Some("X-Wasmq-Tenant"),
                    format!("this token belongs to tenant {:?}", token.tenant),
                ));
            }
            tenant.to_string()
        }
    };
    Ok(Caller {
        tenant,
        user: token.name,
    })
}

/// Refuses a body that is not declared as JSON.
pub(crate) fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("Content-Type"),
            "must be application/json",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body(content = serde_json::Value, description = "type, path, excludedPaths, params, priority, name, description, comments, locale, submitterEmail, requireConfirmation, runAt", content_type = "application/json"), responses((status = 200, description = "A small job, run within the request", body = serde_json::Value), (status = 202, description = "Accepted", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 409, description = "Name taken"), (status = 415, description = "Not JSON")))]
async fn submit_job(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = caller(&app, &headers, Action::Act).await?;
    require_json(&headers)?;
    let new_job = submission::parse(&body, &caller.tenant, &caller.user, &app.registry)?;
    let job = app.store.insert_job(&new_job).await?;
    app.store
        .log(
            &job.id,
            "info",
            &format!(
                "submitted by {} for {} on {}",
                job.created_by, job.job_type, job.path
            ),
        )
        .await?;
    app.wake.notify_one();
    let threshold = app.sync.threshold(&job.job_type);
    let later = job.run_at.is_some_and(|t| t > crate::store::now_ms());
    if threshold > 0
        && !later
        && let Some(done) = wait_if_small(&app, &job.id, threshold).await?
    {
        let counts = app.store.task_counts(&done).await?;
        let mut answer = job_json(&done, counts);
        answer["tasks"] = json!(app.store.list_tasks(&done.id, 0, threshold as i64).await?);
        return Ok((StatusCode::OK, Json(answer)).into_response());
    }
    let job = app.store.get_job(&job.id).await?.unwrap_or(job);
    let counts = app.store.task_counts(&job).await?;
    Ok((StatusCode::ACCEPTED, Json(job_json(&job, counts))).into_response())
}

/// Waits for a job while it may still be small: returns it once it ends with
/// at most `threshold` tasks, or None as soon as it is known to be bigger,
/// to wait for confirmation, or to take longer than the policy's wait.
async fn wait_if_small(app: &AppState, id: &str, threshold: u64) -> ApiResult<Option<Job>> {
    let deadline = tokio::time::Instant::now() + app.sync.wait;
    loop {
        let Some(job) = app.store.get_job(id).await? else {
            return Ok(None);
        };
        if job.total as u64 > threshold || job.state() == JobState::Suspended {
            return Ok(None);
        }
        if job.state().is_final() {
            return Ok(Some(job));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The caller's job `id`; another tenant's job is answered like no job at
/// all (404), so that ids do not reveal what other tenants run.
pub(crate) async fn find_job(app: &AppState, caller: &Caller, id: &str) -> ApiResult<Job> {
    match app.store.get_job(id).await? {
        Some(job) if job.tenant == caller.tenant => Ok(job),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("id"),
            format!("no job {id:?}"),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")), responses((status = 200, description = "The job", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn get_job(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let job = find_job(&app, &caller, &id).await?;
    let counts = app.store.task_counts(&job).await?;
    Ok(Json(job_json(&job, counts)))
}

/// `GET /api/v1/history?limit=N`: the caller's last N finished runs, most recent first.
#[utoipa::path(get, path = "/api/v1/history", tag = "jobs", params(("limit" = Option<u64>, Query, description = "1-1000")), responses((status = 200, description = "The last finished runs", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn history(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let filter = JobFilter {
        tenant: Some(caller.tenant),
        finished_only: true,
        limit: int_param(&query, "limit", 10, 1, 1000)?,
        ..JobFilter::default()
    };
    let (jobs, total) = app.store.list_jobs(&filter).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in &jobs {
        out.push(job_json(job, app.store.task_counts(job).await?));
    }
    Ok(Json(
        json!({ "jobs": out, "total": total, "limit": filter.limit }),
    ))
}

/// `POST /api/v1/jobs/{id}/{cancel|pause|resume|restart|confirm}`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/{action}", tag = "jobs", params(("id" = String, Path, description = "Job id"), ("action" = String, Path, description = "cancel, pause, resume, restart or confirm")), responses((status = 200, description = "The job", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job or action"), (status = 409, description = "Forbidden by the state machine; the body names the state")))]
async fn control_job(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Act).await?;
    let event = match action.as_str() {
        "cancel" => Event::Cancel,
        "pause" => Event::Pause,
        "resume" => Event::Resume,
        "restart" => Event::Restart,
        "confirm" => Event::Confirm,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                Some("action"),
                format!(
                    "unknown action {action:?}; one of cancel, pause, resume, restart, confirm"
                ),
            ));
        }
    };
    let job = find_job(&app, &caller, &id).await?;
    if event == Event::Pause
        && job.preempted_by.is_some()
        && matches!(job.state(), JobState::Pausing | JobState::Paused)
    {
        // Paused for a higher-priority job: now it stays paused until a user resumes it.
        app.store.clear_preemption(&job.id).await?;
        let job = changed(&app, &caller, &job.id, "pause requested (kept paused)").await?;
        return Ok(Json(job_json(&job, app.store.task_counts(&job).await?)));
    }
    app.store.apply(&job.id, event, "api").await?;
    app.store.clear_preemption(&job.id).await?;
    if event == Event::Restart {
        app.store.clear_tasks(&job.id).await?;
    }
    let job = changed(&app, &caller, &job.id, &format!("{action} requested")).await?;
    Ok(Json(job_json(&job, app.store.task_counts(&job).await?)))
}

/// Logs a change `caller` made to a job, reads the job again, and wakes the
/// scheduler (after the read: the answer shows the state the change made, say
/// Pausing, not one the scheduler moved on to since, such as Paused).
pub(crate) async fn changed(
    app: &AppState,
    caller: &Caller,
    job_id: &str,
    what: &str,
) -> ApiResult<Job> {
    app.store
        .log(job_id, "info", &format!("{what} by {}", caller.user))
        .await?;
    let job = find_job(app, caller, job_id).await;
    app.wake.notify_one();
    job
}

/// `PATCH /api/v1/jobs/{id}` with `{"priority": N}` and/or `{"weight": W}`:
/// takes effect at the next task boundary (preempting or resuming other jobs).
#[utoipa::path(patch, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")), request_body(content = serde_json::Value, description = "{\"priority\": N, \"weight\": W}", content_type = "application/json"), responses((status = 200, description = "The job", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job"), (status = 409, description = "The job has ended")))]
async fn patch_job(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Act).await?;
    require_json(&headers)?;
    let body = submission::object(&body, &["priority", "weight"])?;
    let priority = submission::priority(body.get("priority"))?;
    let weight = submission::weight(body.get("weight"))?;
    if priority.is_none() && weight.is_none() {
        return Err(ApiError::bad("priority", "priority or weight is required"));
    }
    let job = find_job(&app, &caller, &id).await?;
    let mut what = Vec::new();
    if let Some(priority) = priority {
        app.store.set_priority(&job.id, priority).await?;
        what.push(format!("priority set to {priority}"));
    }
    if let Some(weight) = weight {
        app.store.set_weight(&job.id, weight).await?;
        what.push(format!("weight set to {weight}"));
    }
    let job = changed(&app, &caller, &job.id, &what.join(", ")).await?;
    Ok(Json(job_json(&job, app.store.task_counts(&job).await?)))
}

/// `DELETE /api/v1/jobs/{id}`: only a job that has ended.
#[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")), responses((status = 204, description = "Deleted"), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job"), (status = 409, description = "The job has not ended")))]
async fn delete_job(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = caller(&app, &headers, Action::Act).await?;
    let job = find_job(&app, &caller, &id).await?;
    app.store.delete_job(&job.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A log line as text: `2026-11-24T10:00:00.000Z INFO message`.
pub(crate) fn log_line((at, level, message): &(i64, String, String)) -> String {
    let at = timestamp(Some(*at));
    format!(
        "{} {} {message}",
        at.as_str().unwrap_or("-"),
        level.to_uppercase()
    )
}

/// `GET /api/v1/jobs/{id}/logs?offset=&limit=&tail=`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/logs", tag = "jobs", params(("id" = String, Path, description = "Job id"), ("offset" = Option<u64>, Query, description = "Skip"), ("limit" = Option<u64>, Query, description = "1-10000"), ("tail" = Option<u64>, Query, description = "The last N lines")), responses((status = 200, description = "Log lines", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn job_logs(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let job = find_job(&app, &caller, &id).await?;
    Ok(Json(log_page(&app, &job.id, &query).await?))
}

/// A page of a job's log, by `offset` and `limit` or the last `tail` lines:
/// `{lines, offset, limit, total, hasMore}`.
pub(crate) async fn log_page(
    app: &AppState,
    job_id: &str,
    query: &HashMap<String, String>,
) -> ApiResult<Value> {
    let total = app.store.log_count(job_id).await? as u64;
    if query.contains_key("tail") && query.contains_key("offset") {
        return Err(ApiError::bad("tail", "cannot be combined with offset"));
    }
    let (offset, limit) = if query.contains_key("tail") {
        let tail = int_param(query, "tail", 100, 1, 10_000)?;
        (total.saturating_sub(tail), tail)
    } else {
        (
            int_param(query, "offset", 0, 0, i64::MAX as u64)?,
            int_param(query, "limit", 100, 1, 10_000)?,
        )
    };
    let lines: Vec<String> = app
        .store
        .logs(job_id, offset as i64, limit as i64)
        .await?
        .iter()
        .map(log_line)
        .collect();
    let has_more = offset + (lines.len() as u64) < total;
    Ok(
        json!({ "lines": lines, "offset": offset, "limit": limit, "total": total, "hasMore": has_more }),
    )
}

/// A job's whole log as `{id}.log` in a ZIP download.
pub(crate) async fn log_zip(app: &AppState, job_id: &str) -> ApiResult<Response> {
    let total = app.store.log_count(job_id).await?;
    let mut text = String::new();
    for line in app.store.logs(job_id, 0, total).await? {
        text.push_str(&log_line(&line));
        text.push('\n');
    }
    let zipped = zip_one(&format!("{job_id}.log"), text.as_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("zipping the log: {e}"),
        )
    })?;
    let disposition = format!("attachment; filename=\"{job_id}-logs.zip\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        zipped,
    )
        .into_response())
}

/// `GET /api/v1/jobs/{id}/logs/download`: the log as `{id}.log` in a ZIP.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/logs/download", tag = "jobs", params(("id" = String, Path, description = "Job id")), responses((status = 200, description = "The log in a ZIP", content_type = "application/zip"), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn job_logs_download(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let job = find_job(&app, &caller, &id).await?;
    log_zip(&app, &job.id).await
}

/// A ZIP archive holding one file.
pub(crate) fn zip_one(name: &str, data: &[u8]) -> zip::result::ZipResult<Vec<u8>> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file(name, options)?;
    writer.write_all(data)?;
    Ok(writer.finish()?.into_inner())
}

/// `GET /api/v1/jobs/{id}/report`: one CSV row per item.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/report", tag = "jobs", params(("id" = String, Path, description = "Job id")), responses((status = 200, description = "One CSV row per item", content_type = "text/csv"), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn job_report(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let job = find_job(&app, &caller, &id).await?;
    let csv = crate::report::csv(&app.store.all_tasks(&job.id).await?);
    let disposition = format!("attachment; filename=\"{}.csv\"", job.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

/// `POST /api/v1/tokens` (admin): `{"name", "role", "tenant"}`; the answer holds the secret, once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", request_body(content = serde_json::Value, description = "name, role, tenant", content_type = "application/json"), responses((status = 201, description = "The token, with its secret (shown once)", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn create_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller(&app, &headers, Action::Administer).await?;
    require_json(&headers)?;
    let body = submission::object(&body, &["name", "role", "tenant"])?;
    let text = |field: &str| -> ApiResult<String> {
        match body.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::bad(field, "must be a string")),
            None => Err(ApiError::bad(field, "is required")),
        }
    };
    let name = text("name")?;
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad("name", "must be 1-200 printable characters"));
    }
    let role: Role = text("role")?
        .parse()
        .map_err(|e: crate::auth::UnknownRole| ApiError::bad("role", e.to_string()))?;
    let tenant = text("tenant")?;
    if !crate::auth::valid_tenant(&tenant) {
        return Err(ApiError::bad(
            "tenant",
            "must be 1-64 of a-z, 0-9, '-' and '_'",
        ));
    }
    let (row, secret) = app.store.create_token(&name, role, &tenant).await?;
    let mut answer = serde_json::to_value(&row).expect("token serializes");
    answer["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `POST /api/v1/purge` (admin): applies the retention policy now.
#[utoipa::path(post, path = "/api/v1/purge", tag = "admin", responses((status = 200, description = "How many jobs were removed", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn purge_now(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    caller(&app, &headers, Action::Administer).await?;
    let removed = app.retention.purge(&app.store).await?;
    Ok(Json(json!({
        "removed": removed,
        "maxAgeDays": app.retention.max_age_days,
        "maxFinishedJobs": app.retention.max_finished,
    })))
}

/// `POST /api/v1/schedules`: `{"name", "cron", "job": {submission}}`; the job is checked now and at each tick.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body(content = serde_json::Value, description = "name, cron, job", content_type = "application/json"), responses((status = 201, description = "The schedule", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 409, description = "Name taken")))]
async fn create_schedule(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = caller(&app, &headers, Action::Act).await?;
    require_json(&headers)?;
    let body = submission::object(&body, &["name", "cron", "job"])?;
    let name = match body.get("name") {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 200 => s.clone(),
        Some(_) => return Err(ApiError::bad("name", "must be 1-200 characters")),
        None => return Err(ApiError::bad("name", "is required")),
    };
    let cron_text = match body.get("cron") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad("cron", "must be a string")),
        None => return Err(ApiError::bad("cron", "is required")),
    };
    let cron = crate::purge::parse_schedule(&cron_text)
        .map_err(|e| ApiError::bad("cron", e.to_string()))?;
    let Some(template) = body.get("job") else {
        return Err(ApiError::bad("job", "is required"));
    };
    let template_text = template.to_string();
    submission::parse(
        template_text.as_bytes(),
        &caller.tenant,
        &caller.user,
        &app.registry,
    )
    .map_err(|e| {
        let field = format!("job.{}", e.field.as_deref().unwrap_or(""));
        ApiError::bad(field.trim_end_matches('.'), e.message)
    })?;
    let now = crate::store::now_ms();
    let next_run = crate::schedules::next_run(&cron, now)
        .ok_or_else(|| ApiError::bad("cron", "this expression never fires"))?;
    let row = crate::store::ScheduleRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: caller.tenant,
        name,
        cron: cron_text,
        template: template_text,
        created_by: caller.user,
        created_at: now,
        next_run,
        last_run: None,
        last_job_id: None,
    };
    app.store.create_schedule(&row).await?;
    Ok((StatusCode::CREATED, Json(schedule_json(&row))).into_response())
}

fn schedule_json(s: &crate::store::ScheduleRow) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "cron": s.cron,
        "job": serde_json::from_str::<Value>(&s.template).unwrap_or(Value::Null),
        "tenant": s.tenant,
        "createdBy": s.created_by,
        "createdAt": timestamp(Some(s.created_at)),
        "nextRun": timestamp(Some(s.next_run)),
        "lastRun": timestamp(s.last_run),
        "lastJobId": s.last_job_id,
    })
}

/// `GET /api/v1/schedules`: the tenant's schedules.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", responses((status = 200, description = "The tenant's schedules", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_schedules(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let schedules: Vec<Value> = app
        .store
        .list_schedules(Some(&caller.tenant))
        .await?
        .iter()
        .map(schedule_json)
        .collect();
    Ok(Json(json!({ "schedules": schedules })))
}

/// `DELETE /api/v1/schedules/{id}`.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "Schedule id")), responses((status = 204, description = "Deleted"), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such schedule")))]
async fn delete_schedule(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = caller(&app, &headers, Action::Act).await?;
    if app.store.delete_schedule(&caller.tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("id"),
            format!("no schedule {id:?}"),
        ))
    }
}

/// `GET /api/v1/tokens` (admin): every token, without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin", responses((status = 200, description = "Tokens without secrets", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_tokens(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    caller(&app, &headers, Action::Administer).await?;
    Ok(Json(json!({ "tokens": app.store.list_tokens().await? })))
}

/// `GET /api/v1/tenants` (admin): each tenant's weight and the CPU time and fuel its jobs used.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "admin", responses((status = 200, description = "Tenants: tenant, weight, cpuMs, fuelUsed", body = serde_json::Value), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_tenants(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    caller(&app, &headers, Action::Administer).await?;
    let tenants: Vec<Value> = app
        .store
        .tenants(None)
        .await?
        .iter()
        .map(tenant_json)
        .collect();
    Ok(Json(json!({ "tenants": tenants })))
}

/// `PUT /api/v1/tenants/{tenant}` (admin) with `{"weight": W}`: the tenant's
/// share of the workers among tenants of equal priority work.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}", tag = "admin", params(("tenant" = String, Path, description = "Tenant")), request_body(content = serde_json::Value, description = "{\"weight\": W} (1 to 1000)", content_type = "application/json"), responses((status = 200, description = "The tenant", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn put_tenant(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller(&app, &headers, Action::Administer).await?;
    require_json(&headers)?;
    if !crate::auth::valid_tenant(&tenant) {
        return Err(ApiError::bad(
            "tenant",
            "must be 1-64 of a-z, 0-9, '-' and '_'",
        ));
    }
    let body = submission::object(&body, &["weight"])?;
    let Some(weight) = submission::weight(body.get("weight"))? else {
        return Err(ApiError::bad("weight", "is required"));
    };
    let row = app.store.set_tenant_weight(&tenant, weight).await?;
    app.wake.notify_one();
    Ok(Json(tenant_json(&row)))
}

fn tenant_json(t: &crate::store::TenantRow) -> Value {
    json!({
        "tenant": t.tenant,
        "weight": t.weight,
        "cpuMs": t.cpu_ns as f64 / 1e6,
        "fuelUsed": t.fuel_used,
    })
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "admin", params(("id" = String, Path, description = "Token id")), responses((status = 204, description = "Revoked"), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such token")))]
async fn delete_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller(&app, &headers, Action::Administer).await?;
    if app.store.delete_token(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("id"),
            format!("no token {id:?}"),
        ))
    }
}

/// Reads an integer query parameter within bounds.
pub(crate) fn int_param(
    query: &HashMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> ApiResult<u64> {
    match query.get(name) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(ApiError::bad(
                name,
                format!("must be an integer from {min} to {max}"),
            )),
        },
    }
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(("state" = Option<String>, Query, description = "A job state"), ("type" = Option<String>, Query, description = "Job type"), ("id" = Option<String>, Query, description = "Id prefix"), ("text" = Option<String>, Query, description = "Text in name or description"), ("createdBy" = Option<String>, Query, description = "Creator"), ("createdAfter" = Option<String>, Query, description = "RFC 3339"), ("createdBefore" = Option<String>, Query, description = "RFC 3339"), ("offset" = Option<u64>, Query, description = "Skip"), ("limit" = Option<u64>, Query, description = "1-1000")), responses((status = 200, description = "Jobs, newest first", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_jobs(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let state = match query.get("state") {
        None => None,
        Some(s) => Some(s.parse::<JobState>().map_err(|_| {
            let names: Vec<&str> = crate::jobs::ALL_STATES.iter().map(|s| s.as_str()).collect();
            ApiError::bad(
                "state",
                format!("unknown state {s:?}; one of {}", names.join(", ")),
            )
        })?),
    };
    let time = |name: &str| -> ApiResult<Option<i64>> {
        match query.get(name) {
            None => Ok(None),
            Some(raw) => humantime::parse_rfc3339_weak(raw)
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| Some(d.as_millis() as i64))
                .ok_or_else(|| {
                    ApiError::bad(
                        name,
                        format!("{raw:?} is not a time like 2026-11-24T10:00:00Z"),
                    )
                }),
        }
    };
    let filter = JobFilter {
        tenant: Some(caller.tenant),
        state,
        job_type: query.get("type").cloned(),
        id: query.get("id").cloned(),
        text: query.get("text").cloned(),
        created_by: query.get("createdBy").cloned(),
        created_after: time("createdAfter")?,
        created_before: time("createdBefore")?,
        finished_only: false,
        offset: int_param(&query, "offset", 0, 0, u32::MAX as u64)?,
        limit: int_param(&query, "limit", 50, 1, 1000)?,
    };
    let (jobs, total) = app.store.list_jobs(&filter).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in &jobs {
        out.push(job_json(job, app.store.task_counts(job).await?));
    }
    Ok(Json(
        json!({ "jobs": out, "total": total, "offset": filter.offset, "limit": filter.limit }),
    ))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/tasks", tag = "jobs", params(("id" = String, Path, description = "Job id"), ("offset" = Option<u64>, Query, description = "Skip"), ("limit" = Option<u64>, Query, description = "1-1000")), responses((status = 200, description = "Per-item rows", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such job")))]
async fn list_tasks(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let job = find_job(&app, &caller, &id).await?;
    let offset = int_param(&query, "offset", 0, 0, i64::MAX as u64)?;
    let limit = int_param(&query, "limit", 100, 1, 1000)?;
    let tasks = app
        .store
        .list_tasks(&job.id, offset as i64, limit as i64)
        .await?;
    let has_more = offset + (tasks.len() as u64) < job.total as u64;
    Ok(Json(
        json!({ "tasks": tasks, "total": job.total, "offset": offset, "limit": limit, "hasMore": has_more }),
    ))
}

/// `GET /api/v1/plugins`: every loaded version (active, or superseded but kept
/// for the jobs that started on it) and the files refused, with reasons.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", responses((status = 200, description = "Loaded versions and rejected files", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_plugins(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    caller(&app, &headers, Action::Read).await?;
    let plugins: Vec<Value> = app
        .registry
        .versions()
        .iter()
        .map(|(p, status)| plugin_json(p, *status))
        .collect();
    Ok(Json(
        json!({ "plugins": plugins, "rejected": app.registry.rejected() }),
    ))
}

fn plugin_json(p: &crate::plugins::Plugin, status: crate::plugins::Status) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "digest": p.digest(),
        "jobTypes": p.job_types,
        "paramsSchema": p.params_schema,
        "capabilities": p.capability_names(),
        "file": p.file.display().to_string(),
        "loadedAt": timestamp(Some(p.loaded_at)),
        "status": status,
    })
}

/// The largest component `PUT /api/v1/plugins/{name}` accepts.
const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// `PUT /api/v1/plugins/{name}` (admin) with the component's bytes: checked
/// (compiled, linked against the world, described) before it is written to the
/// plugin directory; then it is the version new jobs of its types get.
#[utoipa::path(put, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "The plugin's name, as its describe says")), request_body(content = Vec<u8>, description = "A wasm component (at most 64 MiB)", content_type = "application/wasm"), responses((status = 201, description = "Installed: the plugin", body = serde_json::Value), (status = 200, description = "That exact component was already installed", body = serde_json::Value), (status = 400, description = "Not a usable component, or another name: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 413, description = "Too large")))]
async fn put_plugin(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let caller = caller(&app, &headers, Action::Administer).await?;
    if !valid_plugin_name(&name) {
        return Err(ApiError::bad(
            "name",
            "must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_COMPONENT_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("body"),
                format!("a component may have at most {MAX_COMPONENT_BYTES} bytes"),
            )
        })?;
    if bytes.is_empty() {
        return Err(ApiError::bad(
            "body",
            "is empty: send the component's bytes",
        ));
    }
    let file = app
        .registry
        .file_of(&name)
        .unwrap_or_else(|| app.plugins_dir.join(format!("{name}.wasm")));
    let plugin = app
        .registry
        .inspect(&file, &bytes)
        .await
        .map_err(|reason| ApiError::bad("body", reason))?;
    if plugin.name != name {
        return Err(ApiError::bad(
            "name",
            format!(
                "the component describes itself as plugin {:?}, not {name:?}",
                plugin.name
            ),
        ));
    }
    crate::plugins::write_atomically(&file, &bytes)
        .map_err(|e| ApiError::internal(format!("writing {}: {e}", file.display())))?;
    let change = app
        .registry
        .reload(&file)
        .await
        .map_err(|reason| ApiError::bad("body", reason))?;
    tracing::info!(plugin = %name, digest = %plugin.digest(), by = %caller.user, "plugin uploaded");
    let status = match change {
        crate::plugins::Change::Loaded(_) => StatusCode::CREATED,
        crate::plugins::Change::Unchanged => StatusCode::OK,
    };
    Ok((
        status,
        Json(plugin_json(&plugin, crate::plugins::Status::Active)),
    ))
}

/// `DELETE /api/v1/plugins/{name}` (admin): retires every version of a plugin
/// and removes its file; refused while a job that has not ended uses it.
#[utoipa::path(delete, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "Plugin name")), responses((status = 204, description = "Retired"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such plugin"), (status = 409, description = "Jobs still use it")))]
async fn delete_plugin(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller(&app, &headers, Action::Administer).await?;
    if !app.registry.versions().iter().any(|(p, _)| p.name == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("name"),
            format!("no plugin {name:?}"),
        ));
    }
    let using = app.store.unfinished_jobs_of_plugin(&name).await?;
    if using > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Some("name"),
            format!(
                "{using} jobs that have not ended use plugin {name:?}; cancel them or let them finish first"
            ),
        ));
    }
    for file in app.registry.remove(&name) {
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ApiError::internal(format!(
                "removing {}: {e}",
                file.display()
            )));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

fn valid_plugin_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !s.starts_with('.')
}

#[utoipa::path(get, path = "/api/v1/assets", tag = "assets", params(("path" = String, Query, description = "Folder"), ("recursive" = Option<bool>, Query, description = "Descend"), ("cursor" = Option<String>, Query, description = "Next page"), ("limit" = Option<u64>, Query, description = "1-1000")), responses((status = 200, description = "A page of assets", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_assets(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let Some(path) = query.get("path") else {
        return Err(ApiError::bad("path", "is required"));
    };
    paths::validate(path).map_err(|e| ApiError::bad("path", format!("{path:?} {e}")))?;
    let recursive = match query.get("recursive").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad("recursive", "must be true or false")),
    };
    let limit = int_param(&query, "limit", 100, 1, crate::assets::MAX_PAGE as u64)? as u32;
    let page = app
        .assets
        .list(
            &caller.tenant,
            path,
            recursive,
            query.get("cursor").map(String::as_str),
            limit,
            None,
        )
        .await?;
    Ok(Json(serde_json::to_value(page).expect("page serializes")))
}

/// RFC 3339 text of a millisecond timestamp.
pub(crate) fn timestamp(ms: Option<i64>) -> Value {
    match ms {
        Some(ms) if ms >= 0 => Value::String(
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64))
                .to_string(),
        ),
        _ => Value::Null,
    }
}

/// The JSON form of a job, with progress and ETA.
pub fn job_json(job: &Job, counts: TaskCounts) -> Value {
    let done = counts.succeeded + counts.failed;
    let percent = if job.state() == JobState::Complete {
        100.0
    } else if counts.total > 0 {
        (done as f64 * 1000.0 / counts.total as f64).floor() / 10.0
    } else {
        0.0
    };
    let eta = match (job.state(), job.started_at) {
        (JobState::Active, Some(started)) if done > 0 && counts.total > done => {
            let elapsed = (crate::store::now_ms() - started).max(0) as f64 / 1000.0;
            let seconds = (elapsed / done as f64 * (counts.total - done) as f64).ceil() as i64;
            json!({ "value": seconds, "unit": "seconds" })
        }
        _ => Value::Null,
    };
    let excluded: Value = serde_json::from_str(&job.excluded_paths).unwrap_or(Value::Array(vec![]));
    let params: Value = serde_json::from_str(&job.params).unwrap_or(Value::Object(Map::new()));
    json!({
        "id": job.id,
        "name": job.name,
        "description": job.description,
        "type": job.job_type,
        "tenant": job.tenant,
        "path": job.path,
        "excludedPaths": excluded,
        "params": params,
        "priority": job.priority,
        "requireConfirmation": job.require_confirmation,
        "state": job.state().as_str(),
        "createdBy": job.created_by,
        "serverName": job.server_name,
        "plugin": { "name": job.plugin_name, "version": job.plugin_version, "digest": job.plugin_digest },
        "counts": counts,
        "progress": {
            "done": done,
            "total": counts.total,
            "percent": percent,
            "message": job.progress_message,
            "lastUpdate": timestamp(job.progress_at.or(Some(job.updated_at))),
            "eta": eta,
        },
        "createdAt": timestamp(Some(job.created_at)),
        "startedAt": timestamp(job.started_at),
        "completedAt": timestamp(job.completed_at),
        "fuelUsed": job.fuel_used,
        "cpuMs": job.cpu_ns as f64 / 1e6,
        "weight": job.weight,
        "preemptedBy": job.preempted_by,
        "error": job.error,
        "comments": job.comments,
        "locale": job.locale,
        "submitterEmail": job.submitter_email,
        "totalSize": job.total_size,
        "runAt": timestamp(job.run_at),
        "scheduled": job.state() == JobState::New && job.run_at.is_some_and(|t| t > crate::store::now_ms()),
        "scheduleId": job.schedule_id,
        "cancellable": transition(job.state(), Event::Cancel).is_ok(),
        "pausable": transition(job.state(), Event::Pause).is_ok(),
        "resumable": transition(job.state(), Event::Resume).is_ok(),
        "restartable": transition(job.state(), Event::Restart).is_ok(),
        "confirmable": transition(job.state(), Event::Confirm).is_ok(),
        "deletable": job.state().is_final(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_params_are_bounded() {
        let q: HashMap<String, String> = [("limit".to_string(), "0".to_string())].into();
        assert!(int_param(&q, "limit", 50, 1, 1000).is_err());
        let q: HashMap<String, String> = [("limit".to_string(), "10".to_string())].into();
        assert_eq!(int_param(&q, "limit", 50, 1, 1000).unwrap(), 10);
        assert_eq!(
            int_param(&HashMap::new(), "limit", 50, 1, 1000).unwrap(),
            50
        );
    }
}
