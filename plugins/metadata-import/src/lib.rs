//! The `metadata-import` job type: reads a DAM metadata CSV (plugins/damcsv)
//! from the asset store and sets each row's metadata on the asset it names.
//!
//! Params: `csv` (required; the CSV's asset path, a target so it may lie
//! outside the job's path; upload it first with `PUT /api/v1/assets/{path}`),
//! `mode` (`merge`, the default, keeps the properties a row does not give;
//! `replace` removes them), `batchSize` (1-1000, default 500: how many rows
//! `plan` hands the host per add-tasks call; every row is still one task and
//! one item of the report, so it bounds planning memory and nothing else).
//!
//! A CSV that is not UTF-8, not well-formed RFC 4180 or has a bad header fails
//! the job at once (invalid input naming line and column). A row that names no
//! asset, an asset outside the job's path (or in an excluded path), or holds a
//! value that does not parse fails as its own item: the task's path is the
//! row's assetPath (the CSV's path when assetPath is not a path at all) and the
//! message names the row, e.g. `row 17, column dc:created: ... is not an ISO 8601 date`.

mod rows;

use serde::Deserialize;
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobType, MetaValue, Property, Task, TaskOutcome, assets,
    host, metadata,
};

use rows::RowInput;

struct Import;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Merge,
    Replace,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    csv: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "default_batch")]
    batch_size: usize,
}

fn default_batch() -> usize {
    500
}

impl JobType for Import {
    fn describe() -> Descriptor {
        Descriptor::new(
            "metadata-import",
            env!("CARGO_PKG_VERSION"),
            &["metadata-import"],
            Capabilities::READ | Capabilities::METADATA,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["csv"],
            "properties": {
                "csv": {
                    "type": "string",
                    "x-wasmq-target": true,
                    "description": "Asset path of the metadata CSV to import (upload it with PUT /api/v1/assets/{path}); may lie outside the job's path"
                },
                "mode": {
                    "enum": ["merge", "replace"],
                    "default": "merge",
                    "description": "merge: keep the properties a row does not give; replace: remove them"
                },
                "batchSize": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1000,
                    "default": 500,
                    "description": "Rows planned per add-tasks call; each row stays one task and one report item"
                }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        let params: Params = job.params()?;
        let csv = &params.csv;
        let data = assets::read(csv).map_err(|e| match e.code {
            404 => Error::invalid_input(format!("no CSV at {csv}")),
            _ => e,
        })?;
        let text = String::from_utf8(data).map_err(|e| {
            Error::invalid_input(format!(
                "{csv} is not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let bad = |e: damcsv::Error| Error::invalid_input(format!("{csv}: {e}"));
        // The whole file is checked before the first task is planned.
        let mut records = damcsv::iter_records(&text);
        let (_, header) = records
            .next()
            .ok_or_else(|| Error::invalid_input(format!("{csv} is empty: no header")))?
            .map_err(bad)?;
        let columns = damcsv::parse_header(&header).map_err(bad)?;
        for record in records {
            record.map_err(bad)?;
        }

        let mut batch = Vec::with_capacity(params.batch_size);
        let mut planned = 0u64;
        for (index, record) in damcsv::iter_records(&text).enumerate().skip(1) {
            let (line, fields) = record.map_err(bad)?;
            let row = rows::row_task(index + 1, line, &columns, &fields);
            batch.push(Task {
                path: row.path.unwrap_or_else(|| csv.clone()),
                input: serde_json::to_vec(&row.input).expect("input serializes"),
            });
            planned += 1;
            if batch.len() >= params.batch_size {
                host::add_tasks(&std::mem::take(&mut batch))?;
                host::progress(&format!("planned {planned} rows"));
            }
        }
        if !batch.is_empty() {
            host::add_tasks(&batch)?;
        }
        job.log(&format!(
            "planned {planned} rows of {csv} ({} columns) under {}",
            columns.len(),
            job.info.path
        ));
        Ok(())
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let params: Params = job.params()?;
        let input: RowInput = serde_json::from_slice(&task.input)
            .map_err(|e| Error::permanent(400, format!("bad task input: {e}")))?;
        if let Some(error) = input.error {
            return Err(Error::permanent(400, error));
        }
        let label = &input.label;
        if !job.in_scope(&task.path) {
            return Err(Error::permanent(
                403,
                format!(
                    "{label}: {} is outside this job's path {} (or excluded)",
                    task.path, job.info.path
                ),
            ));
        }
        let properties: Vec<Property> = rows::properties(&input)
            .map_err(|e| Error::permanent(400, e))?
            .into_iter()
            .map(|(name, values)| Property {
                name,
                values: values.into_iter().map(meta_value).collect(),
            })
            .collect();
        let Some(stat) = assets::stat(&task.path)? else {
            return Err(Error::permanent(
                404,
                format!("{label}: no asset at {}", task.path),
            ));
        };
        let replace = params.mode == Mode::Replace;
        metadata::set(&task.path, &properties, replace).map_err(|e| Error {
            message: format!("{label}: {}", e.message),
            ..e
        })?;
        let mode = if replace { "replace" } else { "merge" };
        Ok(TaskOutcome::ok(format!(
            "{label}: set {} properties ({mode})",
            properties.len()
        ))
        .with_etag(stat.etag))
    }
}

fn meta_value(value: damcsv::Value) -> MetaValue {
    match value {
        damcsv::Value::String(s) => MetaValue::Text(s),
        damcsv::Value::Long(n) => MetaValue::Long(n),
        damcsv::Value::Double(d) => MetaValue::Double(d),
        damcsv::Value::Boolean(b) => MetaValue::Boolean(b),
        damcsv::Value::Date(s) => MetaValue::Date(s),
    }
}

wasmq_sdk::export!(Import);
