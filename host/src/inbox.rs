//! The per-user inbox of job-ended messages (`/api/v1/inbox`): a user is the
//! token name a job records as its creator, within the caller's tenant.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{self, ApiError, ApiResult, AppState};
use crate::auth::Action;
use crate::store::now_ms;

/// The inbox routes, to merge into the API's router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_inbox))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

fn entry_json(row: &sqlx::any::AnyRow) -> Value {
    let read_at: Option<i64> = row.get("read_at");
    json!({
        "id": row.get::<String, _>("id"),
        "jobId": row.get::<String, _>("job_id"),
        "jobState": row.get::<String, _>("job_state"),
        "locale": row.get::<String, _>("locale"),
        "subject": row.get::<String, _>("subject"),
        "body": row.get::<String, _>("body"),
        "createdAt": api::timestamp(Some(row.get("created_at"))),
        "read": read_at.is_some(),
        "readAt": api::timestamp(read_at),
    })
}

fn db(e: sqlx::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

#[utoipa::path(get, path = "/api/v1/inbox", tag = "notifications", params(("unread" = Option<bool>, Query, description = "true: only unread entries"), ("offset" = Option<u64>, Query, description = "Skip"), ("limit" = Option<u64>, Query, description = "1-1000")), responses((status = 200, description = "The caller's messages, newest first, and how many are unread", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_inbox(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let caller = api::caller(&app, &headers, Action::Read).await?;
    let unread_only = match query.get("unread").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad("unread", "must be true or false")),
    };
    let offset = api::int_param(&query, "offset", 0, 0, u32::MAX as u64)?;
    let limit = api::int_param(&query, "limit", 50, 1, 1000)?;
    let rows = sqlx::query(
        "SELECT * FROM inbox WHERE tenant = $1 AND user_name = $2 AND ($3 = 0 OR read_at IS NULL) \
         ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5",
    )
    .bind(&caller.tenant)
    .bind(&caller.user)
    .bind(unread_only)
    .bind(limit as i64)
    .bind(offset as i64)
    .fetch_all(app.store.pool())
    .await
    .map_err(db)?;
    let unread: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inbox WHERE tenant = $1 AND user_name = $2 AND read_at IS NULL",
    )
    .bind(&caller.tenant)
    .bind(&caller.user)
    .fetch_one(app.store.pool())
    .await
    .map_err(db)?;
    let entries: Vec<Value> = rows.iter().map(entry_json).collect();
    Ok(Json(
        json!({ "entries": entries, "unread": unread, "offset": offset, "limit": limit }),
    ))
}

#[utoipa::path(post, path = "/api/v1/inbox/{id}/read", tag = "notifications", params(("id" = String, Path, description = "Inbox entry id")), responses((status = 200, description = "The entry, read", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such entry in the caller's inbox")))]
async fn mark_read(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = api::caller(&app, &headers, Action::Read).await?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::bad(
            "id",
            format!("{id:?} is not an inbox entry id"),
        ));
    }
    sqlx::query(
        "UPDATE inbox SET read_at = $1 WHERE id = $2 AND tenant = $3 AND user_name = $4 AND read_at IS NULL",
    )
    .bind(now_ms())
    .bind(&id)
    .bind(&caller.tenant)
    .bind(&caller.user)
    .execute(app.store.pool())
    .await
    .map_err(db)?;
    let row = sqlx::query("SELECT * FROM inbox WHERE id = $1 AND tenant = $2 AND user_name = $3")
        .bind(&id)
        .bind(&caller.tenant)
        .bind(&caller.user)
        .fetch_optional(app.store.pool())
        .await
        .map_err(db)?;
    match row {
        Some(row) => Ok(Json(entry_json(&row))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("id"),
            format!("no entry {id:?} in your inbox"),
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/inbox/read-all", tag = "notifications", responses((status = 200, description = "How many entries were marked read: `{marked}`", body = serde_json::Value), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn mark_all_read(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let caller = api::caller(&app, &headers, Action::Read).await?;
    let done = sqlx::query(
        "UPDATE inbox SET read_at = $1 WHERE tenant = $2 AND user_name = $3 AND read_at IS NULL",
    )
    .bind(now_ms())
    .bind(&caller.tenant)
    .bind(&caller.user)
    .execute(app.store.pool())
    .await
    .map_err(db)?;
    Ok(Json(json!({ "marked": done.rows_affected() })))
}
