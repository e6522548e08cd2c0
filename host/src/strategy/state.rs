//! What each plugin's store holds: a locked-down WASI context (no files, no
//! network, no environment, frozen clocks), the memory cap, and the two host
//! functions of the contract (`log`, `now`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::LogLevel;
use super::bindings::doubletime::strategy::{host, types};

/// WASI clocks always read zero: the contract's only clock is `host.now`.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Most log lines a plugin may write per second; the rest are counted, not written.
const LOG_LINES_PER_SECOND: u32 = 50;
/// Longest plugin log line kept.
const LOG_LINE_MAX: usize = 512;

pub struct PluginState {
    pub(crate) plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    log_window: Instant,
    log_lines: u32,
    pub(crate) logs_dropped: u64,
}

impl PluginState {
    pub fn new(plugin: Arc<str>, memory_cap: usize) -> Self {
        let wasi = WasiCtx::builder()
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        PluginState {
            plugin,
            wasi,
            table: ResourceTable::new(),
            // A failed memory.grow traps instead of returning -1: a plugin that
            // hits its cap is a fault we can name, not a confused guest.
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_cap)
                .trap_on_grow_failure(true)
                .instances(64)
                .build(),
            log_window: Instant::now(),
            log_lines: 0,
            logs_dropped: 0,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.log_window.elapsed() >= Duration::from_secs(1) {
            self.log_window = Instant::now();
            self.log_lines = 0;
        }
        self.log_lines += 1;
        if self.log_lines > LOG_LINES_PER_SECOND {
            self.logs_dropped += 1;
            return;
        }
        let mut msg = message;
        if msg.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{msg}"),
            LogLevel::Debug => tracing::debug!(plugin, "{msg}"),
            LogLevel::Info => tracing::info!(plugin, "{msg}"),
            LogLevel::Warn => tracing::warn!(plugin, "{msg}"),
            LogLevel::Error => tracing::error!(plugin, "{msg}"),
        }
    }

    fn now(&mut self) -> u64 {
        now_micros()
    }
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
