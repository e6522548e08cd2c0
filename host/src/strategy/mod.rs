//! Strategy plugins: WebAssembly components implementing `wit/strategy.wit`,
//! loaded, limited, hot-swapped and reported on while the host trades.
//!
//! `engine` compiles and checks components and owns the wasmtime engine;
//! `runtime` evaluates every plugin on every book change (inline, on the
//! thread that published it, or on a strategy thread) and contains faults;
//! `no_wait` keeps WASI from blocking there; `watch` hot-reloads from the
//! plugins folder; `view` turns books into the numbers-only view plugins see.

pub mod bindings;
pub mod engine;
mod no_wait;
pub mod runtime;
mod state;
pub mod stats;
pub mod view;
pub mod watch;

pub use engine::{Fault, LoadError, PluginCode, PluginHost, PluginInstance, RuntimeLimits};
pub use runtime::{
    ConfigureError, EvaluationHold, FaultPolicy, PluginMode, PluginReport, StrategyRuntime,
};
pub use state::now_micros;
