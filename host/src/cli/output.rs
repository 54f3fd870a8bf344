//! What the client commands print for people: tables of jobs and plugins, one
//! job's details, one-line summaries. Pure text from the API's JSON.

use serde_json::Value;

/// Left-aligned columns two spaces apart, a header row first, no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i] - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A value as a cell: strings bare, null as `-`, the rest as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 timestamp the API wrote, shorter: `2026-11-26 19:10:21Z`.
pub fn time(value: &Value) -> String {
    match value.as_str() {
        Some(t) if t.len() >= 19 => format!("{} {}Z", &t[..10], &t[11..19]),
        _ => text(value),
    }
}

/// A percentage the API gave (one decimal at most): `40` or `33.3`.
pub fn percent(value: &Value) -> String {
    let p = value.as_f64().unwrap_or(0.0);
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// A job's progress in a cell: `12/30 (40%)`.
pub fn progress(job: &Value) -> String {
    let p = &job["progress"];
    format!(
        "{}/{} ({}%)",
        p["done"].as_u64().unwrap_or(0),
        p["total"].as_u64().unwrap_or(0),
        percent(&p["percent"])
    )
}

/// An ETA the API gave (`{"value": N, "unit": "seconds"}`) as `1m 05s`; None when it has none.
pub fn eta(value: &Value) -> Option<String> {
    let seconds = value["value"].as_u64()?;
    Some(if seconds >= 3600 {
        format!("{}h {:02}m", seconds / 3600, seconds % 3600 / 60)
    } else if seconds >= 60 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    })
}

/// `GET /api/v1/jobs` as a table, with a count line.
pub fn jobs_table(answer: &Value) -> String {
    let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                text(&j["id"]),
                text(&j["name"]),
                text(&j["type"]),
                text(&j["state"]),
                progress(j),
                text(&j["createdBy"]),
                time(&j["startedAt"]),
                time(&j["completedAt"]),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "NAME",
            "TYPE",
            "STATE",
            "PROGRESS",
            "SUBMITTER",
            "STARTED",
            "COMPLETED",
        ],
        &rows,
    );
    let total = answer["total"].as_u64().unwrap_or(jobs.len() as u64);
    let offset = answer["offset"].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "{} of {total} jobs{}\n",
        jobs.len(),
        if offset > 0 {
            format!(" from {offset}")
        } else {
            String::new()
        }
    ));
    out
}

/// One job, a field a line.
pub fn job_details(job: &Value) -> String {
    let actions: Vec<&str> = [
        ("cancellable", "cancel"),
        ("pausable", "pause"),
        ("resumable", "resume"),
        ("restartable", "retry"),
        ("confirmable", "confirm"),
        ("deletable", "delete"),
    ]
    .iter()
    .filter(|(key, _)| job[*key] == true)
    .map(|(_, action)| *action)
    .collect();
    let excluded: Vec<String> = job["excludedPaths"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let c = &job["counts"];
    let plugin = &job["plugin"];
    let mut rows = vec![
        ("id", text(&job["id"])),
        ("name", text(&job["name"])),
        ("type", text(&job["type"])),
        ("state", text(&job["state"])),
        ("path", text(&job["path"])),
        (
            "excluded",
            if excluded.is_empty() {
                "-".into()
            } else {
                excluded.join(", ")
            },
        ),
        ("params", job["params"].to_string()),
        ("priority", text(&job["priority"])),
        ("description", text(&job["description"])),
        ("progress", progress(job)),
        (
            "eta",
            eta(&job["progress"]["eta"]).unwrap_or_else(|| "-".into()),
        ),
        ("message", text(&job["progress"]["message"])),
        (
            "tasks",
            format!(
                "{} succeeded, {} failed of {}",
                c["succeeded"].as_u64().unwrap_or(0),
                c["failed"].as_u64().unwrap_or(0),
                c["total"].as_u64().unwrap_or(0)
            ),
        ),
        ("submitter", text(&job["createdBy"])),
        ("server", text(&job["serverName"])),
        (
            "plugin",
            format!("{} {}", text(&plugin["name"]), text(&plugin["version"])),
        ),
        ("fuel", text(&job["fuelUsed"])),
        ("created", time(&job["createdAt"])),
        ("started", time(&job["startedAt"])),
        ("completed", time(&job["completedAt"])),
    ];
    if !job["error"].is_null() {
        rows.push(("error", text(&job["error"])));
    }
    rows.push((
        "actions",
        if actions.is_empty() {
            "-".into()
        } else {
            actions.join(", ")
        },
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// A job that has ended, in one line: `job ID Complete: 30 of 30 tasks succeeded, 0 failed, fuel N`.
pub fn summary(job: &Value) -> String {
    let c = &job["counts"];
    let mut line = format!(
        "job {} {}: {} of {} tasks succeeded, {} failed, fuel {}",
        text(&job["id"]),
        text(&job["state"]),
        c["succeeded"].as_u64().unwrap_or(0),
        c["total"].as_u64().unwrap_or(0),
        c["failed"].as_u64().unwrap_or(0),
        text(&job["fuelUsed"])
    );
    if !job["error"].is_null() {
        line.push_str(&format!("; error: {}", text(&job["error"])));
    }
    line
}

/// `GET /api/v1/plugins` as a table of versions, then the refused files with reasons.
pub fn plugins_table(answer: &Value) -> String {
    let plugins = answer["plugins"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = plugins
        .iter()
        .map(|p| {
            let types: Vec<String> = p["jobTypes"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            let digest = text(&p["digest"]);
            vec![
                text(&p["name"]),
                text(&p["version"]),
                text(&p["status"]),
                types.join(","),
                digest.chars().take(12).collect(),
                time(&p["loadedAt"]),
            ]
        })
        .collect();
    let mut out = table(
        &["NAME", "VERSION", "STATUS", "JOB TYPES", "DIGEST", "LOADED"],
        &rows,
    );
    for r in answer["rejected"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "rejected {}: {}\n",
            text(&r["file"]),
            text(&r["reason"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_by_characters() {
        let rows = vec![
            vec!["a".to_string(), "état".to_string(), "x".to_string()],
            vec!["long-id".to_string(), "b".to_string(), String::new()],
        ];
        assert_eq!(
            table(&["ID", "NAME", "Z"], &rows),
            "ID       NAME  Z\na        état  x\nlong-id  b\n"
        );
    }

    #[test]
    fn cells_shorten_times_and_percentages() {
        assert_eq!(
            time(&json!("2026-11-26T19:10:21.123Z")),
            "2026-11-26 19:10:21Z"
        );
        assert_eq!(time(&Value::Null), "-");
        assert_eq!(percent(&json!(40.0)), "40");
        assert_eq!(percent(&json!(33.3)), "33.3");
        assert_eq!(eta(&json!({"value": 5, "unit": "seconds"})).unwrap(), "5s");
        assert_eq!(
            eta(&json!({"value": 65, "unit": "seconds"})).unwrap(),
            "1m 05s"
        );
        assert_eq!(
            eta(&json!({"value": 3720, "unit": "seconds"})).unwrap(),
            "1h 02m"
        );
        assert_eq!(eta(&Value::Null), None);
    }

    fn job(state: &str) -> Value {
        json!({
            "id": "0193-ab", "name": null, "type": "chaos", "state": state,
            "path": "/content/a", "excludedPaths": ["/content/a/keep"], "params": {"tasks": ["ok"]},
            "counts": {"succeeded": 3, "failed": 1, "total": 10},
            "progress": {"done": 4, "total": 10, "percent": 40.0, "message": "halfway",
                         "eta": {"value": 7, "unit": "seconds"}},
            "createdBy": "ci", "startedAt": "2026-11-26T19:10:21.123Z", "completedAt": null,
            "fuelUsed": 1234, "error": null, "plugin": {"name": "chaos", "version": "0.1.0"},
            "cancellable": true, "pausable": true, "deletable": false, "restartable": false
        })
    }

    #[test]
    fn a_jobs_table_has_one_row_per_job_and_a_count() {
        let answer = json!({"jobs": [job("Active")], "total": 7, "offset": 0});
        let out = jobs_table(&answer);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("ID  "), "{out}");
        for cell in [
            "0193-ab",
            "chaos",
            "Active",
            "4/10 (40%)",
            "ci",
            "2026-11-26 19:10:21Z",
        ] {
            assert!(lines[1].contains(cell), "{cell} in {out}");
        }
        assert_eq!(lines[2], "1 of 7 jobs");
    }

    #[test]
    fn details_name_the_allowed_actions_and_the_error() {
        let out = job_details(&job("Active"));
        assert!(out.contains("actions      cancel, pause\n"), "{out}");
        assert!(out.contains("eta          7s\n"), "{out}");
        assert!(out.contains("excluded     /content/a/keep\n"), "{out}");
        assert!(!out.contains("error"), "{out}");
        let mut failed = job("Failed");
        failed["error"] = json!("too many failures");
        assert!(job_details(&failed).contains("error        too many failures\n"));
        assert_eq!(
            summary(&failed),
            "job 0193-ab Failed: 3 of 10 tasks succeeded, 1 failed, fuel 1234; error: too many failures"
        );
    }

    #[test]
    fn plugins_list_versions_and_refusals() {
        let answer = json!({
            "plugins": [{"name": "chaos", "version": "0.1.0", "status": "active",
                          "jobTypes": ["chaos"], "digest": "0123456789abcdef0123",
                          "loadedAt": "2026-11-26T19:10:21.123Z"}],
            "rejected": [{"file": "/p/bad.wasm", "reason": "not a component"}]
        });
        let out = plugins_table(&answer);
        assert!(
            out.lines().nth(1).unwrap().contains("0123456789ab  2026"),
            "{out}"
        );
        assert!(!out.contains("0123456789abc"), "{out}");
        assert!(
            out.ends_with("rejected /p/bad.wasm: not a component\n"),
            "{out}"
        );
    }
}
