//! The wasm runtime: the wasmtime engines (component model, async, pooling; epoch
//! or fuel metering), the precompiled-component cache, the linker, and metered plugin calls.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
    ResourceLimiter, Store, Trap, UpdateDeadline,
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

/// How a plugin call's CPU use is measured and bounded.
///
/// Measured on our plugins (`wasmq bench`): fuel makes CPU-bound guest code
/// markedly slower than epoch interruption, so epochs are the default and
/// the cost of a call is the CPU time its thread spent on it; fuel stays an
/// option per job type for deterministic budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metering {
    /// Epoch interruption (wall-time limit, yields every tick); cost is CPU time.
    Epoch,
    /// Fuel too: a deterministic instruction budget per call.
    Fuel,
    /// Neither: nothing interrupts a runaway call. For benchmarks only.
    Unmetered,
}

impl Metering {
    fn index(self) -> usize {
        match self {
            Metering::Epoch => 0,
            Metering::Fuel => 1,
            Metering::Unmetered => 2,
        }
    }

    /// The name used in options and shown in job records.
    pub fn as_str(self) -> &'static str {
        match self {
            Metering::Epoch => "epoch",
            Metering::Fuel => "fuel",
            Metering::Unmetered => "unmetered",
        }
    }
}

impl FromStr for Metering {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "epoch" => Ok(Metering::Epoch),
            "fuel" => Ok(Metering::Fuel),
            other => Err(format!("unknown metering {other:?}: use epoch or fuel")),
        }
    }
}

/// Per-call limits. Exceeding one fails the call with a message naming it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// How the call is metered.
    pub metering: Metering,
    /// Fuel (roughly, wasm instructions) one call may burn, with fuel metering.
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
            metering: Metering::Epoch,
            fuel: 20_000_000_000,
            wall: Duration::from_secs(60),
            memory: 256 << 20,
            table_elements: 100_000,
        }
    }
}

/// The limits of each job type: defaults, and overrides per type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsTable {
    /// Limits of job types with no overrides.
    pub default: Limits,
    /// Limits per job type.
    pub per_type: std::collections::HashMap<String, Limits>,
}

impl LimitsTable {
    /// The limits of a job type's calls.
    pub fn for_type(&self, job_type: &str) -> Limits {
        self.per_type.get(job_type).copied().unwrap_or(self.default)
    }

    /// Adds the overrides of `spec`, `TYPE:key=value,...` with keys `fuel`,
    /// `wall-ms`, `memory-mb`, `table-elements` and `metering` (`epoch|fuel`),
    /// on top of the defaults.
    pub fn add_override(&mut self, spec: &str) -> Result<(), String> {
        let (job_type, settings) = spec
            .split_once(':')
            .ok_or_else(|| format!("{spec:?}: expected TYPE:key=value,..."))?;
        if job_type.is_empty() {
            return Err(format!("{spec:?}: the job type is empty"));
        }
        let mut limits = self.for_type(job_type);
        for setting in settings.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("{setting:?}: expected key=value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}: {value:?} is not a whole number"))
            };
            match key {
                "fuel" => limits.fuel = number()?,
                "wall-ms" => limits.wall = Duration::from_millis(number()?.max(1)),
                "memory-mb" => limits.memory = (number()? as usize) << 20,
                "table-elements" => limits.table_elements = number()? as usize,
                "metering" => limits.metering = value.parse()?,
                other => {
                    return Err(format!(
                        "unknown limit {other:?}: use fuel, wall-ms, memory-mb, table-elements or metering"
                    ));
                }
            }
        }
        self.per_type.insert(job_type.to_string(), limits);
        Ok(())
    }

    /// The largest memory limit of any job type.
    pub fn max_memory(&self) -> usize {
        self.per_type
            .values()
            .map(|l| l.memory)
            .fold(self.default.memory, usize::max)
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
    bytes: Arc<[u8]>,
    /// Linked and type-checked, per metering (compiled on first use).
    pres: Arc<[OnceLock<JobTypePre<CallState>>; 3]>,
}

/// One engine configuration with its linker.
struct Flavor {
    engine: Engine,
    linker: Linker<CallState>,
    engine_hash: String,
}

/// The engines and linkers, shared by every call.
#[derive(Clone)]
pub struct Runtime {
    flavors: Arc<[OnceLock<Flavor>; 3]>,
    config: RuntimeConfig,
}

/// What a plugin call's store holds: WASI (no files, no sockets), the limiter,
/// and the capability context scoped to the job.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    stderr: MemoryOutputPipe,
    /// When the current call's wall time runs out.
    deadline: Instant,
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
    /// The largest memory the instance has grown to, in bytes.
    size: usize,
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
        self.size = self.size.max(desired);
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
    /// Fuel burnt, instantiation included (fuel metering only, else 0).
    pub fuel_used: u64,
    /// CPU time the call's thread spent on it, instantiation and host calls
    /// made on that thread included: the call's cost for fair sharing.
    pub cpu: Duration,
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
    /// Prepares the engines (built on first use; the epoch one at once) and
    /// the component cache.
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(&config.cache_dir)
            .map_err(|e| RuntimeError::Io(config.cache_dir.display().to_string(), e))?;
        let runtime = Runtime {
            flavors: Arc::new(Default::default()),
            config: config.clone(),
        };
        runtime.flavor(Metering::Epoch)?;
        Ok(runtime)
    }

    fn flavor(&self, metering: Metering) -> Result<&Flavor, RuntimeError> {
        let cell = &self.flavors[metering.index()];
        if let Some(flavor) = cell.get() {
            return Ok(flavor);
        }
        let flavor = build_flavor(&self.config, metering)?;
        Ok(cell.get_or_init(|| flavor))
    }

    /// Compiles a component (or loads it from the cache, keyed by its content
    /// hash and the engine's settings) and links it against the world.
    pub fn load(&self, bytes: &[u8]) -> Result<Loaded, RuntimeError> {
        let loaded = Loaded {
            digest: hex(&Sha256::digest(bytes)),
            bytes: bytes.into(),
            pres: Arc::new(Default::default()),
        };
        self.pre(&loaded, Metering::Epoch)?;
        Ok(loaded)
    }

    /// The component linked for `metering`, compiled on first use.
    pub fn pre(
        &self,
        plugin: &Loaded,
        metering: Metering,
    ) -> Result<JobTypePre<CallState>, RuntimeError> {
        let cell = &plugin.pres[metering.index()];
        if let Some(pre) = cell.get() {
            return Ok(pre.clone());
        }
        let flavor = self.flavor(metering)?;
        let cached = self
            .config
            .cache_dir
            .join(format!("{}-{}.cwasm", plugin.digest, flavor.engine_hash));
        let component = match cached_component(&flavor.engine, &cached) {
            Some(component) => component,
            None => {
                let artifact = flavor.engine.precompile_component(&plugin.bytes)?;
                write_atomically(&cached, &artifact)?;
                // SAFETY: the artifact was produced just now by this engine.
                unsafe { Component::deserialize(&flavor.engine, &artifact)? }
            }
        };
        let pre = JobTypePre::new(flavor.linker.instantiate_pre(&component)?)?;
        Ok(cell.get_or_init(|| pre).clone())
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
        self.session(plugin, ctx, limits).call(call).await
    }

    /// A session for several calls of one job on one instance (see [`Session`]).
    pub fn session(&self, plugin: &Loaded, ctx: CallCtx, limits: Limits) -> Session {
        Session {
            runtime: self.clone(),
            plugin: plugin.clone(),
            ctx,
            limits,
            live: None,
        }
    }
}

/// Consecutive calls of one job, each metered and limited on its own, that
/// share an instance while it stays clean.
///
/// The first call instantiates the plugin in a store of its own; later calls
/// reuse that instance, so its globals and memory carry over between them.
/// A call that fails (trap, limit, timeout), writes to stderr, or leaves the
/// instance's memory past half its limit retires the instance: the next call
/// gets a fresh one. A session serves one job only: the scheduler keeps it
/// between that job's batches for a short while (`parking`), so nothing
/// carries over between jobs or tenants.
pub struct Session {
    runtime: Runtime,
    plugin: Loaded,
    ctx: CallCtx,
    limits: Limits,
    live: Option<Live>,
}

/// A store and, once the first call made it, its instance.
struct Live {
    store: Store<CallState>,
    instance: Option<JobType>,
}

impl Session {
    /// Whether the session holds an instance that its next call would reuse.
    pub fn is_warm(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.instance.is_some())
    }

    fn start(&mut self) -> Result<Live, String> {
        let limits = self.limits;
        let engine = self
            .runtime
            .flavor(limits.metering)
            .map_err(|e| format!("could not prepare the plugin: {e}"))?
            .engine
            .clone();
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
                size: 0,
            },
            stderr,
            deadline: Instant::now() + limits.wall,
            ctx: self.ctx.clone(),
        };
        let mut store = Store::new(&engine, state);
        store.limiter(|s| &mut s.limiter);
        if limits.metering == Metering::Fuel {
            // Fuel runs out in slices, so a long call yields to other tasks.
            store
                .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
                .map_err(|e| format!("{e:#}"))?;
        }
        if limits.metering != Metering::Unmetered {
            store.epoch_deadline_callback(move |store| {
                if Instant::now() >= store.data().deadline {
                    Err(LimitExceeded::WallTime(limits.wall).into())
                } else {
                    Ok(UpdateDeadline::Yield(1))
                }
            });
        }
        Ok(Live {
            store,
            instance: None,
        })
    }

    /// Runs `call` on this session's instance (a fresh one if there is none
    /// or the last one was retired), with the session's limits, and meters it.
    pub async fn call<T>(&mut self, call: CallFn<T>) -> CallOutcome<T> {
        let started = Instant::now();
        let limits = self.limits;
        let failed = |message: String| CallOutcome {
            result: Err(message),
            fuel_used: 0,
            cpu: Duration::ZERO,
            elapsed: started.elapsed(),
        };
        let pre = match self.runtime.pre(&self.plugin, limits.metering) {
            Ok(pre) => pre,
            Err(e) => return failed(format!("could not prepare the plugin: {e}")),
        };
        let live = match self.live.take() {
            Some(live) => live,
            None => match self.start() {
                Ok(live) => live,
                Err(message) => return failed(message),
            },
        };
        let Live {
            mut store,
            mut instance,
        } = live;
        if limits.metering == Metering::Fuel
            && let Err(e) = store.set_fuel(limits.fuel)
        {
            return failed(format!("{e:#}"));
        }
        if limits.metering != Metering::Unmetered {
            store.data_mut().deadline = started + limits.wall;
            store.set_epoch_deadline(1);
        }

        let mut cpu = Duration::ZERO;
        let run = CpuTimed {
            inner: Box::pin(async {
                let fresh = match instance.take() {
                    Some(reused) => reused,
                    None => pre.instantiate_async(&mut store).await?,
                };
                let called = call(&mut store, &fresh).await;
                instance = Some(fresh);
                called
            }),
            cpu: &mut cpu,
        };
        // Fuel and epochs cannot interrupt a guest blocked in a host call: bound the whole call too.
        let result = tokio::time::timeout(limits.wall + EPOCH_TICK * 10, run).await;
        let result = match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(explain(&e, &limits, &store.data().stderr.contents())),
            Err(_) => Err(LimitExceeded::WallTime(limits.wall).to_string()),
        };
        let fuel_used = match limits.metering {
            Metering::Fuel => limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
            _ => 0,
        };
        let state = store.data();
        let clean = result.is_ok()
            && state.stderr.contents().is_empty()
            && state.limiter.size <= limits.memory / 2;
        if clean {
            self.live = Some(Live { store, instance });
        }
        CallOutcome {
            result,
            fuel_used,
            cpu,
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

/// Bytes of each pool slot's memory and tables kept mapped between instances.
const KEEP_RESIDENT: usize = 1 << 20;

/// How much fuel a call burns between yields to the executor (fuel metering).
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Builds an engine with `metering` and its linker (WASI plus the capability
/// imports); an engine with epochs gets a thread that ticks them.
fn build_flavor(config: &RuntimeConfig, metering: Metering) -> Result<Flavor, RuntimeError> {
    let mut pool = PoolingAllocationConfig::default();
    let slots = config.instance_slots.max(2);
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        .max_memory_size(config.max_memory)
        // Reset a slot's first pages by zeroing rather than returning them to the
        // kernel: most instances touch little memory, and page faults dominate.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(metering == Metering::Fuel)
        .epoch_interruption(metering != Metering::Unmetered)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `WASMQ_WASM_PROFILER=perfmap` writes /tmp/perf-PID.map, so that `perf report`
    // names the plugins' compiled functions (build them unstripped to see their names).
    match std::env::var("WASMQ_WASM_PROFILER").as_deref() {
        Ok("perfmap") => {
            wasm.profiler(ProfilingStrategy::PerfMap);
        }
        Ok(other) => {
            tracing::warn!(
                "WASMQ_WASM_PROFILER={other:?} is not known (only \"perfmap\" is); not profiling"
            );
        }
        Err(_) => {}
    }
    let engine = Engine::new(&wasm)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    JobType::add_to_linker::<CallState, HasSelf<CallCtx>>(&mut linker, |s| &mut s.ctx)?;

    if metering != Metering::Unmetered {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name(format!("wasmq-epoch-{}", metering.as_str()))
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError::Io("starting the epoch thread".into(), e))?;
    }

    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = format!("{:016x}", hasher.finish());
    Ok(Flavor {
        engine,
        linker,
        engine_hash,
    })
}

fn cached_component(engine: &Engine, file: &Path) -> Option<Component> {
    if !file.exists() {
        return None;
    }
    // SAFETY: files in the cache directory are written only by `Runtime::pre`,
    // from this host's own compilation (never from uploads); a file that does
    // not match the engine is refused by `deserialize_file` and recompiled.
    match unsafe { Component::deserialize_file(engine, file) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "ignoring unusable cached component");
            None
        }
    }
}

/// A future that adds the CPU time of its thread during each poll to `cpu`:
/// the guest runs inside those polls, whichever worker thread polls it.
struct CpuTimed<'a, F> {
    inner: Pin<Box<F>>,
    cpu: &'a mut Duration,
}

impl<F: Future> Future for CpuTimed<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = thread_cpu_time();
        let polled = self.inner.as_mut().poll(cx);
        *self.cpu += thread_cpu_time().saturating_sub(before);
        polled
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_to_their_type_only() {
        let mut table = LimitsTable::default();
        table
            .add_override("pdf-rip:fuel=5,wall-ms=2000,memory-mb=512,metering=fuel")
            .unwrap();
        let pdf = table.for_type("pdf-rip");
        assert_eq!(pdf.fuel, 5);
        assert_eq!(pdf.wall, Duration::from_secs(2));
        assert_eq!(pdf.memory, 512 << 20);
        assert_eq!(pdf.metering, Metering::Fuel);
        assert_eq!(pdf.table_elements, Limits::default().table_elements);
        assert_eq!(table.for_type("delete"), Limits::default());
        assert_eq!(table.max_memory(), 512 << 20);
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let mut table = LimitsTable::default();
        for (spec, says) in [
            ("delete", "expected TYPE:key=value"),
            (":fuel=1", "job type is empty"),
            ("delete:fuel", "expected key=value"),
            ("delete:fuel=lots", "not a whole number"),
            ("delete:speed=9", "unknown limit"),
            ("delete:metering=magic", "unknown metering"),
        ] {
            let error = table.add_override(spec).unwrap_err();
            assert!(error.contains(says), "{spec}: {error}");
        }
        assert!(table.per_type.is_empty());
    }

    #[test]
    fn cpu_time_counts_work_and_not_sleep() {
        let before = thread_cpu_time();
        let mut x = 1u64;
        while thread_cpu_time() - before < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(50));
        let asleep = thread_cpu_time() - after;
        assert!(asleep < Duration::from_millis(10), "{asleep:?}");
    }
}
