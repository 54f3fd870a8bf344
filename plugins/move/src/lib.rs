//! The `move` job type: moves an asset, or a folder with everything in it, to a
//! destination path, one task per asset; the host makes references follow.
//!
//! The job's `path` is the source and the param `destination` its new path (an
//! asset's new path, or the folder's). The host moves each asset with its
//! metadata and renditions and rewrites the references to it, in the reference
//! table and inside referring text assets, so this plugin only decides where
//! each asset goes and what to do when something is already there (`conflict`):
//! `fail` (the item fails with 409), `skip`, `rename` (`name-1.ext`, ...) or
//! `overwrite`. A task that runs again after a crash finds its asset moved
//! and reports it as done.

use serde::Deserialize;
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobType, Task, TaskOutcome, assets, is_under,
};

struct Move;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Conflict {
    #[default]
    Fail,
    Skip,
    Rename,
    Overwrite,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    destination: String,
    #[serde(default)]
    conflict: Conflict,
}

/// How many numbered names `rename` tries before giving up.
const MAX_RENAMES: u32 = 1000;

impl Params {
    /// Where the asset at `source` goes.
    fn destination_of(&self, job: &Job, source: &str) -> String {
        let root = job.info.path.trim_end_matches('/');
        format!(
            "{}{}",
            self.destination.trim_end_matches('/'),
            &source[root.len()..]
        )
    }
}

/// `/a/b/name.ext` with `-n` before the extension: `/a/b/name-n.ext`.
fn numbered(path: &str, n: u32) -> String {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}/{stem}-{n}.{ext}"),
        _ => format!("{dir}/{file}-{n}"),
    }
}

impl JobType for Move {
    fn describe() -> Descriptor {
        Descriptor::new(
            "move",
            env!("CARGO_PKG_VERSION"),
            &["move"],
            Capabilities::READ | Capabilities::MOVE | Capabilities::DELETE,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["destination"],
            "properties": {
                "destination": {
                    "type": "string",
                    "minLength": 1,
                    "x-wasmq-target": true,
                    "description": "The new path of the job's path: an asset's new path, or the folder's"
                },
                "conflict": {
                    "enum": ["fail", "skip", "rename", "overwrite"],
                    "default": "fail",
                    "description": "When something exists at an asset's destination: fail the item, skip it, move it under a numbered name, or replace what is there"
                }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        let params: Params = job.params()?;
        let source = &job.info.path;
        if is_under(&params.destination, source) {
            return Err(Error::invalid_input(format!(
                "destination {} lies inside the source {source}: a folder cannot move into itself",
                params.destination
            )));
        }
        let planned = job.plan_each_asset(|asset| Some(Task::for_path(&asset.path)))?;
        job.log(&format!(
            "planned {planned} moves from {source} to {}",
            params.destination
        ));
        Ok(())
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let params: Params = job.params()?;
        let source = task.path;
        let mut destination = params.destination_of(job, &source);
        if assets::stat(&source)?.is_none() {
            // Idempotent: after a crash the asset may already be at its destination.
            return match assets::stat(&destination)? {
                Some(stat) => {
                    Ok(TaskOutcome::ok(format!("already moved to {destination}"))
                        .with_etag(stat.etag))
                }
                None => Err(Error::permanent(404, format!("no asset at {source}"))),
            };
        }
        let mut how = "moved";
        if assets::stat(&destination)?.is_some() {
            match params.conflict {
                Conflict::Fail => {
                    return Err(Error::permanent(
                        409,
                        format!("{destination} already exists (conflict: fail)"),
                    ));
                }
                Conflict::Skip => {
                    return Ok(TaskOutcome {
                        code: 204,
                        message: format!("skipped: {destination} already exists"),
                        etag: None,
                    });
                }
                Conflict::Overwrite => {
                    assets::delete(&destination)?;
                    how = "moved, replacing what was there,";
                }
                Conflict::Rename => {
                    destination = (1..=MAX_RENAMES)
                        .map(|n| numbered(&destination, n))
                        .find(|candidate| matches!(assets::stat(candidate), Ok(None)))
                        .ok_or_else(|| {
                            Error::permanent(409, format!("no free name for {destination}"))
                        })?;
                    how = "moved under a new name";
                }
            }
        }
        let stat = assets::move_asset(&source, &destination)?;
        Ok(TaskOutcome {
            code: 201,
            message: format!("{how} to {destination}"),
            etag: Some(stat.etag),
        })
    }
}

wasmq_sdk::export!(Move);

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("/a/b/photo.jpg", 1), "/a/b/photo-1.jpg");
        assert_eq!(numbered("/a/b/README", 2), "/a/b/README-2");
        assert_eq!(numbered("/a/.hidden", 3), "/a/.hidden-3");
        assert_eq!(numbered("/a/x.tar.gz", 1), "/a/x.tar-1.gz");
    }
}
