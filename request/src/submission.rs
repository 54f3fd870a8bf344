//! Job submission bodies, pure: checks the fields (type, path, excluded paths, params,
//! priority, names and texts) against a catalog of job types and returns what was asked for.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::paths;

/// What is wrong with a submission: the field (None for the body as a whole) and why.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{}: {message}", field.as_deref().unwrap_or("body"))]
pub struct Invalid {
    pub field: Option<String>,
    pub message: String,
}

impl Invalid {
    /// A problem with one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Invalid {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// A problem with the body as a whole.
    pub fn body(message: impl Into<String>) -> Self {
        Invalid {
            field: None,
            message: message.into(),
        }
    }
}

const SUBMIT_FIELDS: &[&str] = &[
    "type",
    "path",
    "excludedPaths",
    "params",
    "priority",
    "weight",
    "name",
    "description",
    "comments",
    "locale",
    "submitterEmail",
    "requireConfirmation",
    "runAt",
];

/// Parses a JSON body that must be an object with no fields but `allowed`.
pub fn object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::body(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(Invalid::body("the body must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Invalid::field(
            unknown,
            format!("unknown field; expected one of {}", allowed.join(", ")),
        ));
    }
    Ok(object)
}

/// A job priority: a 32-bit integer, or None when absent or null.
pub fn priority(value: Option<&Value>) -> Result<Option<i64>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(p) if (i32::MIN as i64..=i32::MAX as i64).contains(&p) => Ok(Some(p)),
            _ => Err(Invalid::field("priority", "must be a 32-bit integer")),
        },
        Some(_) => Err(Invalid::field("priority", "must be an integer")),
    }
}

/// A job's or tenant's weight: 1 to 1,000, or None when absent or null.
pub fn weight(value: Option<&Value>) -> Result<Option<i64>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(w) if (1..=1000).contains(&w) => Ok(Some(w)),
            _ => Err(Invalid::field(
                "weight",
                "must be an integer from 1 to 1000",
            )),
        },
        Some(_) => Err(Invalid::field(
            "weight",
            "must be an integer from 1 to 1000",
        )),
    }
}

/// The job types a submission may name, and how each checks its params.
pub trait JobTypes {
    /// One job type (for the host: its plugin).
    type JobType;
    /// The job type named `name`, if known.
    fn find(&self, name: &str) -> Option<Self::JobType>;
    /// The names of every known job type, for the error message.
    fn names(&self) -> Vec<String>;
    /// Checks `params` for `job_type`: Err((field, reason)) names the field at fault.
    fn check_params(job_type: &Self::JobType, params: &Value) -> Result<(), (String, String)>;
}

/// A checked submission body: the job type found in the catalog and the job's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission<T> {
    /// The `type` field as given.
    pub type_name: String,
    /// What the catalog found for it.
    pub job_type: T,
    pub path: String,
    pub excluded_paths: Vec<String>,
    pub params: Value,
    pub priority: i64,
    pub weight: i64,
    pub require_confirmation: bool,
    pub name: Option<String>,
    pub description: Option<String>,
    pub comments: Option<String>,
    pub locale: Option<String>,
    pub submitter_email: Option<String>,
    /// Not before this time (ms since the epoch); None: at once.
    pub run_at: Option<i64>,
}

/// Checks a submission body (JSON) against the job types of `catalog`.
pub fn parse<C: JobTypes>(body: &[u8], catalog: &C) -> Result<Submission<C::JobType>, Invalid> {
    let mut body = object(body, SUBMIT_FIELDS)?;
    let type_name = match body.remove("type") {
        None => return Err(Invalid::field("type", "is required")),
        Some(Value::String(t)) => t,
        Some(_) => return Err(Invalid::field("type", "must be a string")),
    };
    let Some(job_type) = catalog.find(&type_name) else {
        return Err(Invalid::field(
            "type",
            format!(
                "unknown job type {type_name:?}; known types: {}",
                catalog.names().join(", ")
            ),
        ));
    };
    let path = match body.remove("path") {
        None => return Err(Invalid::field("path", "is required")),
        Some(Value::String(p)) => p,
        Some(_) => return Err(Invalid::field("path", "must be a string")),
    };
    paths::validate(&path).map_err(|e| Invalid::field("path", format!("{path:?} {e}")))?;
    let excluded_paths = match body.remove("excludedPaths") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let field = format!("excludedPaths[{i}]");
                let Value::String(x) = item else {
                    return Err(Invalid::field(&field, "must be a string"));
                };
                paths::validate(&x).map_err(|e| Invalid::field(&field, format!("{x:?} {e}")))?;
                if x == path || !paths::is_under(&x, &path) {
                    return Err(Invalid::field(
                        &field,
                        format!("{x:?} must lie below path {path:?}"),
                    ));
                }
                out.push(x);
            }
            out
        }
        Some(_) => return Err(Invalid::field("excludedPaths", "must be an array of paths")),
    };
    let params = match body.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(Invalid::field("params", "must be a JSON object")),
    };
    if let Err((field, reason)) = C::check_params(&job_type, &params) {
        return Err(Invalid::field(&field, reason));
    }
    let priority = priority(body.remove("priority").as_ref())?.unwrap_or(0);
    let weight = weight(body.remove("weight").as_ref())?.unwrap_or(1);
    let text = |body: &mut Map<String, Value>,
                field: &str,
                max: usize|
     -> Result<Option<String>, Invalid> {
        match body.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s)),
            Some(Value::String(_)) => Err(Invalid::field(
                field,
                format!("must be at most {max} characters"),
            )),
            Some(_) => Err(Invalid::field(field, "must be a string")),
        }
    };
    let name = text(&mut body, "name", 200)?;
    let description = text(&mut body, "description", 4000)?;
    let comments = text(&mut body, "comments", 4000)?;
    let locale = text(&mut body, "locale", 35)?;
    if let Some(tag) = &locale
        && !valid_locale(tag)
    {
        return Err(Invalid::field(
            "locale",
            format!("{tag:?} is not a language tag such as en-US"),
        ));
    }
    let submitter_email = text(&mut body, "submitterEmail", 254)?;
    let run_at = match text(&mut body, "runAt", 64)? {
        None => None,
        Some(raw) => Some(
            humantime::parse_rfc3339_weak(&raw)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .ok_or_else(|| {
                    Invalid::field(
                        "runAt",
                        format!("{raw:?} is not a time like 2026-11-24T10:00:00Z"),
                    )
                })?,
        ),
    };
    if let Some(email) = &submitter_email
        && !valid_email(email)
    {
        return Err(Invalid::field(
            "submitterEmail",
            format!("{email:?} is not an email address"),
        ));
    }
    let require_confirmation = match body.remove("requireConfirmation") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(Invalid::field(
                "requireConfirmation",
                "must be true or false",
            ));
        }
    };
    Ok(Submission {
        type_name,
        job_type,
        path,
        excluded_paths,
        params,
        priority,
        weight,
        require_confirmation,
        name,
        description,
        comments,
        locale,
        submitter_email,
        run_at,
    })
}

/// A BCP 47-like language tag: `fr`, `en-US`, `zh-Hant-TW`.
pub fn valid_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or("");
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// One `@` with text on both sides, a dot in the domain, no spaces.
pub fn valid_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_and_emails() {
        for ok in ["fr", "fr-FR", "ko-KR", "zh-Hant-TW", "en-US"] {
            assert!(valid_locale(ok), "{ok}");
        }
        for bad in ["", "f", "french-FR", "fr_FR", "fr-", "12-FR"] {
            assert!(!valid_locale(bad), "{bad}");
        }
        assert!(valid_email("ana@example.com"));
        for bad in [
            "ana",
            "@example.com",
            "ana@example",
            "ana@.com",
            "a na@example.com",
            "a@b@c.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    /// Any job type, any params.
    struct Anything;

    impl JobTypes for Anything {
        type JobType = ();

        fn find(&self, _: &str) -> Option<()> {
            Some(())
        }

        fn names(&self) -> Vec<String> {
            vec![]
        }

        fn check_params(_: &(), _: &Value) -> Result<(), (String, String)> {
            Ok(())
        }
    }

    /// Found by the fuzzer: a number whose first parse was off by one ulp came back
    /// different once written and read again (params are stored as JSON text).
    #[test]
    fn params_read_back_the_same_numbers() {
        let digits = "3".repeat(52);
        let body = format!(r#"{{"type":"t","path":"/a","params":{{"x":-{digits}2,"y":0.1}}}}"#);
        let first = parse(body.as_bytes(), &Anything).unwrap();
        let written = serde_json::json!({"type": "t", "path": "/a", "params": first.params});
        let again = parse(written.to_string().as_bytes(), &Anything).unwrap();
        assert_eq!(again.params, first.params);
        let exact: f64 = format!("-{digits}2").parse().unwrap();
        assert_eq!(first.params["x"].as_f64(), Some(exact));
    }
}
