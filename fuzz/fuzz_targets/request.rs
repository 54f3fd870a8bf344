//! Fuzzes the pure request checks: job submission bodies (no panic; what is accepted
//! obeys every rule and reads back the same when written again) and asset path scoping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use wasmq_request::paths::{self, Scope};
use wasmq_request::submission::{self, JobTypes, Submission, valid_email, valid_locale};

/// Two job types like the host's: `delete` takes any params, `move` needs a destination path.
struct Catalog;

impl JobTypes for Catalog {
    type JobType = &'static str;

    fn find(&self, name: &str) -> Option<&'static str> {
        ["delete", "move"].into_iter().find(|t| *t == name)
    }

    fn names(&self) -> Vec<String> {
        vec!["delete".into(), "move".into()]
    }

    fn check_params(job_type: &&'static str, params: &Value) -> Result<(), (String, String)> {
        if *job_type != "move" {
            return Ok(());
        }
        let field = || "params.destination".to_string();
        match params.get("destination") {
            Some(Value::String(d)) => paths::validate(d).map_err(|e| (field(), e.to_string())),
            _ => Err((field(), "is required".into())),
        }
    }
}

/// The submission written back as a JSON body.
fn body(s: &Submission<&'static str>) -> Vec<u8> {
    let mut o = Map::new();
    o.insert("type".into(), json!(s.type_name));
    o.insert("path".into(), json!(s.path));
    o.insert("excludedPaths".into(), json!(s.excluded_paths));
    o.insert("params".into(), s.params.clone());
    o.insert("priority".into(), json!(s.priority));
    o.insert("weight".into(), json!(s.weight));
    o.insert("requireConfirmation".into(), json!(s.require_confirmation));
    o.insert("name".into(), json!(s.name));
    o.insert("description".into(), json!(s.description));
    o.insert("comments".into(), json!(s.comments));
    o.insert("locale".into(), json!(s.locale));
    o.insert("submitterEmail".into(), json!(s.submitter_email));
    let run_at = s.run_at.map(|ms| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
        humantime::format_rfc3339_millis(t).to_string()
    });
    o.insert("runAt".into(), json!(run_at));
    serde_json::to_vec(&Value::Object(o)).expect("JSON")
}

fn check_submission(data: &[u8]) {
    let Ok(s) = submission::parse(data, &Catalog) else {
        return;
    };
    assert!(paths::validate(&s.path).is_ok(), "{s:?}");
    for x in &s.excluded_paths {
        assert!(paths::validate(x).is_ok() && x != &s.path && paths::is_under(x, &s.path));
    }
    assert!(s.params.is_object());
    assert!(i32::try_from(s.priority).is_ok());
    assert!((1..=1000).contains(&s.weight));
    assert!(s.name.as_ref().is_none_or(|n| n.chars().count() <= 200));
    assert!(s.locale.as_deref().is_none_or(valid_locale));
    assert!(s.submitter_email.as_deref().is_none_or(valid_email));
    assert!(s.run_at.is_none_or(|ms| ms >= 0));
    let again = submission::parse(&body(&s), &Catalog).expect("a written submission parses");
    assert_eq!(again, s);
}

/// Paths: the text's first line is a folder, the second a path to place against it.
fn check_paths(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (folder, path) = text.split_once('\n').unwrap_or((text, "/"));
    if paths::validate(folder).is_err() || paths::validate(path).is_err() {
        return;
    }
    // Strictly below `folder` exactly when inside its key range; the root's range
    // also holds "/" itself (descendants_range's one edge, left as it is).
    if folder == "/" && path == "/" {
        return;
    }
    let (start, end) = paths::descendants_range(folder);
    let below = path != folder && paths::is_under(path, folder);
    assert_eq!(
        below,
        path >= start.as_str() && path < end.as_str(),
        "{folder:?} {path:?}"
    );
    let scope = Scope {
        root: folder.to_string(),
        excluded: vec![],
        targets: vec![],
    };
    assert_eq!(scope.contains(path), paths::is_under(path, folder));
    assert!(paths::is_under(path, "/") && paths::is_under(folder, folder));
}

fuzz_target!(|data: &[u8]| {
    check_submission(data);
    check_paths(data);
});
