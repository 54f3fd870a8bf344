//! The `checksum` job type, a third-party wasmq plugin built out of tree: one
//! task per asset, each computes the SHA-256 of the asset's binary and stores it.
//!
//! Every asset under the job's path gets the metadata property `wasmq:sha256`
//! (text, lowercase hex); the task's outcome message is the same hex digest
//! and its etag the version of the binary that was hashed. Running a task
//! again hashes the same binary and sets the same value: it is idempotent.

use sha2::{Digest, Sha256};
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobSummary, JobType, MetaValue, Property, Task,
    TaskOutcome, assets, metadata,
};

/// The metadata property the digest is stored in.
const PROPERTY: &str = "wasmq:sha256";

struct Checksum;

impl JobType for Checksum {
    fn describe() -> Descriptor {
        Descriptor::new(
            "checksum",
            env!("CARGO_PKG_VERSION"),
            &["checksum"],
            Capabilities::READ | Capabilities::METADATA,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        let planned = job.plan_each_asset(|asset| Some(Task::for_path(&asset.path)))?;
        job.log(&format!(
            "planned {planned} checksums under {}",
            job.info.path
        ));
        Ok(())
    }

    fn run_task(_job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let Some(stat) = assets::stat(&task.path)? else {
            return Err(Error::permanent(404, "the asset is gone"));
        };
        let digest = hex(&Sha256::digest(assets::read(&task.path)?));
        metadata::set(
            &task.path,
            &[Property {
                name: PROPERTY.into(),
                values: vec![MetaValue::Text(digest.clone())],
            }],
            false,
        )?;
        Ok(TaskOutcome::ok(digest).with_etag(stat.etag))
    }

    fn finish(job: &Job, summary: JobSummary) -> Result<(), Error> {
        job.log(&format!(
            "checksummed {} of {} assets ({} failed)",
            summary.succeeded, summary.total, summary.failed
        ));
        Ok(())
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

wasmq_sdk::export!(Checksum);
