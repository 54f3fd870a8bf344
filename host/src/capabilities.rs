//! The host side of the plugin imports: assets, renditions, metadata, references,
//! publishing and the job's own services, each checked against the job's scope and declared capabilities.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::assets::{self, AssetError, AssetRepo};
use crate::paths::{self, Scope};
use crate::runtime::bindings::wasmq::plugin::publishing::{self, PublishOutcome};
use crate::runtime::bindings::wasmq::plugin::renditions::{self, RenditionStat};
use crate::runtime::bindings::wasmq::plugin::types::{
    AssetPage, AssetStat, Capabilities, Error, ErrorKind, JobInfo, LogLevel, MetaValue, Property,
    Task,
};
use crate::runtime::bindings::wasmq::plugin::{
    assets as wit_assets, host, metadata, references, types,
};
use crate::store::Store;

/// The largest batch `host.add-tasks` takes.
pub const MAX_TASK_BATCH: usize = 1000;
/// The largest task input and checkpoint, in bytes.
pub const MAX_BLOB: usize = 64 * 1024;
/// The longest log line kept, in bytes.
const MAX_LOG_LINE: usize = 4096;

/// Which plugin export is running: some imports are valid only in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Describe,
    Plan,
    Task,
    Finish,
}

/// Everything a job's plugin calls may reach.
#[derive(Clone)]
pub struct JobContext {
    /// The job as the plugin sees it.
    pub info: JobInfo,
    /// What the job may touch.
    pub scope: Scope,
    /// What the plugin declared in `describe`.
    pub declared: Capabilities,
    /// The plugin's name, for messages.
    pub plugin: String,
    /// The job database.
    pub store: Store,
    /// The asset repository.
    pub assets: AssetRepo,
    /// How long one host call may take.
    pub host_timeout: Duration,
}

/// The per-call state behind the imports.
#[derive(Clone)]
pub struct CallCtx {
    job: Option<JobContext>,
    phase: Phase,
    /// Tasks added so far in this call (during `plan`).
    pub planned: u64,
}

impl CallCtx {
    /// For `describe`: no job, only `host.log` works.
    pub fn describe() -> Self {
        CallCtx {
            job: None,
            phase: Phase::Describe,
            planned: 0,
        }
    }

    /// For a job's `plan`, `run-task` or `finish`.
    pub fn for_job(job: JobContext, phase: Phase) -> Self {
        CallCtx {
            job: Some(job),
            phase,
            planned: 0,
        }
    }

    fn job_ctx(&self) -> Result<&JobContext, Error> {
        self.job
            .as_ref()
            .ok_or_else(|| permanent(403, "no job: only host.log may be called from describe"))
    }

    /// The job, if `capability` was declared; else a 403 that is also logged.
    async fn allow(
        &self,
        capability: Capabilities,
        name: &str,
        call: &str,
    ) -> Result<&JobContext, Error> {
        let job = self.job_ctx()?;
        if job.declared.contains(capability) {
            return Ok(job);
        }
        let message = format!(
            "capability `{name}` was not declared by plugin {}: {call} refused",
            job.plugin
        );
        let _ = job.store.log(&job.info.id, "warn", &message).await;
        tracing::warn!(job = %job.info.id, "{message}");
        Err(permanent(403, message))
    }
}

impl JobContext {
    /// Checks that `path` is well-formed and inside the job's scope.
    fn in_scope(&self, path: &str) -> Result<(), Error> {
        paths::validate(path).map_err(|e| permanent(400, format!("path {path:?} {e}")))?;
        if !self.scope.contains(path) {
            return Err(permanent(
                403,
                format!("path {path} is outside this job's scope"),
            ));
        }
        Ok(())
    }

    /// Runs a host operation bounded by the host-call timeout.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, AssetError>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.host_timeout, op).await {
            Ok(result) => result.map_err(asset_error),
            Err(_) => Err(Error {
                kind: ErrorKind::Transient,
                code: 503,
                message: format!("host call timed out after {:?}", self.host_timeout),
            }),
        }
    }
}

fn permanent(code: u16, message: impl Into<String>) -> Error {
    Error {
        kind: ErrorKind::Permanent,
        code,
        message: message.into(),
    }
}

fn asset_error(e: AssetError) -> Error {
    match e {
        AssetError::NotFound(_) => permanent(404, e.to_string()),
        AssetError::Exists(_) => permanent(409, e.to_string()),
        AssetError::BadValue { .. } | AssetError::BadRenditionName(_) => {
            permanent(400, e.to_string())
        }
        AssetError::Objects(_) | AssetError::Db(_) | AssetError::Io(..) => Error {
            kind: ErrorKind::Transient,
            code: 503,
            message: e.to_string(),
        },
    }
}

fn stat_to_wit(s: assets::AssetStat) -> AssetStat {
    AssetStat {
        path: s.path,
        size: s.size,
        etag: s.etag,
        content_type: s.content_type,
        modified_ms: s.modified_at.max(0) as u64,
    }
}

fn value_from_wit(v: MetaValue) -> assets::MetaValue {
    match v {
        MetaValue::Text(s) => assets::MetaValue::Text(s),
        MetaValue::Long(v) => assets::MetaValue::Long(v),
        MetaValue::Double(v) => assets::MetaValue::Double(v),
        MetaValue::Boolean(v) => assets::MetaValue::Boolean(v),
        MetaValue::Date(s) => assets::MetaValue::Date(s),
    }
}

fn value_to_wit(v: assets::MetaValue) -> MetaValue {
    match v {
        assets::MetaValue::Text(s) => MetaValue::Text(s),
        assets::MetaValue::Long(v) => MetaValue::Long(v),
        assets::MetaValue::Double(v) => MetaValue::Double(v),
        assets::MetaValue::Boolean(v) => MetaValue::Boolean(v),
        assets::MetaValue::Date(s) => MetaValue::Date(s),
    }
}

impl types::Host for CallCtx {}

impl wit_assets::Host for CallCtx {
    async fn list(
        &mut self,
        folder: String,
        recursive: bool,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<AssetPage, Error> {
        let job = self
            .allow(Capabilities::READ, "read", "assets.list")
            .await?;
        paths::validate(&folder).map_err(|e| permanent(400, format!("folder {folder:?} {e}")))?;
        if !job.scope.contains(&folder) {
            return Err(permanent(
                403,
                format!("folder {folder} is outside this job's scope"),
            ));
        }
        let page = job
            .bounded(job.assets.list(
                &job.info.tenant,
                &folder,
                recursive,
                cursor.as_deref(),
                limit,
                Some(&job.scope),
            ))
            .await?;
        Ok(AssetPage {
            assets: page.assets.into_iter().map(stat_to_wit).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn stat(&mut self, path: String) -> Result<Option<AssetStat>, Error> {
        let job = self
            .allow(Capabilities::READ, "read", "assets.stat")
            .await?;
        job.in_scope(&path)?;
        Ok(job
            .bounded(job.assets.stat(&job.info.tenant, &path))
            .await?
            .map(stat_to_wit))
    }

    async fn read(&mut self, path: String) -> Result<Vec<u8>, Error> {
        let job = self
            .allow(Capabilities::READ, "read", "assets.read")
            .await?;
        job.in_scope(&path)?;
        Ok(job
            .bounded(job.assets.read(&job.info.tenant, &path))
            .await?
            .to_vec())
    }

    async fn write(
        &mut self,
        path: String,
        data: Vec<u8>,
        content_type: String,
    ) -> Result<AssetStat, Error> {
        let job = self
            .allow(Capabilities::WRITE, "write", "assets.write")
            .await?;
        job.in_scope(&path)?;
        let stat = job
            .bounded(
                job.assets
                    .write(&job.info.tenant, &path, Bytes::from(data), &content_type),
            )
            .await?;
        Ok(stat_to_wit(stat))
    }

    async fn delete(&mut self, path: String) -> Result<bool, Error> {
        let job = self
            .allow(Capabilities::DELETE, "delete", "assets.delete")
            .await?;
        job.in_scope(&path)?;
        job.bounded(job.assets.delete(&job.info.tenant, &path))
            .await
    }

    async fn move_asset(
        &mut self,
        source: String,
        destination: String,
    ) -> Result<AssetStat, Error> {
        let job = self
            .allow(Capabilities::MOVE, "move", "assets.move-asset")
            .await?;
        job.in_scope(&source)?;
        job.in_scope(&destination)?;
        Ok(stat_to_wit(
            job.bounded(
                job.assets
                    .move_asset(&job.info.tenant, &source, &destination),
            )
            .await?,
        ))
    }
}

impl metadata::Host for CallCtx {
    async fn get(&mut self, path: String) -> Result<Vec<Property>, Error> {
        let job = self
            .allow(Capabilities::METADATA, "metadata", "metadata.get")
            .await?;
        job.in_scope(&path)?;
        let props = job
            .bounded(job.assets.metadata(&job.info.tenant, &path))
            .await?;
        Ok(props
            .into_iter()
            .map(|p| Property {
                name: p.name,
                values: p.values.into_iter().map(value_to_wit).collect(),
            })
            .collect())
    }

    async fn set(
        &mut self,
        path: String,
        properties: Vec<Property>,
        replace: bool,
    ) -> Result<(), Error> {
        let job = self
            .allow(Capabilities::METADATA, "metadata", "metadata.set")
            .await?;
        job.in_scope(&path)?;
        let props: Vec<assets::Property> = properties
            .into_iter()
            .map(|p| assets::Property {
                name: p.name,
                values: p.values.into_iter().map(value_from_wit).collect(),
            })
            .collect();
        job.bounded(
            job.assets
                .set_metadata(&job.info.tenant, &path, &props, replace),
        )
        .await
    }
}

impl references::Host for CallCtx {
    async fn referrers(&mut self, path: String) -> Result<Vec<String>, Error> {
        let job = self
            .allow(
                Capabilities::REFERENCES,
                "references",
                "references.referrers",
            )
            .await?;
        job.in_scope(&path)?;
        job.bounded(job.assets.referrers(&job.info.tenant, &path))
            .await
    }

    async fn references(&mut self, path: String) -> Result<Vec<String>, Error> {
        let job = self
            .allow(
                Capabilities::REFERENCES,
                "references",
                "references.references",
            )
            .await?;
        job.in_scope(&path)?;
        job.bounded(job.assets.references(&job.info.tenant, &path))
            .await
    }
}

fn rendition_to_wit(r: assets::RenditionStat) -> RenditionStat {
    RenditionStat {
        path: r.path,
        name: r.name,
        size: r.size,
        etag: r.etag,
        content_type: r.content_type,
        modified_ms: r.modified_at.max(0) as u64,
    }
}

impl renditions::Host for CallCtx {
    async fn list(&mut self, path: String) -> Result<Vec<RenditionStat>, Error> {
        let job = self
            .allow(Capabilities::READ, "read", "renditions.list")
            .await?;
        job.in_scope(&path)?;
        if job
            .bounded(job.assets.stat(&job.info.tenant, &path))
            .await?
            .is_none()
        {
            return Err(permanent(404, format!("no asset at {path}")));
        }
        let list = job
            .bounded(job.assets.renditions(&job.info.tenant, &path))
            .await?;
        Ok(list.into_iter().map(rendition_to_wit).collect())
    }

    async fn read(&mut self, path: String, name: String) -> Result<Vec<u8>, Error> {
        let job = self
            .allow(Capabilities::READ, "read", "renditions.read")
            .await?;
        job.in_scope(&path)?;
        Ok(job
            .bounded(job.assets.read_rendition(&job.info.tenant, &path, &name))
            .await?
            .to_vec())
    }

    async fn write(
        &mut self,
        path: String,
        name: String,
        data: Vec<u8>,
        content_type: String,
    ) -> Result<RenditionStat, Error> {
        let job = self
            .allow(Capabilities::WRITE, "write", "renditions.write")
            .await?;
        job.in_scope(&path)?;
        let stat = job
            .bounded(job.assets.write_rendition(
                &job.info.tenant,
                &path,
                &name,
                Bytes::from(data),
                &content_type,
            ))
            .await?;
        Ok(rendition_to_wit(stat))
    }

    async fn delete(&mut self, path: String, name: String) -> Result<bool, Error> {
        let job = self
            .allow(Capabilities::WRITE, "write", "renditions.delete")
            .await?;
        job.in_scope(&path)?;
        job.bounded(job.assets.delete_rendition(&job.info.tenant, &path, &name))
            .await
    }
}

impl publishing::Host for CallCtx {
    async fn publish(&mut self, path: String) -> Result<PublishOutcome, Error> {
        let job = self
            .allow(Capabilities::PUBLISH, "publish", "publishing.publish")
            .await?;
        job.in_scope(&path)?;
        let done = job
            .bounded(job.assets.publish(&job.info.tenant, &path, &job.info.id))
            .await?;
        Ok(PublishOutcome {
            copied: done.copied,
            etag: done.etag,
            published_ms: done.published_at.max(0) as u64,
            renditions: done.renditions,
        })
    }

    async fn unpublish(&mut self, path: String) -> Result<bool, Error> {
        let job = self
            .allow(Capabilities::PUBLISH, "publish", "publishing.unpublish")
            .await?;
        job.in_scope(&path)?;
        job.bounded(job.assets.unpublish(&job.info.tenant, &path))
            .await
    }
}

impl host::Host for CallCtx {
    async fn job(&mut self) -> JobInfo {
        match &self.job {
            Some(job) => job.info.clone(),
            None => JobInfo {
                id: String::new(),
                job_type: String::new(),
                tenant: String::new(),
                path: String::new(),
                excluded_paths: Vec::new(),
                params: "{}".into(),
                created_by: String::new(),
            },
        }
    }

    async fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        match &self.job {
            Some(job) => {
                if let Err(e) = job.store.log(&job.info.id, level, &message).await {
                    tracing::warn!(job = %job.info.id, error = %e, "could not store a plugin log line");
                }
            }
            None => tracing::info!(target: "wasmq::plugin", plugin_level = level, "{message}"),
        }
    }

    async fn progress(&mut self, message: String) {
        if let Some(job) = &self.job {
            let message: String = message.chars().take(500).collect();
            if let Err(e) = job.store.set_progress(&job.info.id, &message).await {
                tracing::warn!(job = %job.info.id, error = %e, "could not store a progress message");
            }
        }
    }

    async fn add_tasks(&mut self, tasks: Vec<Task>) -> Result<(), Error> {
        if self.phase != Phase::Plan {
            return Err(permanent(409, "host.add-tasks is only valid during plan"));
        }
        if tasks.len() > MAX_TASK_BATCH {
            return Err(permanent(
                400,
                format!(
                    "at most {MAX_TASK_BATCH} tasks per add-tasks call, got {}",
                    tasks.len()
                ),
            ));
        }
        let mut rows = Vec::with_capacity(tasks.len());
        for task in tasks {
            paths::validate(&task.path)
                .map_err(|e| permanent(400, format!("task path {:?} {e}", task.path)))?;
            if task.input.len() > MAX_BLOB {
                return Err(permanent(
                    400,
                    format!("task input for {} is over {MAX_BLOB} bytes", task.path),
                ));
            }
            rows.push((task.path, task.input));
        }
        let job = self.job_ctx()?;
        let added = rows.len() as u64;
        match tokio::time::timeout(job.host_timeout, job.store.add_tasks(&job.info.id, &rows)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Error {
                    kind: ErrorKind::Transient,
                    code: 503,
                    message: e.to_string(),
                });
            }
            Err(_) => {
                return Err(Error {
                    kind: ErrorKind::Transient,
                    code: 503,
                    message: "host call timed out".into(),
                });
            }
        }
        self.planned += added;
        Ok(())
    }

    async fn checkpoint(&mut self, state: Vec<u8>) -> Result<(), Error> {
        let job = self.job_ctx()?;
        if state.len() > MAX_BLOB {
            return Err(permanent(
                400,
                format!("checkpoint is over {MAX_BLOB} bytes"),
            ));
        }
        job.store
            .set_checkpoint(&job.info.id, &state)
            .await
            .map_err(|e| Error {
                kind: ErrorKind::Transient,
                code: 503,
                message: e.to_string(),
            })
    }

    async fn last_checkpoint(&mut self) -> Option<Vec<u8>> {
        let job = self.job.as_ref()?;
        job.store.checkpoint(&job.info.id).await.ok().flatten()
    }
}
