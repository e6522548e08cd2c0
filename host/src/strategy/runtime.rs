//! The plugin runtime: evaluates every enabled plugin on every book change and
//! swaps plugin versions between two evaluations.
//!
//! Every plugin's long-lived store sits at one desk, and one thread at a time
//! works there. By default that is the thread that published the change (a
//! feed's task: the decision is made before the feed reads on, with no
//! hand-off to another thread); optionally a strategy thread of its own that
//! waits for changes. Everything that changes the set of plugins (install,
//! remove, enable, configure, markets) arrives as a command applied at the
//! desk before the next evaluation, so a book change is evaluated by exactly
//! one version of each plugin: never by neither, never by both. Loading
//! (compile, check, smoke call) happens on the caller's thread, off the hot path.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bindings::{MarketInfo, MarketView, Param, ParamSpec, Venue as WitVenue};
use super::engine::{Fault, LoadError, PluginCode, PluginHost, PluginInstance, valid_plugin_name};
use super::state::now_micros;
use super::stats::{Histogram, LatencySummary, PluginStats};
use super::view;
use crate::books::BookStore;
use crate::bus::{BookChanged, Bus, CoalescingReceiver, StatusEvent};
use crate::domain::events::{ArbitrageOpportunityFound, PluginStatus, PluginStatusChanged};
use crate::domain::{Opportunity, PairId, Price, Size, Venue};

/// How the runtime contains misbehaving plugins.
#[derive(Debug, Clone)]
pub struct FaultPolicy {
    /// Faults within `window` that quarantine a plugin.
    pub max_faults: usize,
    pub window: Duration,
}

impl Default for FaultPolicy {
    fn default() -> Self {
        FaultPolicy {
            max_faults: 3,
            window: Duration::from_secs(60),
        }
    }
}

/// Where a plugin stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum PluginMode {
    Active,
    Disabled,
    /// Disabled by the runtime after repeated faults; enabling it again resets it.
    Quarantined(String),
}

/// What the API and tests see of one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub name: String,
    pub mode: PluginMode,
    /// The plugin's own name, version and description from `describe`.
    pub plugin_name: String,
    pub plugin_version: String,
    pub description: String,
    /// Content hash (sha256) of the running version.
    pub sha256: String,
    pub wit_version: &'static str,
    /// The hot call the runtime makes: `evaluate-top` for plugins exporting the
    /// 1.1 `top-of-book` interface, `evaluate` otherwise.
    pub hot_call: &'static str,
    pub loaded_at_us: u64,
    pub load_ms: f64,
    pub from_cache: bool,
    pub reloads: u64,
    pub params: Vec<ParamReport>,
    pub calls: u64,
    pub opportunities: u64,
    pub faults: u64,
    pub last_error: Option<String>,
    /// Why the most recent new file was refused (the old version kept running).
    pub last_rejection: Option<String>,
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParamReport {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub default: i64,
    pub value: i64,
}

struct Registered {
    code: Arc<PluginCode>,
    mode: PluginMode,
    overrides: BTreeMap<String, i64>,
    stats: Arc<PluginStats>,
    reloads: u64,
    last_rejection: Option<String>,
}

fn params_for(specs: &[ParamSpec], overrides: &BTreeMap<String, i64>) -> Vec<Param> {
    specs
        .iter()
        .map(|s| Param {
            name: s.name.clone(),
            value: overrides.get(&s.name).copied().unwrap_or(s.default_value),
        })
        .collect()
}

enum Command {
    Install {
        code: Arc<PluginCode>,
        instance: PluginInstance,
        params: Vec<Param>,
        markets_gen: u64,
        stats: Arc<PluginStats>,
        done: mpsc::Sender<()>,
    },
    Remove {
        name: String,
        done: mpsc::Sender<()>,
    },
    SetEnabled {
        name: String,
        enabled: bool,
        done: mpsc::Sender<()>,
    },
    Configure {
        name: String,
        params: Vec<Param>,
        done: mpsc::Sender<Result<(), String>>,
    },
    Markets {
        markets: Arc<Vec<MarketInfo>>,
        generation: u64,
    },
    /// Evaluate every book change published so far, then answer.
    Drain { done: mpsc::Sender<()> },
}

struct Slot {
    name: String,
    code: Arc<PluginCode>,
    instance: Option<PluginInstance>,
    params: Vec<Param>,
    markets_gen: u64,
    enabled: bool,
    quarantined: bool,
    recent_faults: VecDeque<Instant>,
    stats: Arc<PluginStats>,
}

/// Shared between the runtime handle, its worker and its loaders.
struct Shared {
    host: PluginHost,
    registry: Mutex<BTreeMap<String, Registered>>,
    markets: Mutex<(Arc<Vec<MarketInfo>>, u64)>,
    books: Arc<BookStore>,
    bus: Arc<Bus>,
    policy: FaultPolicy,
    initial: Mutex<InitialParams>,
    /// Book changes evaluated (after coalescing).
    evaluations: AtomicU64,
    /// Book message received → all plugins decided.
    tick_to_decision: Histogram,
    /// Book changes covered by the evaluations (a coalesced delivery, or a
    /// venue frame, counts each change it stands for): equals the book
    /// updates applied once drained.
    changes: AtomicU64,
    /// Where each published opportunity is reported with its receive time,
    /// once the latency harness asks ([`StrategyRuntime::trace_opportunities`]).
    trace: OnceLock<mpsc::Sender<OpportunityTrace>>,
    /// The plugins' stores and the commands for them: whoever evaluates sits here.
    desk: Mutex<Desk>,
    /// Book changes not evaluated yet, coalesced per pair.
    changed: CoalescingReceiver<PairId, BookChanged>,
    /// Commands sent and not yet applied, readable without the desk.
    commands_waiting: AtomicUsize,
    inline: bool,
    /// Feeds applying a batch of frames that were already waiting: inline
    /// evaluation waits for the batch's end (see [`EvaluationHold`]).
    holds: AtomicUsize,
}

/// A published opportunity and the book message behind it, for the latency harness.
#[derive(Debug, Clone)]
pub struct OpportunityTrace {
    pub pair: PairId,
    /// Receive time of the first book message the evaluation covered.
    pub received_at: u64,
    pub decided_at: u64,
    /// The opportunity's `found_at`: ties a trade back to its decision.
    pub found_at: u64,
}

impl Shared {
    fn desk(&self) -> MutexGuard<'_, Desk> {
        // A plugin call that panicked was caught; the desk is whole.
        self.desk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the waiting commands and evaluates the waiting book changes,
    /// here and now, until neither is left. If another thread is at the desk
    /// it returns at once: that thread looks again after it leaves, so what
    /// this caller saw waiting is never stranded.
    fn pump(&self) {
        loop {
            // Pairs with the fence after leaving: either the thread at the
            // desk sees our change, or we get the desk.
            fence(Ordering::SeqCst);
            let mut desk = match self.desk.try_lock() {
                Ok(d) => d,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            desk.work(self);
            drop(desk);
            fence(Ordering::SeqCst);
            if self.commands_waiting.load(Ordering::SeqCst) == 0 && self.changed.is_empty() {
                return;
            }
        }
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<String, Registered>> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self, plugin: &str, status: PluginStatus) {
        match &status {
            PluginStatus::Rejected(r) | PluginStatus::Faulted(r) | PluginStatus::Quarantined(r) => {
                tracing::warn!(plugin, status = ?status, "plugin {}", r)
            }
            _ => tracing::info!(plugin, status = ?status, "plugin status"),
        }
        self.bus
            .status
            .publish(StatusEvent::Plugin(PluginStatusChanged {
                plugin: plugin.to_string(),
                status,
                at: now_micros(),
            }));
    }
}

pub struct StrategyRuntime {
    shared: Arc<Shared>,
    control: Mutex<mpsc::Sender<Command>>,
    wake: Box<dyn Fn() + Send + Sync>,
    close: Box<dyn Fn() + Send + Sync>,
    /// The strategy thread (plugins evaluated on a thread of their own).
    worker: Mutex<Option<JoinHandle<()>>>,
    /// The publisher's hook (plugins evaluated inline, on the feed's thread).
    inline: Mutex<Option<crate::bus::InlineSubscription<PairId, BookChanged>>>,
    watcher: Mutex<Option<super::watch::DirWatcher>>,
}

impl StrategyRuntime {
    /// Starts the worker thread. Plugins are added with [`Self::load_file`],
    /// [`Self::load_dir`] or the folder watcher ([`Self::watch`]).
    pub fn start(
        host: PluginHost,
        books: Arc<BookStore>,
        bus: Arc<Bus>,
        policy: FaultPolicy,
    ) -> Arc<Self> {
        let changed = bus.books.subscribe();
        let wake = changed.waker();
        let close = changed.closer();
        let inline = host.limits().inline;
        let may_spin = crate::cores::has_a_second_core();
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            host,
            registry: Mutex::new(BTreeMap::new()),
            markets: Mutex::new((Arc::new(Vec::new()), 0)),
            books,
            bus: bus.clone(),
            policy,
            initial: Mutex::new(InitialParams::default()),
            evaluations: AtomicU64::new(0),
            tick_to_decision: Histogram::default(),
            changes: AtomicU64::new(0),
            trace: OnceLock::new(),
            desk: Mutex::new(Desk {
                slots: Vec::new(),
                view: view::empty_view(),
                control: rx,
            }),
            changed,
            commands_waiting: AtomicUsize::new(0),
            inline,
            holds: AtomicUsize::new(0),
        });
        let (worker, hook) = if inline {
            // The publisher evaluates: no queue to wake, no thread to wait
            // for. The hook holds the runtime weakly (the bus outlives it).
            let weak = Arc::downgrade(&shared);
            let hook = bus.books.subscribe_inline(move |_, _| {
                if let Some(shared) = weak.upgrade()
                    && shared.holds.load(Ordering::SeqCst) == 0
                {
                    shared.pump();
                }
            });
            (None, Some(hook))
        } else {
            let worker_shared = shared.clone();
            let worker = std::thread::Builder::new()
                .name("strategy".into())
                .spawn(move || run(worker_shared, may_spin))
                .expect("spawning the strategy thread");
            (Some(worker), None)
        };
        let rt = Arc::new(StrategyRuntime {
            shared,
            control: Mutex::new(tx),
            wake: Box::new(wake),
            close: Box::new(close),
            worker: Mutex::new(worker),
            inline: Mutex::new(hook),
            watcher: Mutex::new(None),
        });
        rt.sync_markets();
        rt
    }

    fn send(&self, cmd: Command) {
        // Counted before it is sent: a thread at the desk that sees the count
        // looks until it has the command.
        self.shared.commands_waiting.fetch_add(1, Ordering::SeqCst);
        // The desk only closes at shutdown; a command after that is moot.
        let _ = self
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(cmd);
        if self.shared.inline {
            self.shared.pump();
        } else {
            (self.wake)();
        }
    }

    /// Parameters for plugins loaded from now on (from the configuration).
    pub fn set_initial_params(&self, params: InitialParams) {
        *self
            .shared
            .initial
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = params;
    }

    /// Tells plugins about the current set of pairs (after a pair is added or removed).
    pub fn sync_markets(&self) {
        let markets: Vec<MarketInfo> = self
            .shared
            .books
            .all()
            .iter()
            .map(|e| MarketInfo {
                index: e.index,
                kalshi_ticker: e.pair.kalshi_ticker.clone(),
                polymarket_condition: e.pair.polymarket_condition_id.clone(),
            })
            .collect();
        let markets = Arc::new(markets);
        let generation = {
            let mut m = self
                .shared
                .markets
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            m.1 += 1;
            m.0 = markets.clone();
            m.1
        };
        self.send(Command::Markets {
            markets,
            generation,
        });
    }

    /// Loads (or reloads) the plugin in `path`, named after the file stem. On
    /// success the new version is live when this returns; on failure the old
    /// version (if any) keeps running and the error is recorded.
    pub fn load_file(&self, path: &Path) -> Result<PluginReport, LoadError> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| LoadError::Invalid(format!("reading {}: {e}", path.display())))?;
        self.load_bytes(&name, &bytes)
    }

    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<PluginReport, LoadError> {
        match self.try_load(name, bytes) {
            Ok(r) => Ok(r),
            Err(e) => {
                if let Some(reg) = self.shared.registry().get_mut(name) {
                    reg.last_rejection = Some(e.to_string());
                }
                self.shared
                    .status(name, PluginStatus::Rejected(e.to_string()));
                Err(e)
            }
        }
    }

    fn try_load(&self, name: &str, bytes: &[u8]) -> Result<PluginReport, LoadError> {
        if !valid_plugin_name(name) {
            return Err(LoadError::BadName(name.to_string()));
        }
        let (code, mut instance) = self.shared.host.load(name, bytes)?;
        let (overrides, stats, reloaded) = match self.shared.registry().get(name) {
            Some(r) => (r.overrides.clone(), r.stats.clone(), true),
            None => {
                let initial = self
                    .shared
                    .initial
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .for_plugin(name, &code.info.params);
                (initial, Arc::new(PluginStats::default()), false)
            }
        };
        let params = params_for(&code.info.params, &overrides);
        match instance.configure(&params) {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => {
                return Err(LoadError::Describe(format!(
                    "configure refused the current parameters: {msg}"
                )));
            }
            Err(f) => return Err(LoadError::Describe(format!("configure: {f}"))),
        }
        let (markets, markets_gen) = self
            .shared
            .markets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        instance
            .register_markets(&markets)
            .map_err(|f| LoadError::Describe(format!("register-markets: {f}")))?;
        {
            let mut reg = self.shared.registry();
            let entry = reg.entry(name.to_string()).or_insert_with(|| Registered {
                code: code.clone(),
                mode: PluginMode::Active,
                overrides,
                stats: stats.clone(),
                reloads: 0,
                last_rejection: None,
            });
            if reloaded {
                entry.reloads += 1;
            }
            entry.code = code.clone();
            entry.last_rejection = None;
        }
        let (done, wait) = mpsc::channel();
        self.send(Command::Install {
            code: code.clone(),
            instance,
            params,
            markets_gen,
            stats,
            done,
        });
        let _ = wait.recv();
        tracing::info!(
            plugin = name,
            version = %code.info.version,
            sha = &code.sha256[..12],
            load_ms = code.load_time.as_secs_f64() * 1e3,
            cached = code.from_cache,
            "plugin {}",
            if reloaded { "reloaded" } else { "loaded" }
        );
        self.shared.status(
            name,
            if reloaded {
                PluginStatus::Reloaded
            } else {
                PluginStatus::Loaded
            },
        );
        Ok(self.report(name).expect("just registered"))
    }

    /// Loads every `*.wasm` in `dir` (in parallel: interpreted plugins take seconds
    /// to compile the first time). Returns each file's result.
    pub fn load_dir(&self, dir: &Path) -> Vec<(PathBuf, Result<PluginReport, LoadError>)> {
        let files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| super::watch::is_plugin_file(p))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the plugins folder");
                return Vec::new();
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = files
                .iter()
                .map(|p| (p.clone(), s.spawn(|| self.load_file(p))))
                .collect();
            handles
                .into_iter()
                .map(|(p, h)| {
                    (
                        p,
                        h.join()
                            .unwrap_or_else(|_| Err(LoadError::Invalid("loader panicked".into()))),
                    )
                })
                .collect()
        })
    }

    /// Unloads a plugin (its file was deleted or the API asked). `false` if unknown.
    pub fn unload(&self, name: &str) -> bool {
        if self.shared.registry().remove(name).is_none() {
            return false;
        }
        let (done, wait) = mpsc::channel();
        self.send(Command::Remove {
            name: name.to_string(),
            done,
        });
        let _ = wait.recv();
        self.shared.status(name, PluginStatus::Unloaded);
        true
    }

    /// Enables or disables a plugin; enabling a quarantined plugin gives it a fresh start.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        {
            let mut reg = self.shared.registry();
            let Some(r) = reg.get_mut(name) else {
                return false;
            };
            r.mode = if enabled {
                PluginMode::Active
            } else {
                PluginMode::Disabled
            };
        }
        let (done, wait) = mpsc::channel();
        self.send(Command::SetEnabled {
            name: name.to_string(),
            enabled,
            done,
        });
        let _ = wait.recv();
        self.shared.status(
            name,
            if enabled {
                PluginStatus::Loaded
            } else {
                PluginStatus::Disabled
            },
        );
        true
    }

    /// Sets parameters (merged over the current ones), checked by the plugin's
    /// `configure`. On refusal nothing changes.
    pub fn configure(
        &self,
        name: &str,
        values: &BTreeMap<String, i64>,
    ) -> Result<PluginReport, ConfigureError> {
        let (params, mut merged) = {
            let reg = self.shared.registry();
            let r = reg.get(name).ok_or(ConfigureError::UnknownPlugin)?;
            let mut merged = r.overrides.clone();
            for (k, v) in values {
                if !r.code.info.params.iter().any(|s| &s.name == k) {
                    return Err(ConfigureError::Refused(format!("unknown parameter '{k}'")));
                }
                merged.insert(k.clone(), *v);
            }
            (params_for(&r.code.info.params, &merged), merged)
        };
        let (done, wait) = mpsc::channel();
        self.send(Command::Configure {
            name: name.to_string(),
            params,
            done,
        });
        match wait.recv() {
            Ok(Ok(())) => {
                if let Some(r) = self.shared.registry().get_mut(name) {
                    std::mem::swap(&mut r.overrides, &mut merged);
                }
                Ok(self.report(name).ok_or(ConfigureError::UnknownPlugin)?)
            }
            Ok(Err(msg)) => Err(ConfigureError::Refused(msg)),
            Err(_) => Err(ConfigureError::UnknownPlugin),
        }
    }

    pub fn report(&self, name: &str) -> Option<PluginReport> {
        self.shared.registry().get(name).map(|r| report(name, r))
    }

    pub fn reports(&self) -> Vec<PluginReport> {
        self.shared
            .registry()
            .iter()
            .map(|(n, r)| report(n, r))
            .collect()
    }

    /// Holds inline evaluation until the returned hold is dropped, which
    /// evaluates what changed meanwhile, once per pair. A feed takes one
    /// while it applies frames that were already waiting on its socket: in a
    /// burst the plugins then see each pair's latest book once, instead of
    /// every intermediate one while the newer frames wait. Nothing is held on
    /// a strategy thread of its own (it coalesces by itself).
    pub fn hold(&self) -> EvaluationHold {
        if !self.shared.inline {
            return EvaluationHold { shared: None };
        }
        self.shared.holds.fetch_add(1, Ordering::SeqCst);
        EvaluationHold {
            shared: Some(self.shared.clone()),
        }
    }

    /// Returns once every book change published before the call has been
    /// evaluated by every active plugin: replay uses it after each message so
    /// that each change is evaluated on its own (no coalescing) and a replay's
    /// counts do not depend on thread timing.
    pub fn drain(&self) {
        let (done, wait) = mpsc::channel();
        self.send(Command::Drain { done });
        let _ = wait.recv();
    }

    /// The exact tally of the opportunities `name` found.
    pub fn edges(&self, name: &str) -> Option<super::stats::EdgeTally> {
        self.shared.registry().get(name).map(|r| r.stats.edges())
    }

    /// Book changes evaluated so far (each by every active plugin, exactly once).
    pub fn evaluations(&self) -> u64 {
        self.shared.evaluations.load(Ordering::Relaxed)
    }

    pub fn tick_to_decision(&self) -> LatencySummary {
        self.shared.tick_to_decision.summary()
    }

    /// Tick-to-decision counts now, for [`Self::tick_to_decision_since`].
    pub fn tick_to_decision_mark(&self) -> crate::strategy::stats::HistogramMark {
        self.shared.tick_to_decision.mark()
    }

    /// Tick-to-decision of the evaluations after `mark`.
    pub fn tick_to_decision_since(
        &self,
        mark: &crate::strategy::stats::HistogramMark,
    ) -> LatencySummary {
        self.shared.tick_to_decision.summary_since(mark)
    }

    /// Book changes the evaluations so far stood for (see [`Self::drain`]).
    pub fn changes_evaluated(&self) -> u64 {
        self.shared.changes.load(Ordering::Relaxed)
    }

    /// Reports every opportunity published from now on (once per runtime;
    /// `None` if already asked).
    pub fn trace_opportunities(&self) -> Option<mpsc::Receiver<OpportunityTrace>> {
        let (tx, rx) = mpsc::channel();
        self.shared.trace.set(tx).ok().map(|_| rx)
    }

    pub fn host(&self) -> &PluginHost {
        &self.shared.host
    }

    /// Watches `dir` and hot-reloads plugins as files appear, change or vanish.
    pub fn watch(self: &Arc<Self>, dir: &Path, debounce: Duration) -> notify::Result<()> {
        let w = super::watch::DirWatcher::start(Arc::downgrade(self), dir, debounce)?;
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        Ok(())
    }

    /// Stops the watcher and the evaluations; plugin stores are dropped.
    pub fn shutdown(&self) {
        self.watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.inline.lock().unwrap_or_else(|e| e.into_inner()).take();
        (self.close)();
        if let Some(h) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        self.shared.desk().slots.clear();
    }
}

impl Drop for StrategyRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// See [`StrategyRuntime::hold`].
#[must_use = "evaluation resumes when the hold is dropped"]
pub struct EvaluationHold {
    shared: Option<Arc<Shared>>,
}

impl Drop for EvaluationHold {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.holds.fetch_sub(1, Ordering::SeqCst);
            // Changes published while held found no one to evaluate them.
            shared.pump();
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigureError {
    #[error("no such plugin")]
    UnknownPlugin,
    #[error("{0}")]
    Refused(String),
}

fn report(name: &str, r: &Registered) -> PluginReport {
    let s = &r.stats;
    PluginReport {
        name: name.to_string(),
        mode: r.mode.clone(),
        plugin_name: r.code.info.name.clone(),
        plugin_version: r.code.info.version.clone(),
        description: r.code.info.description.clone(),
        sha256: r.code.sha256.clone(),
        wit_version: super::bindings::WIT_VERSION,
        hot_call: if r.code.top_of_book {
            "evaluate-top"
        } else {
            "evaluate"
        },
        loaded_at_us: r.code.loaded_at,
        load_ms: r.code.load_time.as_secs_f64() * 1e3,
        from_cache: r.code.from_cache,
        reloads: r.reloads,
        params: r
            .code
            .info
            .params
            .iter()
            .map(|p| ParamReport {
                name: p.name.clone(),
                description: p.description.clone(),
                unit: p.unit.clone(),
                default: p.default_value,
                value: r.overrides.get(&p.name).copied().unwrap_or(p.default_value),
            })
            .collect(),
        calls: s.calls.load(Ordering::Relaxed),
        opportunities: s.opportunities.load(Ordering::Relaxed),
        faults: s.faults.load(Ordering::Relaxed),
        last_error: s.last_error(),
        last_rejection: r.last_rejection.clone(),
        latency: s.latency.summary(),
    }
}

/// The plugins' stores, and the commands that change them.
struct Desk {
    slots: Vec<Slot>,
    view: MarketView,
    control: mpsc::Receiver<Command>,
}

fn venue(v: WitVenue) -> Venue {
    match v {
        WitVenue::Kalshi => Venue::Kalshi,
        WitVenue::Polymarket => Venue::Polymarket,
    }
}

/// The strategy thread: waits for book changes (polling for `spin` first
/// where it has a core of its own) and evaluates them.
fn run(shared: Arc<Shared>, may_spin: bool) {
    let spin = if may_spin {
        shared.host.limits().spin
    } else {
        Duration::ZERO
    };
    loop {
        // Commands first: a swap lands between two evaluations.
        shared.desk().apply_commands(&shared);
        let next = spin_recv(&shared.changed, spin)
            .or_else(|| shared.changed.recv_timeout(Duration::from_secs(1)));
        match next {
            Some((pair, changed)) => {
                let mut desk = shared.desk();
                desk.apply_commands(&shared);
                desk.evaluate(&shared, &pair, changed);
            }
            None if shared.changed.is_closed() => return,
            None => {}
        }
    }
}

impl Desk {
    /// Everything waiting, commands before each evaluation.
    fn work(&mut self, shared: &Shared) {
        loop {
            self.apply_commands(shared);
            match shared.changed.try_recv() {
                Some((pair, changed)) => self.evaluate(shared, &pair, changed),
                None => return,
            }
        }
    }

    fn apply_commands(&mut self, shared: &Shared) {
        if shared.commands_waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        while let Ok(cmd) = self.control.try_recv() {
            shared.commands_waiting.fetch_sub(1, Ordering::AcqRel);
            self.apply(shared, cmd);
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.name == name)
    }

    fn apply(&mut self, shared: &Shared, cmd: Command) {
        match cmd {
            Command::Install {
                code,
                instance,
                params,
                markets_gen,
                stats,
                done,
            } => {
                let name = code.name.to_string();
                let enabled = self.slot(&name).is_none_or(|s| s.enabled);
                self.slots.retain(|s| s.name != name);
                self.slots.push(Slot {
                    name,
                    code,
                    instance: Some(instance),
                    params,
                    markets_gen,
                    enabled,
                    quarantined: false,
                    recent_faults: VecDeque::new(),
                    stats,
                });
                self.slots.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = done.send(());
            }
            Command::Remove { name, done } => {
                self.slots.retain(|s| s.name != name);
                let _ = done.send(());
            }
            Command::SetEnabled {
                name,
                enabled,
                done,
            } => {
                if let Some(s) = self.slot(&name) {
                    s.enabled = enabled;
                    if enabled && s.quarantined {
                        s.quarantined = false;
                        s.recent_faults.clear();
                    }
                }
                let _ = done.send(());
            }
            Command::Configure { name, params, done } => {
                let result = match self.slot(&name) {
                    None => Err("no such plugin".to_string()),
                    Some(s) => {
                        let outcome = match s.instance.as_mut() {
                            Some(i) => i.configure(&params),
                            None => shared.host.instantiate(&s.code).and_then(|mut i| {
                                let r = i.configure(&params);
                                s.instance = Some(i);
                                r
                            }),
                        };
                        match outcome {
                            Ok(Ok(())) => {
                                s.params = params;
                                Ok(())
                            }
                            Ok(Err(msg)) => Err(msg),
                            Err(f) => {
                                // The instance is suspect now; rebuild it with the old parameters.
                                s.instance = None;
                                s.stats.fault(f.to_string());
                                Err(format!("configure faulted: {f}"))
                            }
                        }
                    }
                };
                let _ = done.send(result);
            }
            Command::Drain { done } => {
                while let Some((pair, changed)) = shared.changed.try_recv() {
                    self.evaluate(shared, &pair, changed);
                }
                let _ = done.send(());
            }
            Command::Markets {
                markets,
                generation,
            } => {
                for s in &mut self.slots {
                    if s.markets_gen < generation {
                        if let Some(i) = s.instance.as_mut()
                            && let Err(f) = i.register_markets(&markets)
                        {
                            s.stats.fault(f.to_string());
                            s.instance = None;
                        }
                        s.markets_gen = generation;
                    }
                }
            }
        }
    }

    fn evaluate(&mut self, shared: &Shared, pair: &PairId, changed: BookChanged) {
        let Some(entry) = shared.books.get(pair) else {
            return;
        };
        let now = now_micros();
        // Ladders only when an active plugin takes the full view: the
        // `top-of-book` ones need the scalars alone, and the book's lock is
        // held for less time.
        let ladders = self
            .slots
            .iter()
            .any(|s| s.enabled && !s.quarantined && !s.code.top_of_book);
        {
            let state = entry.state();
            view::fill_quotes(
                &mut self.view,
                entry.index,
                &state,
                &entry.fees,
                entry.polymarket_min_size,
                now,
            );
            if ladders {
                view::fill_ladders(&mut self.view, &state);
            }
        }
        let (top, terms) = view::top_of_book(&self.view);
        shared.evaluations.fetch_add(1, Ordering::Relaxed);
        shared
            .changes
            .fetch_add(u64::from(changed.changes), Ordering::Relaxed);
        let mut best: Option<Opportunity> = None;
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.enabled && !s.quarantined)
        {
            if slot.instance.is_none() && !rebuild(shared, slot) {
                continue;
            }
            let Some(instance) = slot.instance.as_mut() else {
                continue;
            };
            let started = Instant::now();
            // The same flag that decided whether the view has ladders. A
            // panic in a host function the plugin called is that plugin's
            // fault: inline, it would otherwise end the feed's task.
            let result = contain(|| {
                if slot.code.top_of_book {
                    instance
                        .evaluate_top(&top, &terms)
                        .map(|o| o.into_iter().collect())
                } else {
                    instance.evaluate(&self.view)
                }
            });
            slot.stats.latency.record(started.elapsed());
            slot.stats.calls.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(found) => {
                    slot.stats
                        .opportunities
                        .fetch_add(found.len() as u64, Ordering::Relaxed);
                    for o in found {
                        // Limits were checked to be inside (0, 1) and size > 0.
                        let (Ok(yes), Ok(no)) = (
                            Price::from_micros(o.yes_limit),
                            Price::from_micros(o.no_limit),
                        ) else {
                            continue;
                        };
                        let opp = Opportunity::price(
                            pair.clone(),
                            slot.name.clone(),
                            venue(o.buy_yes_on),
                            yes,
                            no,
                            Size::from_hundredths(o.size),
                            &entry.fees,
                            now,
                        );
                        slot.stats.found(entry.index, &opp);
                        if best.as_ref().is_none_or(|b| opp.net_edge > b.net_edge) {
                            best = Some(opp);
                        }
                    }
                }
                Err(fault) => on_fault(shared, slot, fault),
            }
        }
        let decided_at = now_micros();
        shared
            .tick_to_decision
            .record_ns(decided_at.saturating_sub(changed.first_received_at) * 1_000);
        if let Some(opportunity) = best {
            if let Some(trace) = shared.trace.get() {
                let _ = trace.send(OpportunityTrace {
                    pair: pair.clone(),
                    received_at: changed.first_received_at,
                    decided_at,
                    found_at: opportunity.found_at,
                });
            }
            shared
                .bus
                .opportunities
                .publish(pair.clone(), ArbitrageOpportunityFound { opportunity });
        }
    }
}

/// Polls for the next book change for `spin` before the worker parks. A busy
/// feed publishes again within microseconds: caught while polling, the change
/// costs neither side a futex wake and a context switch; an idle market parks
/// the thread after `spin`. It burns a core meanwhile, so it pays only where
/// the strategy thread has one (`doubletime bench --spin-us` measures both).
fn spin_recv(
    books: &CoalescingReceiver<PairId, BookChanged>,
    spin: Duration,
) -> Option<(PairId, BookChanged)> {
    if spin.is_zero() {
        return None;
    }
    let until = Instant::now() + spin;
    loop {
        if let Some(next) = books.try_recv() {
            return Some(next);
        }
        if Instant::now() >= until {
            return None;
        }
        // Between polls, leave the queue's lock to the publisher.
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
}

/// Runs a plugin call, turning a panic inside it (a host function's) into the
/// plugin's fault; the store it ran in is thrown away like any faulted one.
fn contain<T>(call: impl FnOnce() -> Result<T, Fault>) -> Result<T, Fault> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(Fault::Trap(format!(
            "the host panicked in the call: {what}"
        )))
    })
}

/// A new store for a slot whose last one faulted. `false` if that failed too
/// (counted as another fault).
fn rebuild(shared: &Shared, slot: &mut Slot) -> bool {
    let markets = shared
        .markets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .0
        .clone();
    let attempt = contain(|| {
        shared.host.instantiate(&slot.code).and_then(|mut i| {
            match i.configure(&slot.params)? {
                Ok(()) => {}
                Err(msg) => {
                    return Err(Fault::Trap(format!("configure refused on rebuild: {msg}")));
                }
            }
            i.register_markets(&markets)?;
            Ok(i)
        })
    });
    match attempt {
        Ok(i) => {
            slot.instance = Some(i);
            true
        }
        Err(f) => {
            on_fault(shared, slot, f);
            false
        }
    }
}

fn on_fault(shared: &Shared, slot: &mut Slot, fault: Fault) {
    // The store may be in any state after a fault (and is unusable after a
    // trap): throw it away; the next evaluation gets a fresh one.
    slot.instance = None;
    slot.stats.fault(fault.to_string());
    let now = Instant::now();
    slot.recent_faults.push_back(now);
    while slot
        .recent_faults
        .front()
        .is_some_and(|t| now.duration_since(*t) > shared.policy.window)
    {
        slot.recent_faults.pop_front();
    }
    if slot.recent_faults.len() >= shared.policy.max_faults {
        slot.quarantined = true;
        let reason = format!(
            "{} faults within {:?}, last: {fault}",
            slot.recent_faults.len(),
            shared.policy.window
        );
        if let Some(r) = shared.registry().get_mut(&slot.name) {
            r.mode = PluginMode::Quarantined(reason.clone());
        }
        shared.status(&slot.name, PluginStatus::Quarantined(reason));
    } else {
        shared.status(&slot.name, PluginStatus::Faulted(fault.to_string()));
    }
}

/// Parameters plugins start with (from the configuration): `global` values
/// apply to every plugin that declares the parameter, `per_plugin` on top.
#[derive(Debug, Clone, Default)]
pub struct InitialParams {
    pub global: BTreeMap<String, i64>,
    pub per_plugin: BTreeMap<String, BTreeMap<String, i64>>,
}

impl InitialParams {
    fn for_plugin(&self, name: &str, specs: &[ParamSpec]) -> BTreeMap<String, i64> {
        let mut out: BTreeMap<String, i64> = self
            .global
            .iter()
            .filter(|(k, _)| specs.iter().any(|s| &s.name == *k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if let Some(mine) = self.per_plugin.get(name) {
            out.extend(mine.iter().map(|(k, v)| (k.clone(), *v)));
        }
        out
    }
}
