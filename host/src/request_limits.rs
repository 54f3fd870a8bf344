//! Request size limits: the largest JSON (or other) request body and the largest
//! asset upload, configurable, answered 413 with a JSON error naming the body.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// How large request bodies may be, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Any request body but an asset or plugin upload (job submissions, PATCH, tokens...).
    pub request: usize,
    /// An asset or rendition upload (`PUT /api/v1/assets/...`).
    pub upload: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            request: 2 << 20,
            upload: crate::asset_routes::MAX_UPLOAD_BYTES,
        }
    }
}

/// Which limit a request falls under: `None` for plugin uploads, which have their own.
fn limit_for(limits: &BodyLimits, method: &Method, path: &str) -> Option<(usize, &'static str)> {
    if *method == Method::PUT && path.starts_with("/api/v1/assets/") {
        Some((limits.upload, "an asset upload"))
    } else if *method == Method::PUT && path.starts_with("/api/v1/plugins/") {
        None
    } else {
        Some((limits.request, "a request body"))
    }
}

fn too_large(what: &str, limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("body"),
        format!(
            "{what} may have at most {limit} bytes (see --max-request-bytes and --max-upload-bytes)"
        ),
    )
    .into_response()
}

/// Wraps `router` so that every request body is held to `limits`: a declared
/// `Content-Length` over the limit is refused before the body is read, a body
/// that grows over it is cut off, and either way the answer is a JSON 413.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>, limits: BodyLimits) -> Router<S> {
    router
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| enforce(limits, request, next),
        ))
        .layer(DefaultBodyLimit::max(limits.request.max(limits.upload)))
}

async fn enforce(limits: BodyLimits, mut request: Request, next: Next) -> Response {
    let Some((limit, what)) = limit_for(&limits, request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(what, limit);
    }
    request.extensions_mut().insert(limits);
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(what, limit);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_and_plugins_have_their_own_limits() {
        let limits = BodyLimits {
            request: 10,
            upload: 20,
        };
        assert_eq!(
            limit_for(&limits, &Method::PUT, "/api/v1/assets/a/b.png").map(|l| l.0),
            Some(20)
        );
        assert_eq!(
            limit_for(&limits, &Method::POST, "/api/v1/jobs").map(|l| l.0),
            Some(10)
        );
        assert_eq!(
            limit_for(&limits, &Method::GET, "/api/v1/assets/a/b.png").map(|l| l.0),
            Some(10)
        );
        assert_eq!(limit_for(&limits, &Method::PUT, "/api/v1/plugins/x"), None);
    }
}
