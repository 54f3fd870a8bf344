//! A small typed HTTP client over the wasmq API for the command line: jobs,
//! job actions, logs and plugins, with the API's errors kept apart by kind.

use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

use super::exitcode;

/// A client of one server, authenticated with one token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

/// Why a call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API refused: its status and its `{"error": {field, message, state}}`.
    #[error("{}", describe_api_error(*.status, .field.as_deref(), .message, .state.as_deref()))]
    Api {
        status: u16,
        field: Option<String>,
        message: String,
        /// The job's state, on a 409 for an action its state forbids.
        state: Option<String>,
    },
    /// No answer at all.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// An answer that is not the API's JSON.
    #[error("{url} answered HTTP {status} with something that is not the API's JSON: {reason}")]
    BadAnswer {
        url: String,
        status: u16,
        reason: String,
    },
}

impl ClientError {
    /// The exit code a command ends with after this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Api { status, .. } => exitcode::for_status(*status),
            ClientError::Unreachable { .. } | ClientError::BadAnswer { .. } => {
                exitcode::UNAVAILABLE
            }
        }
    }
}

fn describe_api_error(
    status: u16,
    field: Option<&str>,
    message: &str,
    state: Option<&str>,
) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut text = format!("HTTP {status} {reason}: ");
    if let Some(field) = field {
        text.push_str(&format!("{field}: "));
    }
    text.push_str(message);
    if let Some(state) = state {
        text.push_str(&format!(" (the job is {state})"));
    }
    text
}

/// The error for a non-2xx answer with body `text`: the API's
/// `{"error": {"field", "message", "state"}}`, or the text itself.
pub fn api_error(status: u16, text: &str) -> ClientError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let error = &body["error"];
    let string = |v: &Value| v.as_str().map(str::to_string);
    let message = string(&error["message"])
        .or_else(|| string(error))
        .unwrap_or_else(|| {
            let t = text.trim();
            if t.is_empty() {
                "(no message)".to_string()
            } else {
                t.chars().take(500).collect()
            }
        });
    ClientError::Api {
        status,
        field: string(&error["field"]),
        message,
        state: string(&error["state"]),
    }
}

/// The text of an error with its causes, as reqwest hides the useful part in them.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Client {
    /// A client of `server` (an http(s) URL) with `token`.
    pub fn new(server: &str, token: &str) -> Result<Client, ClientError> {
        let base = Url::parse(server).map_err(|e| ClientError::Unreachable {
            url: server.to_string(),
            reason: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A small job is answered once it ends, within the server's sync wait (60 s).
            .timeout(Duration::from_secs(180))
            .user_agent(concat!("wasmq-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: server.to_string(),
                reason: with_causes(&e),
            })?;
        Ok(Client {
            http,
            base,
            token: token.to_string(),
        })
    }

    /// The URL of `segments` under the server's base, each one escaped.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http URL has path segments")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Sends a request and reads the JSON answer (Null for an empty one) with its status.
    async fn call(
        &self,
        method: Method,
        url: Url,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(u16, Value), ClientError> {
        let request = build(
            self.http
                .request(method, url.clone())
                .bearer_auth(&self.token),
        );
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            reason: with_causes(&e),
        })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                reason: with_causes(&e),
            })?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &text));
        }
        if text.trim().is_empty() {
            return Ok((status, Value::Null));
        }
        let value = serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer {
            url: url.to_string(),
            status,
            reason: e.to_string(),
        })?;
        Ok((status, value))
    }

    /// `POST /api/v1/jobs`: the status (202 queued, 200 ran within the request) and the job.
    pub async fn submit(&self, body: &Value) -> Result<(u16, Value), ClientError> {
        let url = self.url(&["api", "v1", "jobs"]);
        self.call(Method::POST, url, |r| r.json(body)).await
    }

    /// `GET /api/v1/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<Value, ClientError> {
        let url = self.url(&["api", "v1", "jobs", id]);
        Ok(self.call(Method::GET, url, |r| r).await?.1)
    }

    /// `GET /api/v1/jobs?...` with the given query pairs.
    pub async fn jobs(&self, query: &[(&str, String)]) -> Result<Value, ClientError> {
        let url = self.url(&["api", "v1", "jobs"]);
        Ok(self.call(Method::GET, url, |r| r.query(query)).await?.1)
    }

    /// `POST /api/v1/jobs/{id}/{action}` (cancel, pause, resume, restart, confirm): the job.
    pub async fn act(&self, id: &str, action: &str) -> Result<Value, ClientError> {
        let url = self.url(&["api", "v1", "jobs", id, action]);
        Ok(self.call(Method::POST, url, |r| r).await?.1)
    }

    /// `DELETE /api/v1/jobs/{id}`.
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        let url = self.url(&["api", "v1", "jobs", id]);
        self.call(Method::DELETE, url, |r| r).await.map(|_| ())
    }

    /// `GET /api/v1/jobs/{id}/logs` with `offset`/`limit` or `tail`:
    /// `{lines, offset, limit, total, hasMore}`.
    pub async fn logs(&self, id: &str, query: &[(&str, u64)]) -> Result<Value, ClientError> {
        let url = self.url(&["api", "v1", "jobs", id, "logs"]);
        Ok(self.call(Method::GET, url, |r| r.query(query)).await?.1)
    }

    /// `GET /api/v1/plugins`: `{plugins, rejected}`.
    pub async fn plugins(&self) -> Result<Value, ClientError> {
        let url = self.url(&["api", "v1", "plugins"]);
        Ok(self.call(Method::GET, url, |r| r).await?.1)
    }

    /// `PUT /api/v1/plugins/{name}` with a component: the status (201
    /// installed, 200 unchanged) and the plugin.
    pub async fn upload_plugin(
        &self,
        name: &str,
        component: Vec<u8>,
    ) -> Result<(u16, Value), ClientError> {
        let url = self.url(&["api", "v1", "plugins", name]);
        self.call(Method::PUT, url, |r| {
            r.header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(component)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_field_message_and_state() {
        let e = api_error(
            409,
            r#"{"error":{"field":null,"message":"cannot cancel a Complete job","state":"Complete"}}"#,
        );
        assert_eq!(e.exit_code(), exitcode::CONFLICT);
        assert_eq!(
            e.to_string(),
            "HTTP 409 Conflict: cannot cancel a Complete job (the job is Complete)"
        );
        let e = api_error(400, r#"{"error":{"field":"params","message":"is bad"}}"#);
        assert_eq!(e.exit_code(), exitcode::USAGE);
        assert_eq!(e.to_string(), "HTTP 400 Bad Request: params: is bad");
    }

    #[test]
    fn answers_that_are_not_the_apis_still_say_something() {
        let e = api_error(502, "<html>bad gateway</html>");
        assert_eq!(e.exit_code(), exitcode::UNAVAILABLE);
        assert_eq!(
            e.to_string(),
            "HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
        let e = api_error(401, "");
        assert_eq!(e.exit_code(), exitcode::AUTH);
        assert_eq!(e.to_string(), "HTTP 401 Unauthorized: (no message)");
        let e = api_error(404, r#"{"error":"no route"}"#);
        assert_eq!(e.exit_code(), exitcode::NOT_FOUND);
        assert!(e.to_string().ends_with("no route"), "{e}");
    }

    #[test]
    fn urls_escape_each_segment_under_the_base() {
        let c = Client::new("http://h:1/prefix/", "t").unwrap();
        assert_eq!(
            c.url(&["api", "v1", "jobs", "a/b c"]).as_str(),
            "http://h:1/prefix/api/v1/jobs/a%2Fb%20c"
        );
        let c = Client::new("http://h:1", "t").unwrap();
        assert_eq!(
            c.url(&["api", "v1", "plugins"]).as_str(),
            "http://h:1/api/v1/plugins"
        );
    }
}
