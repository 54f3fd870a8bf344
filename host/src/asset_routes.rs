//! The asset endpoints: download and upload of binaries, renditions, published
//! state, and the public read-only tree of published assets at `/published/`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::api::{ApiError, ApiResult, AppState, caller};
use crate::assets::content_type_for;
use crate::auth::Action;
use crate::paths;

/// The largest asset upload, in bytes, unless `--max-upload-bytes` says otherwise.
pub const MAX_UPLOAD_BYTES: usize = 256 << 20;

/// The routes, to merge into the API's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/assets/{*path}", get(download).put(upload))
        .route("/api/v1/renditions/{*path}", get(renditions))
        .route("/api/v1/published/{*path}", get(published_state))
        .route("/published/{tenant}/{*path}", get(published_binary))
}

/// The asset path of a wildcard capture (which has no leading `/`).
fn asset_path(raw: &str) -> ApiResult<String> {
    let path = format!("/{raw}");
    paths::validate(&path).map_err(|e| ApiError::bad("path", format!("{path:?} {e}")))?;
    Ok(path)
}

fn binary(data: Bytes, content_type: &str, etag: &str, headers: &HeaderMap) -> Response {
    let etag = format!("\"{etag}\"");
    let etag_value = HeaderValue::from_str(&etag).expect("hex etag");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::ETAG, etag_value),
        ],
        Body::from(data),
    )
        .into_response()
}

fn rendition_param(query: &HashMap<String, String>) -> ApiResult<Option<&str>> {
    match query.get("rendition") {
        None => Ok(None),
        Some(name) if crate::assets::valid_rendition_name(name) => Ok(Some(name)),
        Some(name) => Err(ApiError::bad(
            "rendition",
            format!("{name:?} is not a rendition name"),
        )),
    }
}

/// `GET /api/v1/assets/{path}`: the asset's binary, or with `?rendition=NAME` one of its renditions.
async fn download(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let path = asset_path(&raw)?;
    match rendition_param(&query)? {
        None => {
            let Some(stat) = app.assets.stat(&caller.tenant, &path).await? else {
                return Err(not_found(&path));
            };
            let data = app.assets.read(&caller.tenant, &path).await?;
            Ok(binary(data, &stat.content_type, &stat.etag, &headers))
        }
        Some(name) => {
            let list = app.assets.renditions(&caller.tenant, &path).await?;
            let Some(r) = list.into_iter().find(|r| r.name == name) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    Some("rendition"),
                    format!("{path} has no rendition {name:?}"),
                ));
            };
            let data = app
                .assets
                .read_rendition(&caller.tenant, &path, name)
                .await?;
            Ok(binary(data, &r.content_type, &r.etag, &headers))
        }
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Some("path"),
        format!("no asset at {path}"),
    )
}

/// `PUT /api/v1/assets/{path}`: creates (201) or replaces (200) the asset with
/// the request body, or with `?rendition=NAME` one of its renditions; the
/// media type is the `Content-Type` header or follows the extension.
async fn upload(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    limits: Option<axum::Extension<crate::request_limits::BodyLimits>>,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let caller = caller(&app, &headers, Action::Act).await?;
    let path = asset_path(&raw)?;
    let rendition = rendition_param(&query)?;
    let max = limits.map_or(MAX_UPLOAD_BYTES, |axum::Extension(l)| l.upload);
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("body"),
            format!("an asset may have at most {max} bytes"),
        )
    })?;
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => content_type_for(&path).to_string(),
        Some(v) => {
            let v = v.to_str().unwrap_or_default().trim();
            let essence = v.split(';').next().unwrap_or_default().trim();
            if essence.is_empty() || !essence.contains('/') || essence.len() > 200 {
                return Err(ApiError::bad(
                    "Content-Type",
                    format!("{v:?} is not a media type"),
                ));
            }
            if essence == "application/octet-stream" {
                content_type_for(&path).to_string()
            } else {
                essence.to_ascii_lowercase()
            }
        }
    };
    if let Some(name) = rendition {
        let existed = app
            .assets
            .renditions(&caller.tenant, &path)
            .await?
            .iter()
            .any(|r| r.name == name);
        let stat = app
            .assets
            .write_rendition(&caller.tenant, &path, name, bytes, &content_type)
            .await?;
        let status = if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        return Ok((
            status,
            axum::Json(serde_json::to_value(stat).expect("stat")),
        ));
    }
    let existed = app.assets.stat(&caller.tenant, &path).await?.is_some();
    let stat = app
        .assets
        .write(&caller.tenant, &path, bytes, &content_type)
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        axum::Json(serde_json::to_value(stat).expect("stat")),
    ))
}

/// `GET /api/v1/renditions/{path}`: the asset's renditions.
async fn renditions(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let path = asset_path(&raw)?;
    if app.assets.stat(&caller.tenant, &path).await?.is_none() {
        return Err(not_found(&path));
    }
    let list = app.assets.renditions(&caller.tenant, &path).await?;
    Ok(axum::Json(json!(list)))
}

/// `GET /api/v1/published/{path}`: when and which version of the asset is published.
async fn published_state(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let caller = caller(&app, &headers, Action::Read).await?;
    let path = asset_path(&raw)?;
    match app.assets.published(&caller.tenant, &path).await? {
        Some(p) => {
            let mut v = json!(p);
            v["publishedAt"] = crate::api::timestamp(Some(p.published_at));
            v["url"] = json!(format!("/published/{}{}", caller.tenant, p.path));
            Ok(axum::Json(v))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("path"),
            format!("{path} is not published"),
        )),
    }
}

/// `GET /published/{tenant}/{path}`: the published binary, to anyone (the
/// publish target is public); `?rendition=NAME` for a published rendition.
async fn published_binary(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((tenant, raw)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    if !crate::auth::valid_tenant(&tenant) {
        return Err(ApiError::bad(
            "tenant",
            format!("{tenant:?} is not a tenant name"),
        ));
    }
    let path = asset_path(&raw)?;
    let rendition = rendition_param(&query)?;
    match app.assets.read_published(&tenant, &path, rendition).await? {
        Some((data, content_type, etag)) => Ok(binary(data, &content_type, &etag, &headers)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("path"),
            "nothing is published there",
        )),
    }
}
