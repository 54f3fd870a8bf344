//! The `delete` job type: deletes every asset under the job's path except its
//! excluded paths, one task per asset, keeping assets that others still reference.
//!
//! A referenced asset is kept (permanent error, 409) when an asset this job
//! does not delete refers to it, unless the param `force` is true. Referrers
//! that the same job deletes do not count: they go too.

use serde::Deserialize;
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobType, Task, TaskOutcome, assets, references,
};

struct Delete;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    force: bool,
}

impl JobType for Delete {
    fn describe() -> Descriptor {
        Descriptor::new(
            "delete",
            env!("CARGO_PKG_VERSION"),
            &["delete"],
            Capabilities::READ | Capabilities::DELETE | Capabilities::REFERENCES,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "force": {
                    "type": "boolean",
                    "default": false,
                    "description": "Delete assets even when assets outside the job refer to them"
                }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        job.params::<Params>()?;
        let planned = job.plan_each_asset(|asset| Some(Task::for_path(&asset.path)))?;
        job.log(&format!(
            "planned {planned} deletions under {}",
            job.info.path
        ));
        Ok(())
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let params: Params = job.params()?;
        let Some(stat) = assets::stat(&task.path)? else {
            // Idempotent: a rerun after a crash finds the asset already gone.
            return Ok(TaskOutcome {
                code: 204,
                message: "already absent".into(),
                etag: None,
            });
        };
        if !params.force {
            let kept: Vec<String> = references::referrers(&task.path)?
                .into_iter()
                .filter(|referrer| !job.in_scope(referrer))
                .collect();
            if !kept.is_empty() {
                return Err(Error::permanent(
                    409,
                    format!(
                        "referenced by {} asset(s) outside this deletion, e.g. {}; use force to delete anyway",
                        kept.len(),
                        kept[0]
                    ),
                ));
            }
        }
        assets::delete(&task.path)?;
        Ok(TaskOutcome::ok("deleted").with_etag(stat.etag))
    }
}

wasmq_sdk::export!(Delete);
