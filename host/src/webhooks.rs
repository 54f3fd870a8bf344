//! Webhooks: registration per tenant (`/api/v1/webhooks`), the HMAC-SHA256
//! signature of each delivery, and one signed POST of a delivery.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{self, ApiError, ApiResult, AppState};
use crate::auth::Action;
use crate::store::now_ms;

/// The events a webhook can ask for; the default is all of them.
pub const EVENTS: &[&str] = &["job.ended"];

/// Hex HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// The `X-Wasmq-Signature` value of a delivery sent at `timestamp` (Unix
/// seconds, the `X-Wasmq-Timestamp` header): `sha256=` and the hex
/// HMAC-SHA256, keyed by the webhook's secret, of `{timestamp}.{body}`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &signed))
}

/// Checks a webhook URL: absolute http with a host. (The host's HTTP client
/// is built without TLS, so https receivers need a proxy in front of them.)
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if parsed.scheme() == "https" {
        return Err(format!(
            "{url:?}: https is not supported by this server (built without TLS); use http"
        ));
    }
    if parsed.scheme() != "http" {
        return Err(format!("{url:?} must be an http URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(parsed)
}

/// A new webhook secret: `whsec_` and 48 hex digits.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random source");
    format!("whsec_{}", hex::encode(bytes))
}

/// What one attempt to deliver gave.
#[derive(Debug)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// The receiver answered something else, or could not be reached.
    Failed { status: Option<u16>, error: String },
}

/// POSTs a delivery's JSON body to `url`, signed with `secret`, with the
/// headers `X-Wasmq-Event`, `X-Wasmq-Delivery`, `X-Wasmq-Timestamp` and `X-Wasmq-Signature`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    body: &str,
) -> Outcome {
    let timestamp = now_ms() / 1000;
    let sent = client
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .header("user-agent", "wasmq-webhook")
        .header("x-wasmq-event", event)
        .header("x-wasmq-delivery", delivery)
        .header("x-wasmq-timestamp", timestamp.to_string())
        .header(
            "x-wasmq-signature",
            signature(secret, timestamp, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Outcome::Delivered(r.status().as_u16()),
        Ok(r) => Outcome::Failed {
            status: Some(r.status().as_u16()),
            error: format!("the receiver answered {}", r.status()),
        },
        Err(e) => Outcome::Failed {
            status: None,
            error: format!("sending failed: {e}"),
        },
    }
}

/// The webhook routes, to merge into the API's router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
}

fn webhook_json(row: &sqlx::any::AnyRow) -> Value {
    use sqlx::Row;
    let events: Value =
        serde_json::from_str(&row.get::<String, _>("events")).unwrap_or_else(|_| json!([]));
    json!({
        "id": row.get::<String, _>("id"),
        "url": row.get::<String, _>("url"),
        "events": events,
        "createdBy": row.get::<String, _>("created_by"),
        "createdAt": api::timestamp(Some(row.get::<i64, _>("created_at"))),
    })
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "notifications", request_body(content = serde_json::Value, description = "url (http), events (default [\"job.ended\"]), secret (generated when absent)", content_type = "application/json"), responses((status = 201, description = "Registered: the webhook with its secret, shown this once", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 415, description = "Not JSON")))]
async fn create_webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let caller = api::caller(&app, &headers, Action::Act).await?;
    api::require_json(&headers)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("body", format!("is not JSON: {e}")))?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad("body", "must be a JSON object"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !["url", "events", "secret"].contains(&k.as_str()))
    {
        return Err(ApiError::bad(
            unknown,
            "is not a webhook field; one of url, events, secret",
        ));
    }
    let url = match fields.get("url") {
        Some(Value::String(url)) => url.clone(),
        Some(_) => return Err(ApiError::bad("url", "must be a string")),
        None => return Err(ApiError::bad("url", "is required")),
    };
    check_url(&url).map_err(|e| ApiError::bad("url", e))?;
    let events: Vec<String> = match fields.get("events") {
        None | Some(Value::Null) => EVENTS.iter().map(|e| e.to_string()).collect(),
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut events = Vec::new();
            for e in list {
                match e.as_str() {
                    Some(name) if EVENTS.contains(&name) => events.push(name.to_string()),
                    _ => {
                        return Err(ApiError::bad(
                            "events",
                            format!("unknown event {e}; one of {}", EVENTS.join(", ")),
                        ));
                    }
                }
            }
            events
        }
        Some(_) => {
            return Err(ApiError::bad(
                "events",
                "must be a non-empty array of event names",
            ));
        }
    };
    let secret = match fields.get("secret") {
        None | Some(Value::Null) => generate_secret(),
        Some(Value::String(s)) if (16..=256).contains(&s.len()) => s.clone(),
        Some(_) => return Err(ApiError::bad("secret", "must be a string of 16-256 bytes")),
    };
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO webhooks (id, tenant, url, events, secret, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&caller.tenant)
    .bind(&url)
    .bind(json!(events).to_string())
    .bind(&secret)
    .bind(&caller.user)
    .bind(now)
    .execute(app.store.pool())
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::info!(webhook = %id, tenant = %caller.tenant, %url, "webhook registered");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "url": url,
            "events": events,
            "secret": secret,
            "createdBy": caller.user,
            "createdAt": api::timestamp(Some(now)),
        })),
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "notifications", responses((status = 200, description = "The tenant's webhooks (no secrets)", body = serde_json::Value), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not")))]
async fn list_webhooks(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let caller = api::caller(&app, &headers, Action::Read).await?;
    let rows = sqlx::query("SELECT * FROM webhooks WHERE tenant = $1 ORDER BY created_at, id")
        .bind(&caller.tenant)
        .fetch_all(app.store.pool())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let hooks: Vec<Value> = rows.iter().map(webhook_json).collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

/// Checks that `id` looks like an id and names a webhook of the caller's tenant.
async fn find_webhook(app: &AppState, tenant: &str, id: &str) -> ApiResult<()> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad("id", format!("{id:?} is not a webhook id")));
    }
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1 AND tenant = $2")
            .bind(id)
            .bind(tenant)
            .fetch_optional(app.store.pool())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("id"),
            format!("no webhook {id:?} in this tenant"),
        )),
    }
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "notifications", params(("id" = String, Path, description = "Webhook id")), responses((status = 204, description = "Removed; its pending deliveries are dropped"), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such webhook")))]
async fn delete_webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = api::caller(&app, &headers, Action::Act).await?;
    find_webhook(&app, &caller.tenant, &id).await?;
    let mut tx = app
        .store
        .pool()
        .begin()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    for sql in [
        "UPDATE deliveries SET state = 'failed', last_error = 'the webhook was deleted', finished_at = $2 \
         WHERE webhook_id = $1 AND state = 'pending'",
        "DELETE FROM webhooks WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(&id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    tx.commit()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "notifications", params(("id" = String, Path, description = "Webhook id"), ("limit" = Option<u64>, Query, description = "1-1000, newest first")), responses((status = 200, description = "Deliveries: state (pending, delivered, failed), attempts, next attempt, last status and error", body = serde_json::Value), (status = 400, description = "Bad input: `{error: {field, message}}`"), (status = 401, description = "No valid token"), (status = 403, description = "Role or tenant may not"), (status = 404, description = "No such webhook")))]
async fn list_deliveries(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    use sqlx::Row;
    let caller = api::caller(&app, &headers, Action::Read).await?;
    find_webhook(&app, &caller.tenant, &id).await?;
    let limit = api::int_param(&query, "limit", 100, 1, 1000)?;
    let rows = sqlx::query(
        "SELECT * FROM deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(&id)
    .bind(limit as i64)
    .fetch_all(app.store.pool())
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let state: String = r.get("state");
            json!({
                "id": r.get::<String, _>("id"),
                "event": r.get::<String, _>("event"),
                "jobId": r.get::<String, _>("job_id"),
                "url": r.get::<String, _>("recipient"),
                "state": state,
                "attempts": r.get::<i64, _>("attempts"),
                "nextAttemptAt": if state == "pending" { api::timestamp(Some(r.get("next_attempt"))) } else { Value::Null },
                "lastStatus": r.get::<Option<i64>, _>("last_status"),
                "lastError": r.get::<Option<String>, _>("last_error"),
                "createdAt": api::timestamp(Some(r.get("created_at"))),
                "finishedAt": api::timestamp(r.get("finished_at")),
            })
        })
        .collect();
    Ok(Json(json!({ "deliveries": list })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        // The signed text is exactly "{timestamp}.{body}"; a change to either,
        // or to the key, changes the signature.
        let sig = signature("Jefe", 1_700_000_000, br#"{"event":"job.ended"}"#);
        assert_eq!(
            sig,
            format!(
                "sha256={}",
                hmac_sha256_hex(b"Jefe", br#"1700000000.{"event":"job.ended"}"#)
            )
        );
        assert_ne!(
            sig,
            signature("Jefe", 1_700_000_001, br#"{"event":"job.ended"}"#)
        );
        assert_ne!(
            sig,
            signature("Jefe", 1_700_000_000, br#"{"event":"job.Ended"}"#)
        );
        assert_ne!(
            sig,
            signature("jefe", 1_700_000_000, br#"{"event":"job.ended"}"#)
        );
    }

    #[test]
    fn webhook_urls() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://hooks.example.com/x?y=1").is_ok());
        for bad in [
            "",
            "hooks.example.com",
            "ftp://x/y",
            "http://",
            "mailto:a@b.c",
            "https://hooks.example.com/x",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_random() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 54);
    }
}
