//! The plugin registry: loads components from the plugin directory, asks each
//! what it is (`describe`), and maps job types to plugin versions by digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use sha2::Digest as _;

use crate::capabilities::CallCtx;
use crate::runtime::bindings::wasmq::plugin::types::{Capabilities, Descriptor};
use crate::runtime::{Limits, Loaded, Metering, Runtime};
use crate::store::now_ms;

/// The params-schema keyword that marks a string param as a target path.
pub const TARGET_KEYWORD: &str = "x-wasmq-target";

/// A loaded, validated plugin version.
pub struct Plugin {
    /// Its name, from `describe`.
    pub name: String,
    /// Its version, from `describe`.
    pub version: String,
    /// The job types it runs.
    pub job_types: Vec<String>,
    /// The JSON Schema for params.
    pub params_schema: serde_json::Value,
    /// `params_schema`, compiled.
    pub params_validator: jsonschema::Validator,
    /// What it declared it needs.
    pub capabilities: Capabilities,
    /// The file it came from.
    pub file: PathBuf,
    /// When it was loaded (ms since the epoch).
    pub loaded_at: i64,
    /// The linked component.
    pub loaded: Loaded,
}

impl Plugin {
    /// The target paths a job's params name: the string values of the
    /// top-level properties its schema marks `"x-wasmq-target": true`, as
    /// (param name, path). The job may touch them besides its own path.
    pub fn targets(&self, params: &serde_json::Value) -> Vec<(String, String)> {
        let Some(properties) = self.params_schema["properties"].as_object() else {
            return Vec::new();
        };
        properties
            .iter()
            .filter(|(_, schema)| schema[TARGET_KEYWORD] == serde_json::Value::Bool(true))
            .filter_map(|(name, _)| Some((name.clone(), params.get(name)?.as_str()?.to_string())))
            .collect()
    }

    /// Checks a job's params against the plugin's schema: the first problem
    /// as (field, reason), the field a dotted path such as `params.tasks.0`.
    /// Target paths must also be valid asset paths.
    pub fn check_params(&self, params: &serde_json::Value) -> Result<(), (String, String)> {
        for (name, path) in self.targets(params) {
            if let Err(e) = crate::paths::validate(&path) {
                return Err((format!("params.{name}"), format!("{path:?} {e}")));
            }
        }
        match self.params_validator.iter_errors(params).next() {
            None => Ok(()),
            Some(error) => {
                let field = std::iter::once("params")
                    .chain(
                        error
                            .instance_path()
                            .as_str()
                            .split('/')
                            .filter(|s| !s.is_empty()),
                    )
                    .collect::<Vec<_>>()
                    .join(".");
                Err((field, error.to_string()))
            }
        }
    }

    /// The hex SHA-256 of the component.
    pub fn digest(&self) -> &str {
        &self.loaded.digest
    }

    /// The declared capabilities by name.
    pub fn capability_names(&self) -> Vec<&'static str> {
        let all = [
            (Capabilities::READ, "read"),
            (Capabilities::WRITE, "write"),
            (Capabilities::DELETE, "delete"),
            (Capabilities::MOVE, "move"),
            (Capabilities::METADATA, "metadata"),
            (Capabilities::REFERENCES, "references"),
            (Capabilities::PUBLISH, "publish"),
        ];
        all.into_iter()
            .filter(|(c, _)| self.capabilities.contains(*c))
            .map(|(_, n)| n)
            .collect()
    }
}

/// A file that was refused, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub file: String,
    pub reason: String,
    pub at: i64,
}

/// Limits for `describe`: it should answer at once.
const DESCRIBE_LIMITS: Limits = Limits {
    metering: Metering::Epoch,
    fuel: 1_000_000_000,
    wall: Duration::from_secs(5),
    memory: 64 << 20,
    table_elements: 100_000,
};

#[derive(Default)]
struct Tables {
    /// The version new jobs of each type get.
    by_type: HashMap<String, Arc<Plugin>>,
    /// Every version loaded, current or kept for the jobs that started on it.
    by_digest: HashMap<String, Arc<Plugin>>,
    /// The digest each file of the plugin directory serves.
    by_file: HashMap<PathBuf, String>,
    /// The last refusal of each file that has not loaded since.
    rejected: HashMap<PathBuf, Rejection>,
}

/// How a plugin version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// New jobs of its types get it.
    Active,
    /// A newer version replaced it, or its file went; jobs that started on it keep it.
    Superseded,
}

/// What changed when a file was (re)loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new version now serves its job types.
    Loaded(String),
    /// The file holds the version already served.
    Unchanged,
}

/// Every plugin version loaded on this host, and the plugin directory's files.
pub struct Registry {
    runtime: Runtime,
    /// Every accepted component by digest (`<digest>.wasm`), so that jobs
    /// pinned to an older version still run after a restart.
    archive: Option<PathBuf>,
    tables: RwLock<Tables>,
}

impl Registry {
    /// An empty registry over a runtime, with no archive of versions.
    pub fn new(runtime: Runtime) -> Self {
        Registry {
            runtime,
            archive: None,
            tables: RwLock::new(Tables::default()),
        }
    }

    /// An empty registry that keeps every accepted version in `archive`.
    pub fn with_archive(runtime: Runtime, archive: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&archive)?;
        Ok(Registry {
            archive: Some(archive),
            ..Registry::new(runtime)
        })
    }

    /// Loads every `*.wasm` in `dir`, in name order; returns how many loaded.
    pub async fn load_dir(&self, dir: &Path) -> std::io::Result<usize> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_component_file(p))
            .collect();
        files.sort();
        let mut loaded = 0;
        for file in files {
            if self.reload(&file).await.is_ok() {
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Loads (or loads again) one file of the plugin directory. On success its
    /// version serves its job types from now on; on failure the refusal is
    /// recorded and whatever served before keeps serving.
    pub async fn reload(&self, file: &Path) -> Result<Change, String> {
        let outcome = match std::fs::read(file) {
            Ok(bytes) => self.install(file, &bytes).await,
            Err(e) => Err(format!("cannot read {}: {e}", file.display())),
        };
        let mut tables = self.tables.write().expect("registry lock");
        match &outcome {
            Ok(Change::Loaded(digest)) => {
                tables.rejected.remove(file);
                let plugin = &tables.by_digest[digest];
                tracing::info!(plugin = %plugin.name, version = %plugin.version, digest = %digest, types = ?plugin.job_types, file = %file.display(), "plugin loaded");
                crate::metrics::global().plugin_reload(crate::metrics::ReloadOutcome::Loaded);
            }
            Ok(Change::Unchanged) => {
                tables.rejected.remove(file);
            }
            Err(reason) => {
                tracing::warn!(file = %file.display(), %reason, "plugin rejected; the previous version keeps serving");
                crate::metrics::global().plugin_reload(crate::metrics::ReloadOutcome::Rejected);
                tables.rejected.insert(
                    file.to_path_buf(),
                    Rejection {
                        file: file.display().to_string(),
                        reason: reason.clone(),
                        at: now_ms(),
                    },
                );
            }
        }
        outcome
    }

    /// Checks a component without registering it: compiles, links and asks it
    /// to describe itself.
    pub async fn inspect(&self, file: &Path, bytes: &[u8]) -> Result<Arc<Plugin>, String> {
        let digest = crate::runtime::hex(&sha2::Sha256::digest(bytes));
        if let Some(known) = self.by_digest(&digest) {
            return Ok(known);
        }
        let loaded = {
            let runtime = self.runtime.clone();
            let bytes = bytes.to_vec();
            tokio::task::spawn_blocking(move || runtime.load(&bytes))
                .await
                .map_err(|e| format!("compiling: {e}"))?
                .map_err(|e| format!("not a wasmq:plugin@0.1 job-type component: {e}"))?
        };
        let call = self
            .runtime
            .call(
                &loaded,
                CallCtx::describe(),
                DESCRIBE_LIMITS,
                Box::new(|store, instance| {
                    Box::pin(
                        async move { instance.wasmq_plugin_plugin().call_describe(store).await },
                    )
                }),
            )
            .await;
        let descriptor = call.result.map_err(|e| format!("describe failed: {e}"))?;
        Ok(Arc::new(validate(descriptor, file, loaded)?))
    }

    /// Makes the component `bytes`, read from `file`, the version its job types get.
    async fn install(&self, file: &Path, bytes: &[u8]) -> Result<Change, String> {
        let plugin = self.inspect(file, bytes).await?;
        let digest = plugin.digest().to_string();
        if let Some(archive) = &self.archive {
            let kept = archive.join(format!("{digest}.wasm"));
            if !kept.exists() {
                write_atomically(&kept, bytes)
                    .map_err(|e| format!("archiving {}: {e}", kept.display()))?;
            }
        }
        let mut tables = self.tables.write().expect("registry lock");
        if tables.by_file.get(file) == Some(&digest) {
            return Ok(Change::Unchanged);
        }
        for job_type in &plugin.job_types {
            if let Some(other) = tables.by_type.get(job_type)
                && other.name != plugin.name
            {
                return Err(format!(
                    "job type {job_type:?} is already served by plugin {} ({})",
                    other.name,
                    other.file.display()
                ));
            }
        }
        if let Some(old) = tables.by_file.get(file).cloned() {
            let old = tables.by_digest[&old].clone();
            for gone in old
                .job_types
                .iter()
                .filter(|t| !plugin.job_types.contains(t))
            {
                tables.by_type.remove(gone);
            }
        }
        for job_type in &plugin.job_types {
            tables.by_type.insert(job_type.clone(), plugin.clone());
        }
        tables.by_digest.insert(digest.clone(), plugin);
        tables.by_file.insert(file.to_path_buf(), digest.clone());
        Ok(Change::Loaded(digest))
    }

    /// The file went from the plugin directory: its job types take no new
    /// jobs; jobs already running keep its version. Returns the plugin's name.
    pub fn retire_file(&self, file: &Path) -> Option<String> {
        let mut tables = self.tables.write().expect("registry lock");
        tables.rejected.remove(file);
        let digest = tables.by_file.remove(file)?;
        let plugin = tables.by_digest.get(&digest)?.clone();
        tables
            .by_type
            .retain(|_, current| !Arc::ptr_eq(current, &plugin));
        tracing::info!(plugin = %plugin.name, file = %file.display(), "plugin retired");
        crate::metrics::global().plugin_reload(crate::metrics::ReloadOutcome::Retired);
        Some(plugin.name.clone())
    }

    /// Forgets every version of the plugin `name` (none of its jobs may be
    /// unfinished); returns its files in the plugin directory.
    pub fn remove(&self, name: &str) -> Vec<PathBuf> {
        let mut tables = self.tables.write().expect("registry lock");
        tables.by_type.retain(|_, p| p.name != name);
        tables.by_digest.retain(|_, p| p.name != name);
        let files: Vec<PathBuf> = tables
            .by_file
            .iter()
            .filter(|(_, d)| !tables.by_digest.contains_key(*d))
            .map(|(f, _)| f.clone())
            .collect();
        for file in &files {
            tables.by_file.remove(file);
        }
        files
    }

    /// Loads archived versions that jobs still need (after a restart), without
    /// making them current; returns the digests that could not be found.
    pub async fn restore(&self, digests: &[String]) -> Vec<String> {
        let mut missing = Vec::new();
        for digest in digests {
            if self.by_digest(digest).is_some() {
                continue;
            }
            let Some(file) = self
                .archive
                .as_ref()
                .map(|a| a.join(format!("{digest}.wasm")))
            else {
                missing.push(digest.clone());
                continue;
            };
            match std::fs::read(&file) {
                Ok(bytes) => match self.inspect(&file, &bytes).await {
                    Ok(plugin) if plugin.digest() == digest => {
                        self.tables
                            .write()
                            .expect("registry lock")
                            .by_digest
                            .insert(digest.clone(), plugin);
                    }
                    _ => missing.push(digest.clone()),
                },
                Err(_) => missing.push(digest.clone()),
            }
        }
        missing
    }

    /// The file of the plugin directory that serves the plugin `name`, if any.
    pub fn file_of(&self, name: &str) -> Option<PathBuf> {
        let tables = self.tables.read().expect("registry lock");
        tables
            .by_file
            .iter()
            .find(|(_, digest)| {
                tables
                    .by_digest
                    .get(*digest)
                    .is_some_and(|p| p.name == name)
            })
            .map(|(file, _)| file.clone())
    }

    /// The current plugin version for a job type.
    pub fn for_type(&self, job_type: &str) -> Option<Arc<Plugin>> {
        self.tables
            .read()
            .expect("registry lock")
            .by_type
            .get(job_type)
            .cloned()
    }

    /// A loaded plugin version by its digest.
    pub fn by_digest(&self, digest: &str) -> Option<Arc<Plugin>> {
        self.tables
            .read()
            .expect("registry lock")
            .by_digest
            .get(digest)
            .cloned()
    }

    /// The job types served, sorted.
    pub fn job_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .tables
            .read()
            .expect("registry lock")
            .by_type
            .keys()
            .cloned()
            .collect();
        types.sort();
        types
    }

    /// The current version of every plugin, sorted by name.
    pub fn current(&self) -> Vec<Arc<Plugin>> {
        let tables = self.tables.read().expect("registry lock");
        let mut plugins: Vec<Arc<Plugin>> = Vec::new();
        for plugin in tables.by_type.values() {
            if !plugins.iter().any(|p| Arc::ptr_eq(p, plugin)) {
                plugins.push(plugin.clone());
            }
        }
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        plugins
    }

    /// Every loaded version with its status, by name then load time.
    pub fn versions(&self) -> Vec<(Arc<Plugin>, Status)> {
        let tables = self.tables.read().expect("registry lock");
        let mut all: Vec<(Arc<Plugin>, Status)> = tables
            .by_digest
            .values()
            .map(|p| {
                let active = tables.by_type.values().any(|c| Arc::ptr_eq(c, p));
                let status = if active {
                    Status::Active
                } else {
                    Status::Superseded
                };
                (p.clone(), status)
            })
            .collect();
        all.sort_by(|(a, _), (b, _)| a.name.cmp(&b.name).then(a.loaded_at.cmp(&b.loaded_at)));
        all
    }

    /// Files refused and not loaded since, with reasons.
    pub fn rejected(&self) -> Vec<Rejection> {
        let mut all: Vec<Rejection> = self
            .tables
            .read()
            .expect("registry lock")
            .rejected
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.file.cmp(&b.file));
        all
    }
}

/// True for the files the plugin directory serves: `*.wasm`.
pub fn is_component_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
}

/// Writes a file whole or not at all (a temporary name, then a rename).
pub fn write_atomically(file: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let tmp = file.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, file)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn validate(d: Descriptor, file: &Path, loaded: Loaded) -> Result<Plugin, String> {
    if !valid_name(&d.name) {
        return Err(format!(
            "describe: name {:?} must be 1-64 letters, digits, '-', '_' or '.'",
            d.name
        ));
    }
    if d.version.trim().is_empty() {
        return Err("describe: version is empty".into());
    }
    if d.job_types.is_empty() {
        return Err("describe: no job types".into());
    }
    if let Some(bad) = d.job_types.iter().find(|t| !valid_name(t)) {
        return Err(format!(
            "describe: job type {bad:?} must be 1-64 letters, digits, '-', '_' or '.'"
        ));
    }
    let schema: serde_json::Value = serde_json::from_str(&d.params_schema)
        .map_err(|e| format!("describe: params-schema is not JSON: {e}"))?;
    if !schema.is_object() {
        return Err("describe: params-schema must be a JSON object".into());
    }
    let params_validator = jsonschema::validator_for(&schema)
        .map_err(|e| format!("describe: params-schema is not a usable JSON Schema: {e}"))?;
    Ok(Plugin {
        name: d.name,
        version: d.version,
        job_types: d.job_types,
        params_schema: schema,
        params_validator,
        capabilities: d.capabilities,
        file: file.to_path_buf(),
        loaded_at: now_ms(),
        loaded,
    })
}
