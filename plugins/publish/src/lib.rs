//! The `publish` and `unpublish` job types: copy assets with their renditions to
//! the publish target (served read-only at `/published/...`), or take them back.
//!
//! One task per asset at or under the job's path. The host records the
//! published time and etag and copies nothing when that version is already
//! published, so republishing an unchanged folder is cheap and reports 204s.

use serde::Deserialize;
use wasmq_sdk::{Capabilities, Descriptor, Error, Job, JobType, Task, TaskOutcome, publishing};

struct Publish;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {}

impl JobType for Publish {
    fn describe() -> Descriptor {
        Descriptor::new(
            "publish",
            env!("CARGO_PKG_VERSION"),
            &["publish", "unpublish"],
            Capabilities::READ | Capabilities::PUBLISH,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {}
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        job.params::<Params>()?;
        let planned = job.plan_each_asset(|asset| Some(Task::for_path(&asset.path)))?;
        job.log(&format!(
            "planned {planned} {} tasks under {}",
            job.info.job_type, job.info.path
        ));
        Ok(())
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        if job.info.job_type == "unpublish" {
            let code = if publishing::unpublish(&task.path)? {
                200
            } else {
                204
            };
            let message = if code == 200 {
                "unpublished"
            } else {
                "was not published"
            };
            return Ok(TaskOutcome {
                code,
                message: message.into(),
                etag: None,
            });
        }
        let done = publishing::publish(&task.path)?;
        Ok(if done.copied {
            TaskOutcome {
                code: 200,
                message: format!("published with {} rendition(s)", done.renditions),
                etag: Some(done.etag),
            }
        } else {
            TaskOutcome {
                code: 204,
                message: "unchanged: already published".into(),
                etag: Some(done.etag),
            }
        })
    }
}

wasmq_sdk::export!(Publish);
