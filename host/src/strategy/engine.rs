//! One wasmtime `Engine` for all plugins: pooling allocator, epoch interruption,
//! compiled components cached on disk by content hash. Loading a plugin checks
//! it completely (a component, our world, a working `describe`) before anyone
//! may swap it in.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use super::bindings::top::{MarketTerms, TopOfBook, TopOfBookIndices, TopView};
use super::bindings::{
    MarketInfo, MarketView, Opportunity, Param, PluginInfo, Strategy, StrategyIndices, WIT_VERSION,
};
use super::state::{PluginState, now_micros};

/// Limits and knobs of the plugin runtime.
#[derive(Debug, Clone)]
pub struct RuntimeLimits {
    /// Wall-clock budget of one `evaluate` call.
    pub evaluate_budget: Duration,
    /// Budget of `describe`, `configure` and `register-markets` (interpreted
    /// plugins initialise lazily on their first call).
    pub control_budget: Duration,
    /// Most linear memory one plugin instance may have.
    pub memory_cap: usize,
    /// Epoch tick: the granularity of deadlines.
    pub tick: Duration,
    /// Where compiled components are cached (None: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator (fast instantiation, fixed slots).
    pub pooling: bool,
    /// How long the evaluation thread polls for the next book change before
    /// it parks (zero: park at once). See `runtime::spin_recv`.
    pub spin: Duration,
    /// Evaluate on the thread that published the book change (the feed's),
    /// not on a strategy thread of its own: no hand-off between the book
    /// message and the decision. See `runtime::Shared::pump`.
    pub inline: bool,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            evaluate_budget: Duration::from_millis(50),
            control_budget: Duration::from_secs(2),
            memory_cap: 256 << 20,
            tick: Duration::from_millis(1),
            cache_dir: None,
            pooling: true,
            spin: Duration::from_micros(50),
            inline: true,
        }
    }
}

/// Why a file could not become a plugin. The old version (if any) keeps running.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("not a WebAssembly component (bad header)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("imports something the host does not provide: {0}")]
    Imports(String),
    #[error("does not implement the doubletime:strategy@{WIT_VERSION} world: {0}")]
    WrongWorld(String),
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("bad plugin name '{0}': use lowercase letters, digits and '-', at most 64")]
    BadName(String),
}

/// A call into a plugin that went wrong. Any of these throws the instance away.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Fault {
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    #[error("memory cap of {0} bytes reached")]
    MemoryCap(usize),
    #[error("trap: {0}")]
    Trap(String),
    #[error("invalid output: {0}")]
    BadOutput(String),
}

/// Valid plugin names double as file names: no path tricks possible.
pub fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// A compiled and checked plugin version, ready to instantiate.
pub struct PluginCode {
    pub name: Arc<str>,
    pub sha256: String,
    pub info: PluginInfo,
    pub bytes: usize,
    /// Compile (or cache load) plus check time.
    pub load_time: Duration,
    pub loaded_at: u64,
    pub from_cache: bool,
    /// Whether the plugin exports the 1.1 `top-of-book` fast hot call.
    pub top_of_book: bool,
    pre: InstancePre<PluginState>,
    indices: StrategyIndices,
    top: Option<TopOfBookIndices>,
}

impl std::fmt::Debug for PluginCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCode")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// A live instance: one long-lived store per plugin.
pub struct PluginInstance {
    store: Store<PluginState>,
    bindings: Strategy,
    top: Option<TopOfBook>,
    /// The terms `set-terms` last gave this instance, by market index.
    terms_sent: Vec<Option<MarketTerms>>,
    /// `evaluate_budget` in epoch ticks, worked out once rather than with a
    /// 128-bit division on every hot call.
    evaluate_ticks: u64,
    limits: Arc<RuntimeLimits>,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("plugin", &self.store.data().plugin)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct PluginHost {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    limits: Arc<RuntimeLimits>,
    engine_hash: u64,
}

const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const CORE_MODULE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

impl PluginHost {
    pub fn new(limits: RuntimeLimits) -> wasmtime::Result<Self> {
        let mut cfg = Config::new();
        cfg.epoch_interruption(true);
        cfg.wasm_component_model(true);
        if limits.pooling {
            // Slots sized like Spin's production defaults, scaled to a trading host
            // that runs tens of plugins, not thousands.
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(64)
                .total_core_instances(1024)
                .total_memories(256)
                .total_tables(512)
                .max_memories_per_component(32)
                .max_tables_per_component(64)
                .max_core_instances_per_component(64)
                .max_component_instance_size(10 << 20)
                .max_core_instance_size(10 << 20)
                .table_elements(100_000)
                .max_memory_size(limits.memory_cap.max(64 << 20));
            cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        super::no_wait::add_to_linker(&mut linker)?;
        Strategy::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = h.finish();
        start_epoch_ticker(&engine, limits.tick);
        Ok(PluginHost {
            engine,
            linker: Arc::new(linker),
            limits: Arc::new(limits),
            engine_hash,
        })
    }

    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    fn cache_path(&self, sha: &str) -> Option<PathBuf> {
        self.limits
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha}-{:016x}.cwasm", self.engine_hash)))
    }

    /// Compiles, or loads from the cache, a component. Returns it and whether it came from the cache.
    fn compile(&self, bytes: &[u8], sha: &str) -> Result<(Component, bool), LoadError> {
        if let Some(path) = self.cache_path(sha)
            && path.is_file()
        {
            // SAFETY: cache files are only ever written by `Component::serialize`
            // below under a name that includes the content hash and this engine's
            // compatibility hash, via write-then-rename, and never modified after.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable compiled-plugin cache entry")
                }
            }
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        if let Some(path) = self.cache_path(sha)
            && let Err(e) = write_cache(&path, &component)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled plugin");
        }
        Ok((component, false))
    }

    /// Loads and checks one plugin version; nothing is swapped in here.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<(Arc<PluginCode>, PluginInstance), LoadError> {
        if !valid_plugin_name(name) {
            return Err(LoadError::BadName(name.to_string()));
        }
        let started = Instant::now();
        match bytes.get(..8) {
            Some(h) if h == COMPONENT_HEADER => {}
            Some(h) if h == CORE_MODULE_HEADER => return Err(LoadError::CoreModule),
            _ => return Err(LoadError::NotWasm),
        }
        let sha = hex::encode(Sha256::digest(bytes));
        let (component, from_cache) = self.compile(bytes, &sha)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports(format!("{e:#}")))?;
        let indices =
            StrategyIndices::new(&pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        // Optional: a 1.0 plugin, or one that needs the full view, has no `top-of-book`.
        let top = TopOfBookIndices::new(&pre).ok();
        let name: Arc<str> = name.into();
        let mut instance = PluginInstance::new(
            &self.engine,
            &pre,
            &indices,
            top.as_ref(),
            name.clone(),
            self.limits.clone(),
        )
        .map_err(|f| LoadError::Describe(f.to_string()))?;
        let info = instance
            .describe()
            .map_err(|f| LoadError::Describe(f.to_string()))?;
        if let Some(bad) = info
            .params
            .iter()
            .find(|p| p.name.is_empty() || p.name.len() > 64)
        {
            return Err(LoadError::Describe(format!(
                "parameter name '{}' is empty or too long",
                bad.name
            )));
        }
        let code = Arc::new(PluginCode {
            name,
            sha256: sha,
            info,
            bytes: bytes.len(),
            load_time: started.elapsed(),
            loaded_at: now_micros(),
            from_cache,
            top_of_book: top.is_some(),
            pre,
            indices,
            top,
        });
        Ok((code, instance))
    }

    /// Instantiates any component exporting `evaluate: func(u32) -> u32` (such as
    /// the test-only `test-wrong-world`) to measure the bare component-call floor
    /// in benchmarks, beside a real `evaluate`.
    pub fn floor_probe(&self, bytes: &[u8]) -> wasmtime::Result<FloorProbe> {
        let component = Component::new(&self.engine, bytes)?;
        let mut store = Store::new(
            &self.engine,
            PluginState::new("floor-probe".into(), self.limits.memory_cap),
        );
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self.linker.instantiate(&mut store, &component)?;
        let func = instance.get_typed_func::<(u32,), (u32,)>(&mut store, "evaluate")?;
        Ok(FloorProbe { store, func })
    }

    /// A fresh instance of an already checked version (after a fault).
    pub fn instantiate(&self, code: &PluginCode) -> Result<PluginInstance, Fault> {
        PluginInstance::new(
            &self.engine,
            &code.pre,
            &code.indices,
            code.top.as_ref(),
            code.name.clone(),
            self.limits.clone(),
        )
    }
}

/// See [`PluginHost::floor_probe`].
pub struct FloorProbe {
    store: Store<PluginState>,
    func: wasmtime::component::TypedFunc<(u32,), (u32,)>,
}

impl FloorProbe {
    pub fn call(&mut self, x: u32) -> wasmtime::Result<u32> {
        let (y,) = self.func.call(&mut self.store, (x,))?;
        Ok(y)
    }

    /// The same call through wasmtime's async entry: the guest runs on a
    /// fiber stack, inside the poll of the future. What a plugin call made
    /// from a feed's task would pay (the sync bindings cannot run on a tokio
    /// worker: BENCHMARKS.md). `None` if the first poll did not finish it.
    pub fn call_async_polled_once(&mut self, x: u32) -> Option<wasmtime::Result<u32>> {
        use futures_util::FutureExt;
        self.func
            .call_async(&mut self.store, (x,))
            .now_or_never()
            .map(|r| r.map(|(y,)| y))
    }
}

fn write_cache(path: &Path, component: &Component) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // Unique temp name: several processes may compile the same plugin at once.
    let tmp = path.with_extension(
        format!(
            "tmp{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], ""),
    );
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Bumps the engine's epoch every `tick` for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        });
}

fn classify(err: wasmtime::Error, budget: Duration, memory_cap: usize) -> Fault {
    let trap = err.downcast_ref::<Trap>();
    if trap == Some(&Trap::Interrupt) {
        return Fault::Deadline(budget);
    }
    let text = format!("{err:#}");
    if text.contains("growing memory") || text.contains("memory minimum size") {
        return Fault::MemoryCap(memory_cap);
    }
    // The wasm trap, or the host's refusal, not the backtrace wrapped round it.
    Fault::Trap(trap.map_or_else(|| err.root_cause().to_string(), Trap::to_string))
}

impl PluginInstance {
    fn new(
        engine: &Engine,
        pre: &InstancePre<PluginState>,
        indices: &StrategyIndices,
        top: Option<&TopOfBookIndices>,
        name: Arc<str>,
        limits: Arc<RuntimeLimits>,
    ) -> Result<Self, Fault> {
        let mut store = Store::new(engine, PluginState::new(name, limits.memory_cap));
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(limits.control_budget, limits.tick));
        store.epoch_deadline_trap();
        let fault = |e| classify(e, limits.control_budget, limits.memory_cap);
        let instance = pre.instantiate(&mut store).map_err(fault)?;
        let bindings = indices.load(&mut store, &instance).map_err(fault)?;
        let top = match top {
            Some(t) => Some(t.load(&mut store, &instance).map_err(fault)?),
            None => None,
        };
        Ok(PluginInstance {
            store,
            bindings,
            top,
            terms_sent: Vec::new(),
            evaluate_ticks: ticks(limits.evaluate_budget, limits.tick),
            limits,
        })
    }

    fn arm(&mut self, budget: Duration) {
        self.store
            .set_epoch_deadline(ticks(budget, self.limits.tick));
    }

    pub fn describe(&mut self) -> Result<PluginInfo, Fault> {
        let budget = self.limits.control_budget;
        self.arm(budget);
        self.bindings
            .call_describe(&mut self.store)
            .map_err(|e| classify(e, budget, self.limits.memory_cap))
    }

    /// `Ok(Err(msg))`: the plugin refused the parameters (not a fault).
    pub fn configure(&mut self, params: &[Param]) -> Result<Result<(), String>, Fault> {
        let budget = self.limits.control_budget;
        self.arm(budget);
        self.bindings
            .call_configure(&mut self.store, params)
            .map_err(|e| classify(e, budget, self.limits.memory_cap))
    }

    pub fn register_markets(&mut self, markets: &[MarketInfo]) -> Result<(), Fault> {
        let budget = self.limits.control_budget;
        self.arm(budget);
        // New markets: every pair's terms go again before its next `evaluate-top`.
        self.terms_sent.clear();
        self.bindings
            .call_register_markets(&mut self.store, markets)
            .map_err(|e| classify(e, budget, self.limits.memory_cap))
    }

    /// Whether this instance takes the 1.1 fast hot call, [`Self::evaluate_top`].
    pub fn has_top_of_book(&self) -> bool {
        self.top.is_some()
    }

    /// The fast hot call of a plugin exporting `top-of-book`: the pair's terms go
    /// first when the plugin has not seen them (after `register-markets`, or
    /// when they changed), then `evaluate-top`. Output is checked like
    /// [`Self::evaluate`]'s.
    pub fn evaluate_top(
        &mut self,
        view: &TopView,
        terms: &MarketTerms,
    ) -> Result<Option<Opportunity>, Fault> {
        let Some(top) = self.top.as_ref() else {
            return Err(Fault::BadOutput("no top-of-book export".into()));
        };
        let slot = view.market as usize;
        if self.terms_sent.get(slot).and_then(Option::as_ref) != Some(terms) {
            let budget = self.limits.control_budget;
            self.store
                .set_epoch_deadline(ticks(budget, self.limits.tick));
            top.call_set_terms(&mut self.store, std::slice::from_ref(terms))
                .map_err(|e| classify(e, budget, self.limits.memory_cap))?;
            if self.terms_sent.len() <= slot {
                self.terms_sent.resize(slot + 1, None);
            }
            self.terms_sent[slot] = Some(*terms);
        }
        let budget = self.limits.evaluate_budget;
        self.store.set_epoch_deadline(self.evaluate_ticks);
        let out = top
            .call_evaluate_top(&mut self.store, *view)
            .map_err(|e| classify(e, budget, self.limits.memory_cap))?;
        check_output(view.market, out.as_slice())?;
        Ok(out)
    }

    /// The hot call. Output is checked: anything a venue could not accept is a fault.
    pub fn evaluate(&mut self, view: &MarketView) -> Result<Vec<Opportunity>, Fault> {
        let budget = self.limits.evaluate_budget;
        self.store.set_epoch_deadline(self.evaluate_ticks);
        let out = self
            .bindings
            .call_evaluate(&mut self.store, view)
            .map_err(|e| classify(e, budget, self.limits.memory_cap))?;
        check_output(view.market, &out)?;
        Ok(out)
    }

    /// Log lines this instance wanted to write beyond its rate limit.
    pub fn logs_dropped(&self) -> u64 {
        self.store.data().logs_dropped
    }
}

fn ticks(budget: Duration, tick: Duration) -> u64 {
    (budget.as_nanos() / tick.as_nanos().max(1)) as u64 + 1
}

/// Most opportunities one call may return: one per direction is all a rule needs.
pub const MAX_OPPORTUNITIES_PER_CALL: usize = 16;

fn check_output(market: u32, out: &[Opportunity]) -> Result<(), Fault> {
    if out.len() > MAX_OPPORTUNITIES_PER_CALL {
        return Err(Fault::BadOutput(format!(
            "{} opportunities in one call (max {MAX_OPPORTUNITIES_PER_CALL})",
            out.len()
        )));
    }
    for o in out {
        let bad = |m: String| Err(Fault::BadOutput(m));
        if o.market != market {
            return bad(format!(
                "opportunity for market {} when asked about {market}",
                o.market
            ));
        }
        for (leg, p) in [("yes-limit", o.yes_limit), ("no-limit", o.no_limit)] {
            if p == 0 || p >= 1_000_000 {
                return bad(format!("{leg} {p} is outside (0, 1000000) micro-dollars"));
            }
        }
        if o.size == 0 {
            return bad("size is zero".into());
        }
        if o.buy_yes_on == o.buy_no_on {
            return bad(format!("both legs on {:?}", o.buy_yes_on));
        }
    }
    Ok(())
}
