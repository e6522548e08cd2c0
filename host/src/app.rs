//! Wiring: builds the book store, the bus and the plugin runtime from a
//! [`Config`] and runs until Ctrl-C or the optional duration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::books::BookStore;
use crate::bus::{Bus, StatusEvent};
use crate::config::Config;
use crate::domain::Size;
use crate::risk::{RiskGate, RiskHandle, RiskLimits};
use crate::strategy::{FaultPolicy, PluginHost, RuntimeLimits, StrategyRuntime};

/// Polymarket's usual minimum order size, until market metadata says otherwise.
pub(crate) const DEFAULT_POLYMARKET_MIN_SIZE: u64 = 5;

/// Order signatures (Kalshi) and nonces (Polymarket) kept ready. A burst of
/// windows can bring several trades within the refill's 20 ms wait, each
/// taking one of each, plus retries and unwinds; with 4 the bench still saw
/// orders sign inline (2.5 ms). Keeping 8 costs 20 ms of a nice-19 thread
/// every 2.5 s (renewal at half of Kalshi's 5 s age limit).
pub(crate) const PRESIGNED_ORDERS: usize = 8;

/// How long the watcher waits for a burst of file events to settle.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(50);

/// The running host's parts, for the API and the tests.
pub struct Host {
    pub config: Config,
    pub books: Arc<BookStore>,
    pub bus: Arc<Bus>,
    pub strategy: Arc<StrategyRuntime>,
    /// The risk gate between the strategy and the executor (pause, kill, limits).
    pub risk: RiskHandle,
    /// The trade store (DATABASE_URL) with this host's id: every trade the
    /// executor handled, its orders, fills and P&L.
    pub trades: crate::store::TradeStore,
    /// Each venue feed's counters, once the feeds run (for `/metrics`).
    pub feed_stats: std::sync::OnceLock<
        std::collections::HashMap<crate::domain::Venue, Arc<crate::venues::feed::FeedStats>>,
    >,
    /// The running executor's kill-switch reports, once trading runs: `POST
    /// /kill` waits for the cancels it starts and answers with their report.
    pub kill_reports: std::sync::Mutex<
        Option<tokio::sync::watch::Receiver<Option<crate::execution::KillReport>>>,
    >,
}

impl Host {
    /// Builds everything and loads the plugins folder (blocking: the first
    /// compile of an interpreted plugin takes seconds; later starts hit the cache).
    /// Call it inside a tokio runtime (e.g. from `spawn_blocking`): the trade
    /// store is opened on it.
    pub fn start(config: Config) -> anyhow::Result<Host> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("Host::start needs a tokio runtime for the trade store")?;
        // The store first: a host that cannot book trades must not start.
        let trades = runtime
            .block_on(crate::store::TradeStore::open(
                config.database_url.expose(),
                &config.host_id,
            ))
            .context("opening the trade store (DATABASE_URL)")?;
        let books = Arc::new(BookStore::new());
        for (pair, fees) in config.pair_setups() {
            books.add(pair, fees, Size::whole(DEFAULT_POLYMARKET_MIN_SIZE));
        }
        let bus = Arc::new(Bus::default());
        // Subscribed before any plugin loads, so no opportunity goes unchecked.
        let risk = crate::risk::start_risk_gate(
            RiskGate::new(RiskLimits::from_config(&config), config.dry_run),
            books.clone(),
            &bus,
        );
        let limits = RuntimeLimits {
            cache_dir: Some(config.plugin_cache_dir.clone()),
            spin: Duration::from_micros(config.strategy_spin_us),
            inline: !config.strategy_thread,
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
            risk,
            trades,
            feed_stats: Default::default(),
            kill_reports: Default::default(),
        })
    }
}

pub async fn run(
    config: Config,
    duration: Option<Duration>,
    record: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    tracing::info!(
        env = ?config.app_env,
        dry_run = config.dry_run,
        markets = config.markets.len(),
        plugins = %config.plugins_dir.display(),
        "double time starting"
    );
    let urls = crate::feeds::VenueUrls::from_config(&config);
    let signer = match (
        &config.kalshi.private_key_path,
        config.kalshi.api_key.is_empty(),
    ) {
        (Some(path), false) => Some(Arc::new(
            crate::venues::kalshi::KalshiSigner::from_pem_file(
                config.kalshi.api_key.expose(),
                path,
            )?,
        )),
        _ => {
            tracing::warn!(
                "no Kalshi key configured: the Kalshi feed will be refused by a real venue"
            );
            None
        }
    };
    let wallet = &config.polymarket.wallet_private_key;
    let poly_signer = (!wallet.is_empty())
        .then(|| crate::venues::polymarket::PolySigner::from_private_key(wallet))
        .transpose()
        .map_err(|e| anyhow::anyhow!("POLYMARKET_WALLET_PRIVATE_KEY: {e}"))?
        .map(|s| s.with_presignatures(PRESIGNED_ORDERS));
    let has_wallet = poly_signer.is_some();
    let mut polymarket = crate::venues::polymarket::rest::PolymarketRest::new(
        &urls.polymarket_rest,
        None,
        poly_signer,
    )?;
    // L2 credentials come from the wallet (L1): created once, derived afterwards.
    let mut poly_creds = None;
    if has_wallet {
        match polymarket.create_or_derive_api_key(0).await {
            Ok(creds) => {
                polymarket = polymarket.with_creds(creds.clone());
                poly_creds = Some(creds);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no Polymarket API credentials: orders and the user channel are off")
            }
        }
    }
    let clients = crate::execution::VenueClients {
        kalshi: crate::venues::kalshi::rest::KalshiRest::new(&urls.kalshi_rest, signer.clone())?
            .with_presigned_orders(
                PRESIGNED_ORDERS,
                Duration::from_millis(config.kalshi.presign_max_age_ms),
            ),
        polymarket,
    };
    let host = Arc::new(tokio::task::spawn_blocking(move || Host::start(config)).await??);
    log_plugins(&host);
    let recorder = recorder(record.as_deref())?;
    let mut feeds = crate::feeds::Feeds::start(&host, &urls, signer, recorder.clone());
    if let Some(creds) = poly_creds {
        feeds.start_polymarket_user(&host, &urls, creds, recorder.clone());
    }
    let mut trading = start_trading(&host, clients).await?;
    trading.watch_kalshi_fills(&feeds);
    trading.watch_polymarket_settlement(&feeds);
    serve_until_stopped(host, duration, |status| {
        if let StatusEvent::Feed(f) = status {
            tracing::info!(venue = %f.venue, status = ?f.status, "feed: {}", f.detail);
        }
    })
    .await?;
    trading.stop().await;
    feeds.stop().await;
    Ok(())
}

/// The executor and what keeps it honest, running.
pub struct Trading {
    pub executor: Arc<crate::execution::Executor>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Trading {
    /// Lets the executor follow Polymarket trade settlement on the feeds' user channel.
    pub fn watch_polymarket_settlement(&mut self, feeds: &crate::feeds::Feeds) {
        if let Some(rx) = feeds.polymarket_user() {
            let (watch, task) = crate::execution::SettlementWatch::spawn(rx);
            self.executor.watch_polymarket_settlement(watch);
            self.tasks.push(task);
        }
    }

    /// Lets the executor read the feeds' Kalshi fill channel when an order's answer is lost.
    pub fn watch_kalshi_fills(&mut self, feeds: &crate::feeds::Feeds) {
        if let Some(rx) = feeds.kalshi_fills() {
            let (watch, task) = crate::execution::FillWatch::spawn(rx);
            self.executor.watch_kalshi_fills(watch);
            self.tasks.push(task);
        }
    }

    /// Stops the tasks and gives up the market leases (another host may take them at once).
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let store = &self.executor.store;
        if let Err(e) = store.repo.release_pairs(&store.host).await {
            tracing::warn!(error = %e, "could not release the market leases; they lapse by themselves");
        }
    }
}

/// Starts the executor on `host` (DRY_RUN decides whether orders leave):
/// restores today's P&L for the daily loss limit, reports trades a previous
/// run left unfinished, claims the configured markets, books refusals, keeps
/// balances fresh, and makes the kill switch cancel open orders.
pub async fn start_trading(
    host: &Arc<Host>,
    clients: crate::execution::VenueClients,
) -> anyhow::Result<Trading> {
    use crate::execution::{ExecutionPolicy, Executor};
    use crate::store::lease::PairLeases;
    let store = host.trades.clone();
    let now = crate::strategy::now_micros();
    let midnight = crate::risk::gate::utc_day(now) * 86_400 * 1_000_000;
    let today = store
        .repo
        .pnl_since(&store.host, midnight)
        .await
        .context("reading today's P&L from the trade store")?;
    host.risk.restore_realised_pnl(today);
    // Orders are signed for the exchange version the venue runs now.
    match tokio::time::timeout(Duration::from_secs(3), clients.polymarket.sync_version()).await {
        Ok(Ok(v)) => tracing::info!(version = ?v, "Polymarket exchange version"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Polymarket /version unavailable; signing for the default")
        }
        Err(_) => tracing::warn!("Polymarket /version timed out; signing for the default"),
    }
    // Each market's tick and neg-risk flag as the venue has them now (the
    // feed keeps the tick current afterwards).
    for entry in host.books.all() {
        let pair = &entry.pair;
        let info = tokio::time::timeout(
            Duration::from_secs(3),
            clients
                .polymarket
                .market_info(&pair.polymarket_condition_id),
        )
        .await;
        match info {
            Ok(Ok(info)) => {
                for outcome in [crate::domain::Outcome::Yes, crate::domain::Outcome::No] {
                    entry.set_polymarket_tick(outcome, info.tick.value());
                }
                if info.neg_risk != pair.neg_risk {
                    tracing::warn!(pair = %pair.id, venue = info.neg_risk, configured = pair.neg_risk, "neg_risk differs from the venue's: orders would be signed for the wrong exchange");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(pair = %pair.id, error = %e, "Polymarket market info unavailable")
            }
            Err(_) => tracing::warn!(pair = %pair.id, "Polymarket market info timed out"),
        }
    }
    let executor = Executor::new(
        Arc::new(clients),
        host.books.clone(),
        host.bus.clone(),
        host.risk.clone(),
        ExecutionPolicy {
            dry_run: host.config.dry_run,
            leg_mode: host.config.leg_mode,
            leg_order: host.config.leg_order,
            ..ExecutionPolicy::default()
        },
        store.clone(),
    );
    // Intents a crash left only in the journal go into the store first, so
    // reconciliation sees them.
    if let Some(path) = host.config.intent_journal_path() {
        let journal = crate::store::journal::IntentJournal::open(&path)
            .with_context(|| format!("opening the intent journal {}", path.display()))?;
        let replayed = journal
            .replay(&store)
            .await
            .with_context(|| format!("replaying the intent journal {}", path.display()))?;
        if replayed != Default::default() {
            tracing::warn!(?replayed, journal = %path.display(), "intent journal replayed into the trade store");
        }
        executor.journal_intents(Arc::new(journal));
    }
    let reconciled = executor.reconcile().await;
    let mismatches = executor.check_positions().await.len();
    tracing::info!(backend = store.repo.backend(), host = %store.host, pnl_today = %today, ?reconciled, position_mismatches = mismatches, "trade store ready");
    let leases = Arc::new(PairLeases::default());
    let books = host.books.clone();
    let pairs = move || {
        books
            .all()
            .iter()
            .map(|e| e.pair.id.clone())
            .collect::<Vec<_>>()
    };
    for (pair, owner) in leases
        .claim(&store, &pairs())
        .await
        .context("claiming the markets in the trade store")?
    {
        tracing::warn!(%pair, %owner, "market traded by another host: not trading it here");
    }
    executor.trade_only_leased(leases.clone());
    let mut tasks = vec![
        executor.spawn(),
        leases.spawn_renewal(store.clone(), pairs),
        crate::store::decisions::spawn_decision_recorder(&host.risk, store),
    ];
    if !host.config.dry_run {
        // Well inside `balance_max_age`, so the pre-trade check rarely waits on a venue.
        tasks.push(executor.spawn_balance_refresh(Duration::from_secs(1)));
    }
    executor.cancel_orders_on_kill();
    *host.kill_reports.lock().unwrap_or_else(|e| e.into_inner()) = Some(executor.kill_reports());
    Ok(Trading { executor, tasks })
}

/// Opens the recording file asked for with `--record`.
pub fn recorder(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<Arc<crate::venues::feed::Recorder>>> {
    path.map(|p| {
        tracing::info!(file = %p.display(), "recording raw feed messages");
        crate::venues::feed::Recorder::create(p)
            .with_context(|| format!("opening the recording {}", p.display()))
    })
    .transpose()
}

pub fn log_plugins(host: &Host) {
    for r in host.strategy.reports() {
        tracing::info!(plugin = %r.name, version = %r.plugin_version, load_ms = format!("{:.1}", r.load_ms), cached = r.from_cache, "plugin ready");
    }
}

/// Serves the API on `config.api.bind`, logs status changes and opportunities,
/// and runs until Ctrl-C or `duration`; then stops the API and the strategy.
pub async fn serve_until_stopped(
    host: Arc<Host>,
    duration: Option<Duration>,
    on_status: impl Fn(&StatusEvent),
) -> anyhow::Result<()> {
    let bind = host.config.api.bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the API to {bind} (DOUBLETIME_API_BIND)"))?;
    tracing::info!(addr = %listener.local_addr()?, read_only = host.config.api.token.is_empty(), "API listening");
    let (stop_api, api_stopping) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(crate::api::serve(host.clone(), listener, async {
        let _ = api_stopping.await;
    }));
    let mut status = host.bus.status.subscribe();
    let opportunities = host.bus.opportunities.subscribe();
    // Log an opportunity when it appears or changes, not on every book update
    // that finds it again: a person should be able to follow the log.
    let mut last_logged: std::collections::HashMap<crate::domain::PairId, String> =
        Default::default();
    let log_events = async {
        loop {
            tokio::select! {
                ev = status.recv() => match ev {
                    Some(ev) => on_status(&ev),
                    None => break,
                },
                (pair, found) = opportunities.recv() => {
                    let o = found.opportunity;
                    let key = format!("{}{}{}{}{}", o.found_by, o.buy_yes_on, o.yes_price, o.no_price, o.size);
                    if last_logged.get(&pair) == Some(&key) {
                        continue;
                    }
                    last_logged.insert(pair.clone(), key);
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
    let _ = stop_api.send(());
    if let Ok(Err(e)) = api.await {
        tracing::warn!(error = %e, "API server stopped with an error");
    }
    let strategy = host.strategy.clone();
    tokio::task::spawn_blocking(move || strategy.shutdown()).await?;
    tracing::info!(topics = ?host.bus.stats(), "double time stopped");
    Ok(())
}
