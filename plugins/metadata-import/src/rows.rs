//! The import's pure core: turns the records of a DAM metadata CSV into one
//! task input per row, and a task input back into typed properties.
//!
//! Rows are numbered as a spreadsheet shows them: the header is row 1 (blank
//! lines are not rows). When a row starts on another line of the file (an
//! earlier cell spans lines), messages name the line too. An empty cell gives
//! no value: merge leaves that property alone, replace removes it.

use damcsv::{Column, Value};
use serde::{Deserialize, Serialize};

/// What a task gets: its row and the row's non-empty cells by column header,
/// or why the row cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowInput {
    /// How messages name the row: `row 17` or `row 17 (line 19)`.
    pub label: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The task for one row: the asset it is about (`None` when the row names no
/// valid asset path) and its input.
#[derive(Debug, Clone, PartialEq)]
pub struct RowTask {
    pub path: Option<String>,
    pub input: RowInput,
}

/// Largest task input the host takes.
const MAX_INPUT: usize = 64 * 1024;

/// The task for the record `fields` that is row `row` and starts on `line`.
pub fn row_task(row: usize, line: usize, columns: &[Column], fields: &[String]) -> RowTask {
    let label = if row == line {
        format!("row {row}")
    } else {
        format!("row {row} (line {line})")
    };
    let fail = |path: Option<String>, error: String| RowTask {
        path,
        input: RowInput {
            label: label.clone(),
            cells: Vec::new(),
            error: Some(error),
        },
    };
    let path = fields.first().map(String::as_str).unwrap_or_default();
    if !is_asset_path(path) {
        return fail(
            None,
            format!("{label}: assetPath {path:?} is not an absolute asset path"),
        );
    }
    let path = Some(path.to_string());
    if fields.len() != columns.len() + 1 {
        return fail(
            path,
            format!(
                "{label}: {} fields, but the header has {}",
                fields.len(),
                columns.len() + 1
            ),
        );
    }
    let cells: Vec<(String, String)> = columns
        .iter()
        .zip(&fields[1..])
        .filter(|(_, cell)| !cell.is_empty())
        .map(|(column, cell)| (column.header(), cell.clone()))
        .collect();
    let size: usize = cells.iter().map(|(h, c)| h.len() + c.len() + 8).sum();
    if size > MAX_INPUT - 512 {
        return fail(
            path,
            format!("{label}: the row is larger than {} KiB", MAX_INPUT / 1024),
        );
    }
    RowTask {
        path,
        input: RowInput {
            label,
            cells,
            error: None,
        },
    }
}

/// The typed properties of a row, or the first cell that does not parse
/// (`row 17, column dc:created: "24/11/2026" is not an ISO 8601 date ...`).
pub fn properties(input: &RowInput) -> Result<Vec<(String, Vec<Value>)>, String> {
    if let Some(error) = &input.error {
        return Err(error.clone());
    }
    input
        .cells
        .iter()
        .map(|(header, cell)| {
            let column = Column::parse(header)
                .map_err(|e| format!("{}, column {header}: {e}", input.label))?;
            let values = damcsv::parse_cell(&column, cell)
                .map_err(|e| format!("{}, column {}: {e}", input.label, column.name))?;
            Ok((column.name, values))
        })
        .collect()
}

/// True for a path the host accepts: absolute, normalized (no empty, `.` or
/// `..` segments, no trailing `/`), no control characters or backslashes,
/// at most 1,024 bytes.
pub fn is_asset_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && path.len() <= 1024
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path[1..]
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fields: &[&str]) -> Vec<Column> {
        let fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        damcsv::parse_header(&fields).unwrap()
    }

    fn strings(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_good_row_keeps_its_non_empty_cells_and_parses() {
        let columns = header(&[
            "assetPath",
            "dc:title {{ String }}",
            "dc:subject {{ String : multi }}",
            "tiff:ImageWidth {{ Long }}",
        ]);
        let task = row_task(
            2,
            2,
            &columns,
            &strings(&["/content/dam/a.jpg", "Sea", "", "4032"]),
        );
        assert_eq!(task.path.as_deref(), Some("/content/dam/a.jpg"));
        assert_eq!(task.input.cells.len(), 2, "the empty cell is left out");
        let json = serde_json::to_vec(&task.input).unwrap();
        let input: RowInput = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            properties(&input).unwrap(),
            vec![
                ("dc:title".into(), vec![Value::String("Sea".into())]),
                ("tiff:ImageWidth".into(), vec![Value::Long(4032)]),
            ]
        );
    }

    #[test]
    fn a_bad_value_names_row_and_column() {
        let columns = header(&["assetPath", "dc:created {{ Date }}"]);
        let task = row_task(17, 17, &columns, &strings(&["/a", "24/11/2026"]));
        let error = properties(&task.input).unwrap_err();
        assert!(
            error.starts_with("row 17, column dc:created: \"24/11/2026\" is not an ISO 8601 date"),
            "{error}"
        );
        let task = row_task(3, 5, &columns, &strings(&["/a", "x"]));
        assert!(
            properties(&task.input)
                .unwrap_err()
                .starts_with("row 3 (line 5), column")
        );
    }

    #[test]
    fn rows_that_cannot_be_imported_say_why() {
        let columns = header(&["assetPath", "a"]);
        let relative = row_task(4, 4, &columns, &strings(&["a.jpg", "x"]));
        assert_eq!(relative.path, None);
        assert!(
            properties(&relative.input)
                .unwrap_err()
                .contains("row 4: assetPath \"a.jpg\" is not an absolute asset path")
        );
        let short = row_task(5, 5, &columns, &strings(&["/a"]));
        assert_eq!(short.path.as_deref(), Some("/a"));
        assert_eq!(
            properties(&short.input).unwrap_err(),
            "row 5: 1 fields, but the header has 2"
        );
        let huge = row_task(6, 6, &columns, &strings(&["/a", &"x".repeat(70_000)]));
        assert!(
            properties(&huge.input)
                .unwrap_err()
                .contains("larger than 64 KiB")
        );
    }

    #[test]
    fn asset_paths_follow_the_host_rules() {
        for ok in ["/content/dam/a.jpg", "/a", "/a b/ünï.png"] {
            assert!(is_asset_path(ok), "{ok}");
        }
        for bad in [
            "", "/", "a", "/a/", "/a//b", "/a/../b", "/a/./b", "/a\\b", "/a\tb",
        ] {
            assert!(!is_asset_path(bad), "{bad}");
        }
    }
}
