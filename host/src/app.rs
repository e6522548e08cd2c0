//! Wiring: builds the book store, the bus and the plugin runtime from a
//! [`Config`] and runs until Ctrl-C or the optional duration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::books::BookStore;
use crate::bus::{Bus, StatusEvent};
use crate::config::Config;
use crate::domain::Size;
use crate::strategy::{FaultPolicy, PluginHost, RuntimeLimits, StrategyRuntime};

/// Polymarket's usual minimum order size, until market metadata says otherwise.
const DEFAULT_POLYMARKET_MIN_SIZE: u64 = 5;

/// How long the watcher waits for a burst of file events to settle.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(50);

/// The running host's parts, for the API and the tests.
pub struct Host {
    pub config: Config,
    pub books: Arc<BookStore>,
    pub bus: Arc<Bus>,
    pub strategy: Arc<StrategyRuntime>,
}

impl Host {
    /// Builds everything and loads the plugins folder (blocking: the first
    /// compile of an interpreted plugin takes seconds; later starts hit the cache).
    pub fn start(config: Config) -> anyhow::Result<Host> {
        let books = Arc::new(BookStore::new());
        for (pair, fees) in config.pair_setups() {
            books.add(pair, fees, Size::whole(DEFAULT_POLYMARKET_MIN_SIZE));
        }
        let bus = Arc::new(Bus::default());
        let limits = RuntimeLimits {
            cache_dir: Some(config.plugin_cache_dir.clone()),
            ..RuntimeLimits::default()
        };
        let plugin_host = PluginHost::new(limits)
            .map_err(|e| anyhow::anyhow!("starting the wasm engine: {e:#}"))?;
        let strategy = StrategyRuntime::start(
            plugin_host,
            books.clone(),
            bus.clone(),
            FaultPolicy::default(),
        );
        strategy.set_initial_params(config.plugin_params());
        std::fs::create_dir_all(&config.plugins_dir).with_context(|| {
            format!(
                "creating the plugins folder {}",
                config.plugins_dir.display()
            )
        })?;
        for (path, result) in strategy.load_dir(&config.plugins_dir) {
            if let Err(e) = result {
                tracing::warn!(file = %path.display(), error = %e, "plugin not loaded");
            }
        }
        strategy
            .watch(&config.plugins_dir, RELOAD_DEBOUNCE)
            .with_context(|| {
                format!(
                    "watching the plugins folder {}",
                    config.plugins_dir.display()
                )
            })?;
        Ok(Host {
            config,
            books,
            bus,
            strategy,
        })
    }
}

pub async fn run(config: Config, duration: Option<Duration>) -> anyhow::Result<()> {
    tracing::info!(
        env = ?config.app_env,
        dry_run = config.dry_run,
        markets = config.markets.len(),
        plugins = %config.plugins_dir.display(),
        "double time starting"
    );
    let host = tokio::task::spawn_blocking(move || Host::start(config)).await??;
    for r in host.strategy.reports() {
        tracing::info!(plugin = %r.name, version = %r.plugin_version, load_ms = format!("{:.1}", r.load_ms), cached = r.from_cache, "plugin ready");
    }
    let mut status = host.bus.status.subscribe();
    let opportunities = host.bus.opportunities.subscribe();
    let log_events = async {
        loop {
            tokio::select! {
                ev = status.recv() => match ev {
                    Some(StatusEvent::Feed(f)) => tracing::info!(venue = %f.venue, status = ?f.status, "{}", f.detail),
                    Some(StatusEvent::Plugin(_)) => {} // logged where it happens
                    None => break,
                },
                (pair, found) = opportunities.recv() => {
                    let o = found.opportunity;
                    tracing::info!(
                        %pair, plugin = %o.found_by, yes_on = %o.buy_yes_on, no_on = %o.buy_no_on,
                        yes = %o.yes_price, no = %o.no_price, size = %o.size, net = %o.net_edge,
                        "opportunity"
                    );
                }
            }
        }
    };
    let stop = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = log_events => {}
    }
    let strategy = host.strategy.clone();
    tokio::task::spawn_blocking(move || strategy.shutdown()).await?;
    tracing::info!(topics = ?host.bus.stats(), "double time stopped");
    Ok(())
}
