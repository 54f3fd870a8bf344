//! The wasmq guest SDK: a job type is an `impl JobType for MyType` plus one
//! `wasmq_sdk::export!(MyType)`; this crate holds the bindings and the glue.
//!
//! ```ignore
//! struct Hello;
//! impl wasmq_sdk::JobType for Hello {
//!     fn describe() -> Descriptor { Descriptor::new("hello", "0.1.0", &["hello"], Capabilities::READ) }
//!     fn plan(job: &Job) -> Result<(), Error> { job.plan_each_asset(|a| Some(Task::for_path(&a.path))) }
//!     fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> { Ok(TaskOutcome::ok("hello")) }
//! }
//! wasmq_sdk::export!(Hello);
//! ```

/// Raw bindings to the `wasmq:plugin` world, generated from `wit/`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "job-type",
        pub_export_macro: true,
        export_macro_name: "export_plugin",
        default_bindings_module: "wasmq_sdk::bindings",
    });
}

pub use bindings::wasmq::plugin::types::{
    AssetPage, AssetStat, Capabilities, Descriptor, Error, ErrorKind, JobInfo, JobSummary,
    LogLevel, MetaValue, Property, Task, TaskOutcome,
};
pub use bindings::wasmq::plugin::{assets, host, metadata, publishing, references, renditions};

/// The one trait a job type implements.
pub trait JobType {
    /// Who the plugin is and what it needs.
    fn describe() -> Descriptor;
    /// Turns the job into tasks (see [`Job::add_tasks`] and [`Job::plan_each_asset`]).
    fn plan(job: &Job) -> Result<(), Error>;
    /// Runs one task; must be idempotent.
    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error>;
    /// Called once after the last task; does nothing by default.
    fn finish(_job: &Job, _summary: JobSummary) -> Result<(), Error> {
        Ok(())
    }
}

/// Exports a [`JobType`] implementation as the component's `plugin` interface.
#[macro_export]
macro_rules! export {
    ($ty:ty) => {
        struct __WasmqExport;
        impl $crate::bindings::exports::wasmq::plugin::plugin::Guest for __WasmqExport {
            fn describe() -> $crate::Descriptor {
                <$ty as $crate::JobType>::describe()
            }
            fn plan(job: $crate::JobInfo) -> Result<(), $crate::Error> {
                <$ty as $crate::JobType>::plan(&$crate::Job::new(job))
            }
            fn run_task(
                job: $crate::JobInfo,
                task: $crate::Task,
            ) -> Result<$crate::TaskOutcome, $crate::Error> {
                <$ty as $crate::JobType>::run_task(&$crate::Job::new(job), task)
            }
            fn finish(
                job: $crate::JobInfo,
                summary: $crate::JobSummary,
            ) -> Result<(), $crate::Error> {
                <$ty as $crate::JobType>::finish(&$crate::Job::new(job), summary)
            }
        }
        $crate::bindings::export_plugin!(__WasmqExport);
    };
}

impl Descriptor {
    /// A descriptor with an open params schema (`{"type":"object"}`).
    pub fn new(name: &str, version: &str, job_types: &[&str], capabilities: Capabilities) -> Self {
        Descriptor {
            name: name.into(),
            version: version.into(),
            job_types: job_types.iter().map(|t| t.to_string()).collect(),
            params_schema: r#"{"type":"object"}"#.into(),
            capabilities,
        }
    }

    /// Sets the JSON Schema that a job's params must satisfy.
    pub fn params_schema(mut self, schema: serde_json::Value) -> Self {
        self.params_schema = schema.to_string();
        self
    }
}

impl Error {
    /// An error worth retrying later.
    pub fn transient(code: u16, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Transient,
            code,
            message: message.into(),
        }
    }
    /// This item cannot be done.
    pub fn permanent(code: u16, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Permanent,
            code,
            message: message.into(),
        }
    }
    /// The job's params make no sense: the job fails at once.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidInput,
            code: 400,
            message: message.into(),
        }
    }
}

impl Task {
    /// A task about `path` with no input of its own.
    pub fn for_path(path: &str) -> Self {
        Task {
            path: path.into(),
            input: Vec::new(),
        }
    }
}

impl TaskOutcome {
    /// Success with code 200 and a message.
    pub fn ok(message: impl Into<String>) -> Self {
        TaskOutcome {
            code: 200,
            message: message.into(),
            etag: None,
        }
    }
    /// Sets the etag of the asset the task acted on.
    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }
}

/// The job a call belongs to, with helpers over [`JobInfo`].
pub struct Job {
    /// The job as submitted.
    pub info: JobInfo,
}

/// How many tasks [`Job::add_tasks`] sends to the host per call.
const TASK_BATCH: usize = 500;

impl Job {
    /// Wraps the job info the host passed in.
    pub fn new(info: JobInfo) -> Self {
        Job { info }
    }

    /// The job's params, decoded into `T` (an invalid-input error if they don't fit).
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.info.params)
            .map_err(|e| Error::invalid_input(format!("params: {e}")))
    }

    /// True if `path` lies under the job's path and outside its excluded paths,
    /// that is, if this job may touch it.
    pub fn in_scope(&self, path: &str) -> bool {
        is_under(path, &self.info.path)
            && !self.info.excluded_paths.iter().any(|x| is_under(path, x))
    }

    /// Sends tasks to the host in batches.
    pub fn add_tasks(&self, tasks: impl IntoIterator<Item = Task>) -> Result<(), Error> {
        let mut batch = Vec::with_capacity(TASK_BATCH);
        for task in tasks {
            batch.push(task);
            if batch.len() == TASK_BATCH {
                host::add_tasks(&std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            host::add_tasks(&batch)?;
        }
        Ok(())
    }

    /// Calls `f` for every asset under `folder` (recursively), page by page.
    pub fn for_each_asset(
        &self,
        folder: &str,
        mut f: impl FnMut(AssetStat) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut cursor = None;
        loop {
            let page = assets::list(folder, true, cursor.as_deref(), 1000)?;
            for asset in page.assets {
                f(asset)?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Plans one task per asset at or under the job's path (the path may
    /// name one asset or a folder) for which `task_for` returns one,
    /// streaming them to the host; returns how many were planned.
    pub fn plan_each_asset(
        &self,
        mut task_for: impl FnMut(&AssetStat) -> Option<Task>,
    ) -> Result<u64, Error> {
        let mut batch = Vec::with_capacity(TASK_BATCH);
        let mut count = 0;
        if let Some(asset) = assets::stat(&self.info.path)?
            && let Some(task) = task_for(&asset)
        {
            batch.push(task);
            count += 1;
        }
        self.for_each_asset(&self.info.path, |asset| {
            if let Some(task) = task_for(&asset) {
                batch.push(task);
                count += 1;
            }
            if batch.len() == TASK_BATCH {
                host::add_tasks(&std::mem::take(&mut batch))?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            host::add_tasks(&batch)?;
        }
        Ok(count)
    }

    /// Writes an info line to the job's log.
    pub fn log(&self, message: &str) {
        host::log(LogLevel::Info, message);
    }
}

/// True if `path` is `root` or lies below it (segment-wise: `/a/bc` is not under `/a/b`).
pub fn is_under(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty()
        || path == root
        || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}
