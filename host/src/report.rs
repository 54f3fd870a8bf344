//! The per-item job report as CSV: one row per task (path, etag, status, HTTP
//! status code, message), with the quoting of RFC 4180. Pure formatting, no I/O.

use crate::store::TaskRow;

/// The report's header row.
pub const HEADER: &str = "path,etag,status,httpStatusCode,message";

/// One CSV field, quoted when it holds a comma, a quote or a line break.
pub fn field(value: &str) -> String {
    // A leading =, +, - or @ would make spreadsheets run the cell as a formula.
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The report line of one task, ending in CRLF.
pub fn row(task: &TaskRow) -> String {
    let code = task.code.map(|c| c.to_string()).unwrap_or_default();
    format!(
        "{},{},{},{},{}\r\n",
        field(&task.path),
        field(task.etag.as_deref().unwrap_or("")),
        field(&task.state),
        code,
        field(task.message.as_deref().unwrap_or("")),
    )
}

/// The whole report: the header and one row per task.
pub fn csv<'a>(tasks: impl IntoIterator<Item = &'a TaskRow>) -> String {
    let mut out = format!("{HEADER}\r\n");
    for task in tasks {
        out.push_str(&row(task));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(path: &str, message: &str) -> TaskRow {
        TaskRow {
            seq: 1,
            path: path.into(),
            state: "failed".into(),
            code: Some(409),
            message: Some(message.into()),
            etag: None,
            attempts: 1,
            fuel_used: 0,
            cpu_ns: 0,
            started_at: None,
            finished_at: None,
            node: None,
        }
    }

    #[test]
    fn plain_fields_stay_bare() {
        assert_eq!(
            row(&task("/content/a.png", "referenced")),
            "/content/a.png,,failed,409,referenced\r\n"
        );
    }

    #[test]
    fn commas_quotes_and_newlines_are_quoted() {
        assert_eq!(
            row(&task("/content/a,b.png", "said \"no\"\nthen left")),
            "\"/content/a,b.png\",,failed,409,\"said \"\"no\"\"\nthen left\"\r\n"
        );
    }

    #[test]
    fn a_report_has_a_header_and_a_row_per_task() {
        let tasks = [task("/a", "x"), task("/b", "y")];
        let text = csv(&tasks);
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("path,etag,status,httpStatusCode,message\r\n"));
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("-1,2"), "\"'-1,2\"");
    }
}
