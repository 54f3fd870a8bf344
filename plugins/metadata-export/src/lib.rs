//! The `metadata-export` job type: writes the metadata of the assets under the
//! job's path as a DAM metadata CSV (plugins/damcsv) to the asset `target`.
//!
//! Params: `target` (required; the CSV's asset path, a target so it may lie
//! outside the job's path: a default inside the exported folder would export
//! itself), `properties` (the columns, in order; default: every property found,
//! by name), `recursive` (default true).
//!
//! Built to scale without one giant call: `plan` creates the target (an empty
//! CSV) if it is missing and plans one task per 500 assets in path order; each
//! task reads its assets' metadata and writes the rows as a part rendition of
//! the target (`metadata-export-part-<job>-<n>.jsonl`), so a task that runs
//! again rewrites its own part; `finish` reads the parts twice (the union of
//! the columns, then the rows), writes the CSV to `target` and deletes the
//! parts. The CSV must fit the memory limit of the `finish` call. Assets gone
//! since `plan` are left out. One export per target at a time: `plan` drops
//! part renditions left on the target by an earlier export that did not finish.

mod table;

use serde::{Deserialize, Serialize};
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobSummary, JobType, LogLevel, MetaValue, Task,
    TaskOutcome, assets, host, metadata, renditions,
};

use table::{Row, Typed, Union};

/// Assets per task (one part rendition each).
const ASSETS_PER_TASK: usize = 500;
/// Tasks per `add-tasks` call during `plan`.
const TASKS_PER_CALL: usize = 20;
/// The name every part rendition starts with.
const PART_PREFIX: &str = "metadata-export-part-";

struct Export;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    target: String,
    properties: Option<Vec<String>>,
    #[serde(default = "yes")]
    recursive: bool,
}

fn yes() -> bool {
    true
}

/// A task's input: its part number and the assets it exports, in path order.
#[derive(Serialize, Deserialize)]
struct Input {
    part: u32,
    paths: Vec<String>,
}

fn part_name(job_id: &str, part: u32) -> String {
    format!("{PART_PREFIX}{job_id}-{part:06}.jsonl")
}

impl JobType for Export {
    fn describe() -> Descriptor {
        Descriptor::new(
            "metadata-export",
            env!("CARGO_PKG_VERSION"),
            &["metadata-export"],
            Capabilities::READ | Capabilities::WRITE | Capabilities::METADATA,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["target"],
            "properties": {
                "target": {
                    "type": "string",
                    "x-wasmq-target": true,
                    "description": "Asset path of the CSV to write, e.g. /content/exports/photos.csv; may lie outside the job's path"
                },
                "properties": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[^\\s{}]+$"},
                    "minItems": 1,
                    "uniqueItems": true,
                    "description": "The properties to export, as columns in this order; default: every property found"
                },
                "recursive": {
                    "type": "boolean",
                    "default": true,
                    "description": "Include assets in sub-folders"
                }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        let params: Params = job.params()?;
        let target = &params.target;
        if assets::stat(target)?.is_none() {
            assets::write(target, &damcsv::write_header(&[]).into_bytes(), "text/csv")?;
        }
        for stale in renditions::list(target)? {
            if stale.name.starts_with(PART_PREFIX) {
                renditions::delete(target, &stale.name)?;
            }
        }
        let mut tasks = Vec::new();
        let mut paths = Vec::new();
        let mut parts = 0u32;
        let mut planned = 0u64;
        let mut cursor = None;
        loop {
            let page = assets::list(&job.info.path, params.recursive, cursor.as_deref(), 1000)?;
            for asset in page.assets.into_iter().filter(|a| a.path != *target) {
                paths.push(asset.path);
                planned += 1;
                if paths.len() == ASSETS_PER_TASK {
                    parts += 1;
                    tasks.push(task(parts, std::mem::take(&mut paths)));
                }
            }
            if tasks.len() >= TASKS_PER_CALL {
                add(&mut tasks)?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if !paths.is_empty() {
            parts += 1;
            tasks.push(task(parts, paths));
        }
        add(&mut tasks)?;
        job.log(&format!(
            "planned the export of {planned} assets under {} to {target} in {parts} parts",
            job.info.path
        ));
        Ok(())
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let params: Params = job.params()?;
        let input: Input = serde_json::from_slice(&task.input)
            .map_err(|e| Error::permanent(400, format!("bad task input: {e}")))?;
        let mut rows = Vec::with_capacity(input.paths.len());
        let mut gone = 0;
        for path in input.paths {
            let properties = match metadata::get(&path) {
                Ok(properties) => properties,
                Err(e) if e.code == 404 => {
                    gone += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let wanted = |name: &String| {
                params
                    .properties
                    .as_ref()
                    .is_none_or(|w| w.iter().any(|p| p == name))
            };
            let properties = properties
                .into_iter()
                .filter(|p| wanted(&p.name))
                .map(|p| (p.name, p.values.into_iter().map(typed).collect()))
                .collect();
            rows.push(Row { path, properties });
        }
        let name = part_name(&job.info.id, input.part);
        let part = renditions::write(
            &params.target,
            &name,
            &table::encode_part(&rows),
            "application/x-ndjson",
        )?;
        let mut message = format!("part {}: {} assets", input.part, rows.len());
        if gone > 0 {
            message.push_str(&format!(", {gone} gone since planning"));
        }
        Ok(TaskOutcome::ok(message).with_etag(part.etag))
    }

    fn finish(job: &Job, summary: JobSummary) -> Result<(), Error> {
        let params: Params = job.params()?;
        let target = &params.target;
        let prefix = part_name(&job.info.id, 0);
        let prefix = &prefix[..prefix.len() - "000000.jsonl".len()];
        let mut parts: Vec<String> = renditions::list(target)?
            .into_iter()
            .map(|r| r.name)
            .filter(|n| n.starts_with(prefix))
            .collect();
        parts.sort();
        let complete = summary.failed == 0 && parts.len() as u64 == summary.total;
        let result = if complete {
            assemble(job, &params, &parts)
        } else {
            Err(Error::permanent(
                500,
                format!(
                    "export incomplete: {} of {} tasks failed and {} of {} parts are there; {target} was not written",
                    summary.failed,
                    summary.total,
                    parts.len(),
                    summary.total
                ),
            ))
        };
        for part in &parts {
            renditions::delete(target, part)?;
        }
        result
    }
}

/// Reads the parts twice (columns, then rows) and writes the CSV to the target.
fn assemble(job: &Job, params: &Params, parts: &[String]) -> Result<(), Error> {
    let target = &params.target;
    let read = |name: &String| -> Result<Vec<Row>, Error> {
        table::decode_part(&renditions::read(target, name)?)
            .map_err(|e| Error::permanent(500, format!("part {name} is damaged: {e}")))
    };
    let mut union = Union::default();
    for name in parts {
        read(name)?.iter().for_each(|row| union.add(row));
    }
    let (columns, skipped) = union.columns(params.properties.as_deref());
    if !skipped.is_empty() {
        host::log(
            LogLevel::Warn,
            &format!(
                "left out {} properties whose names cannot be CSV headers: {}",
                skipped.len(),
                skipped.join(", ")
            ),
        );
    }
    let mut csv = damcsv::write_header(&columns);
    let mut count = 0u64;
    for name in parts {
        for row in read(name)? {
            csv.push_str(&table::render_row(row, &columns));
            count += 1;
        }
        host::progress(&format!("assembled {count} rows"));
    }
    let stat = assets::write(target, csv.as_bytes(), "text/csv")?;
    job.log(&format!(
        "exported {count} assets and {} columns to {target} ({} bytes, etag {})",
        columns.len(),
        stat.size,
        stat.etag
    ));
    Ok(())
}

fn task(part: u32, paths: Vec<String>) -> Task {
    Task {
        path: paths[0].clone(),
        input: serde_json::to_vec(&Input { part, paths }).expect("input serializes"),
    }
}

fn add(tasks: &mut Vec<Task>) -> Result<(), Error> {
    if !tasks.is_empty() {
        host::add_tasks(tasks)?;
        tasks.clear();
    }
    Ok(())
}

fn typed(value: MetaValue) -> Typed {
    match value {
        MetaValue::Text(s) => Typed::Text(s),
        MetaValue::Long(n) => Typed::Long(n),
        MetaValue::Double(d) => Typed::Double(d),
        MetaValue::Boolean(b) => Typed::Boolean(b),
        MetaValue::Date(s) => Typed::Date(s),
    }
}

wasmq_sdk::export!(Export);
