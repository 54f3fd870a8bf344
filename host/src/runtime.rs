//! The wasm runtime: the wasmtime engine (component model, async, pooling, fuel,
//! epochs), the precompiled-component cache, the linker, and metered plugin calls.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::capabilities::CallCtx;

/// Bindings to the `wasmq:plugin` world, generated from `wit/`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "job-type",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::{JobType, JobTypePre};

/// How often the epoch advances: the granularity of wall-time limits and yields.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a plugin's stderr is kept for error messages.
const STDERR_CAPACITY: usize = 16 * 1024;

/// Per-call limits. Exceeding one fails the call with a message naming it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) one call may burn.
    pub fuel: u64,
    /// Wall time one call may take, host calls included.
    pub wall: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory: usize,
    /// Elements one table may grow to.
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 20_000_000_000,
            wall: Duration::from_secs(60),
            memory: 256 << 20,
            table_elements: 100_000,
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where precompiled components are cached, by content hash.
    pub cache_dir: PathBuf,
    /// How many instances may be alive at once (pool slots).
    pub instance_slots: u32,
    /// The largest memory any call may be given (the pool's slot size).
    pub max_memory: usize,
}

/// A runtime failure outside a plugin call.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Wasm(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl From<wasmtime::Error> for RuntimeError {
    fn from(e: wasmtime::Error) -> Self {
        RuntimeError::Wasm(format!("{e:#}"))
    }
}

/// A component ready to instantiate, with its content digest.
#[derive(Clone)]
pub struct Loaded {
    /// Hex SHA-256 of the component's bytes.
    pub digest: String,
    /// Linked and type-checked against the world.
    pub pre: JobTypePre<CallState>,
}

/// The engine and the linker, shared by every call.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache_dir: PathBuf,
    engine_hash: String,
}

/// What a plugin call's store holds: WASI (no files, no sockets), the limiter,
/// and the capability context scoped to the job.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    stderr: MemoryOutputPipe,
    /// The job-scoped capabilities the plugin's imports use.
    pub ctx: CallCtx,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A limit a plugin call went past.
#[derive(Debug, Error, Clone)]
pub enum LimitExceeded {
    #[error("memory limit of {limit} bytes exceeded (the plugin asked for {asked} bytes)")]
    Memory { limit: usize, asked: usize },
    #[error("table limit of {limit} elements exceeded")]
    Table { limit: usize },
    #[error("wall-time limit of {0:?} exceeded")]
    WallTime(Duration),
}

struct Limiter {
    memory: usize,
    table_elements: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            return Err(LimitExceeded::Memory {
                limit: self.memory,
                asked: desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            return Err(LimitExceeded::Table {
                limit: self.table_elements,
            }
            .into());
        }
        Ok(true)
    }
}

/// How a metered call ended.
pub struct CallOutcome<T> {
    /// The plugin's answer, or why there is none.
    pub result: Result<T, String>,
    /// Fuel burnt, instantiation included.
    pub fuel_used: u64,
    /// Wall time taken.
    pub elapsed: Duration,
}

/// A call into an instance: gets the store and the fresh instance.
pub type CallFn<T> = Box<
    dyn for<'a> FnOnce(
            &'a mut Store<CallState>,
            &'a JobType,
        ) -> Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>
        + Send,
>;

impl Runtime {
    /// Builds the engine, the linker with WASI and the capability imports, and
    /// starts the epoch ticker.
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let mut pool = PoolingAllocationConfig::default();
        let slots = config.instance_slots.max(2);
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 4)
            .total_stacks(slots)
            .max_memory_size(config.max_memory);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        JobType::add_to_linker::<CallState, HasSelf<CallCtx>>(&mut linker, |s| &mut s.ctx)?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasmq-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError::Io("starting the epoch thread".into(), e))?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());
        std::fs::create_dir_all(&config.cache_dir)
            .map_err(|e| RuntimeError::Io(config.cache_dir.display().to_string(), e))?;
        Ok(Runtime {
            engine,
            linker,
            cache_dir: config.cache_dir.clone(),
            engine_hash,
        })
    }

    /// Compiles a component (or loads it from the cache, keyed by its content
    /// hash and the engine's settings) and links it against the world.
    pub fn load(&self, bytes: &[u8]) -> Result<Loaded, RuntimeError> {
        let digest = hex(&Sha256::digest(bytes));
        let cached = self
            .cache_dir
            .join(format!("{digest}-{}.cwasm", self.engine_hash));
        let component = match self.cached(&cached) {
            Some(component) => component,
            None => {
                let artifact = self.engine.precompile_component(bytes)?;
                write_atomically(&cached, &artifact)?;
                // SAFETY: the artifact was produced just now by this engine.
                unsafe { Component::deserialize(&self.engine, &artifact)? }
            }
        };
        let pre = self.linker.instantiate_pre(&component)?;
        let pre = JobTypePre::new(pre)?;
        Ok(Loaded { digest, pre })
    }

    fn cached(&self, file: &Path) -> Option<Component> {
        if !file.exists() {
            return None;
        }
        // SAFETY: files in the cache directory are written only by `load`, from
        // this engine's own compilation (never from uploads); a file that does
        // not match the engine is refused by `deserialize_file` and recompiled.
        match unsafe { Component::deserialize_file(&self.engine, file) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "ignoring unusable cached component");
                None
            }
        }
    }

    /// Runs `call` on a fresh instance of `plugin` in a store of its own with
    /// the given limits, and meters it.
    pub async fn call<T>(
        &self,
        plugin: &Loaded,
        ctx: CallCtx,
        limits: Limits,
        call: CallFn<T>,
    ) -> CallOutcome<T> {
        let started = Instant::now();
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory: limits.memory,
                table_elements: limits.table_elements,
            },
            stderr,
            ctx,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        if let Err(e) = store.set_fuel(limits.fuel) {
            return CallOutcome {
                result: Err(format!("{e:#}")),
                fuel_used: 0,
                elapsed: started.elapsed(),
            };
        }
        let deadline = started + limits.wall;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(LimitExceeded::WallTime(limits.wall).into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let run = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            call(&mut store, &instance).await
        };
        // Fuel and epochs cannot interrupt a guest blocked in a host call: bound the whole call too.
        let result = match tokio::time::timeout(limits.wall + EPOCH_TICK * 10, run).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(explain(&e, &limits, &store.data().stderr.contents())),
            Err(_) => Err(LimitExceeded::WallTime(limits.wall).to_string()),
        };
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        CallOutcome {
            result,
            fuel_used,
            elapsed: started.elapsed(),
        }
    }
}

/// A message that says which limit a failed call hit, or how the plugin failed.
fn explain(e: &wasmtime::Error, limits: &Limits, stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let said = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("note:"))
        .collect::<Vec<_>>()
        .join(" | ");
    let base = if let Some(limit) = e.downcast_ref::<LimitExceeded>() {
        limit.to_string()
    } else if let Some(trap) = e.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => format!("fuel limit of {} exceeded", limits.fuel),
            Trap::StackOverflow => "stack overflow: the plugin recursed too deep".to_string(),
            Trap::Interrupt => LimitExceeded::WallTime(limits.wall).to_string(),
            Trap::UnreachableCodeReached if said.contains("panicked") => "plugin panicked".to_string(),
            Trap::UnreachableCodeReached => "plugin aborted (unreachable code reached)".to_string(),
            Trap::MemoryOutOfBounds => {
                "plugin trapped: out-of-bounds memory access (a bad pointer, or its shadow stack overflowed)"
                    .to_string()
            }
            other => format!("plugin trapped: {other}"),
        }
    } else {
        format!("plugin call failed: {e:#}")
    };
    if said.is_empty() {
        base
    } else {
        let tail: String = said
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{base}; plugin stderr: {tail}")
    }
}

fn write_atomically(file: &Path, data: &[u8]) -> Result<(), RuntimeError> {
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(|e| RuntimeError::Io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, file).map_err(|e| RuntimeError::Io(file.display().to_string(), e))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
