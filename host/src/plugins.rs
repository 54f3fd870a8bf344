//! The plugin registry: loads components from the plugin directory, asks each
//! what it is (`describe`), and maps job types to plugin versions by digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::capabilities::CallCtx;
use crate::runtime::bindings::wasmq::plugin::types::{Capabilities, Descriptor};
use crate::runtime::{Limits, Loaded, Metering, Runtime};
use crate::store::now_ms;

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
    by_type: HashMap<String, Arc<Plugin>>,
    by_digest: HashMap<String, Arc<Plugin>>,
    rejected: Vec<Rejection>,
}

/// Every plugin version loaded on this host.
pub struct Registry {
    runtime: Runtime,
    tables: RwLock<Tables>,
}

impl Registry {
    /// An empty registry over a runtime.
    pub fn new(runtime: Runtime) -> Self {
        Registry {
            runtime,
            tables: RwLock::new(Tables::default()),
        }
    }

    /// Loads every `*.wasm` in `dir`, in name order; returns how many loaded.
    pub async fn load_dir(&self, dir: &Path) -> std::io::Result<usize> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        files.sort();
        let mut loaded = 0;
        for file in files {
            match self.load_file(&file).await {
                Ok(plugin) => {
                    tracing::info!(plugin = %plugin.name, version = %plugin.version, types = ?plugin.job_types, file = %file.display(), "plugin loaded");
                    loaded += 1;
                }
                Err(reason) => {
                    tracing::warn!(file = %file.display(), %reason, "plugin rejected");
                    self.tables
                        .write()
                        .expect("registry lock")
                        .rejected
                        .push(Rejection {
                            file: file.display().to_string(),
                            reason,
                            at: now_ms(),
                        });
                }
            }
        }
        Ok(loaded)
    }

    /// Loads one component file and registers it for its job types.
    pub async fn load_file(&self, file: &Path) -> Result<Arc<Plugin>, String> {
        let bytes =
            std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let loaded = {
            let runtime = self.runtime.clone();
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
        let plugin = Arc::new(validate(descriptor, file, loaded)?);

        let mut tables = self.tables.write().expect("registry lock");
        for job_type in &plugin.job_types {
            if let Some(other) = tables.by_type.get(job_type)
                && other.name != plugin.name
            {
                return Err(format!(
                    "job type {job_type:?} is already served by plugin {}",
                    other.name
                ));
            }
        }
        for job_type in &plugin.job_types {
            tables.by_type.insert(job_type.clone(), plugin.clone());
        }
        tables
            .by_digest
            .insert(plugin.digest().to_string(), plugin.clone());
        Ok(plugin)
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

    /// Files refused so far, with reasons.
    pub fn rejected(&self) -> Vec<Rejection> {
        self.tables.read().expect("registry lock").rejected.clone()
    }
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
    Ok(Plugin {
        name: d.name,
        version: d.version,
        job_types: d.job_types,
        params_schema: schema,
        capabilities: d.capabilities,
        file: file.to_path_buf(),
        loaded_at: now_ms(),
        loaded,
    })
}
