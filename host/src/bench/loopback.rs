//! The whole host against the in-process simulator on loopback: both feeds
//! over WebSocket, the plugin set, the risk gate, the trade store and the
//! executor paper-trading with signed orders, for one number of market pairs.
//! Once both feeds hold every book, arbitrage windows open on one pair after
//! another; each trade's book message receive time is matched with the moment
//! both of its order requests were written to their sockets (tick-to-order,
//! from the kernel's receive stamps at the simulator) and parsed there, and
//! every evaluation's receive → decision is kept (tick-to-decision).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::app::Host;
use crate::config::{Config, Secret};
use crate::domain::{Usd, Venue};
use crate::execution::VenueClients;
use crate::feeds::{Feeds, VenueUrls};
use crate::risk::RiskLimits;
use crate::sim::{self, ArbDirection, EventKind, Scenario, ScenarioEvent, SimConfig, SimPair};
use crate::strategy::stats::{Histogram, LatencySummary};
use crate::venues::kalshi::rest::KalshiRest;
use crate::venues::kalshi::{KalshiSigner, KalshiVerifier};
use crate::venues::polymarket::rest::PolymarketRest;
use crate::venues::polymarket::{ApiCreds, PolySigner};

/// Which cores the host and the simulator run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Both on every core, one runtime: the kernel and tokio place them.
    Shared,
    /// The host's threads (its runtime, the strategy thread, the presigners,
    /// the store's) confined to `host`; the simulator, standing in for venues
    /// that run on machines of their own, on a runtime confined to `venues`.
    Split {
        host: Vec<usize>,
        venues: Vec<usize>,
    },
}

impl Layout {
    /// The host on the first core this process may use, the simulator on
    /// the others; `None` with fewer than two cores.
    pub fn split() -> Option<Layout> {
        let cores = crate::cores::allowed_cores().ok()?;
        let (host, venues) = cores.split_first()?;
        (!venues.is_empty()).then(|| Layout::Split {
            host: vec![*host],
            venues: venues.to_vec(),
        })
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |cores: &[usize]| {
            cores
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Layout::Shared => write!(f, "shared"),
            Layout::Split { host, venues } => {
                write!(f, "host {}, simulator {}", list(host), list(venues))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Loopback {
    pub layout: Layout,
    pub pairs: usize,
    pub plugins: usize,
    pub seconds: u64,
    /// Host started → both feeds hold every pair's books and their changes
    /// are evaluated.
    pub start_up: Duration,
    /// Book message received → the plugins decided (every evaluation after
    /// the start-up).
    pub tick_to_decision: LatencySummary,
    /// Book message received → both order sends polled once, by the host's
    /// clock: each writes its request when its order line has a connection open.
    pub tick_to_hand_over: LatencySummary,
    /// Book message received → both order requests written to their sockets
    /// (the kernel's stamp of their bytes at the simulator).
    pub tick_to_order: LatencySummary,
    /// Book message received → both order requests parsed by the simulator's
    /// server (which runs on the same two cores).
    pub tick_to_venue: LatencySummary,
    /// Windows seen (first opportunity of each), and trades whose two orders arrived.
    pub windows: usize,
    pub traded: usize,
    pub book_updates: u64,
    /// Kalshi orders that found no presigned signature ready and signed inline.
    pub signed_inline: u64,
    /// The executor's own stages of the same trades.
    pub order_path: Vec<(&'static str, LatencySummary)>,
}

/// Windows open this often, each on the next pair, and last half as long.
const WINDOW_EVERY_MS: u64 = 300;

/// Pairs whose books move on every simulator tick; the others hold still
/// except while a window is open on them. The simulator steps every pair not
/// held on each 50 ms tick, ~20 book updates a step: with all 1,000 pairs
/// moving that is ~400,000 updates/s, more than two cores parse and more than
/// its own feed buffer holds. With ten moving, every cell sees the market of
/// the 10-pair runs, and the other pairs measure what holding them costs.
pub(super) const MOVING: usize = 10;

/// Long enough to outlast any run: a held pair stays held.
const HOLD_MS: u64 = 86_400_000;

fn hold(pair: &SimPair) -> ScenarioEvent {
    ScenarioEvent {
        at_ms: 0,
        pair: Some(pair.id.clone()),
        kind: EventKind::Stale,
        direction: None,
        edge: None,
        size: None,
        duration_ms: Some(HOLD_MS),
        venue: None,
    }
}

/// The `k`-th window: on the next pair, alternating directions, 5¢ wide.
fn window(pairs: &[SimPair], k: usize) -> ScenarioEvent {
    ScenarioEvent {
        at_ms: 0,
        pair: Some(pairs[k % pairs.len()].id.clone()),
        kind: EventKind::ArbWindow,
        direction: Some(if k.is_multiple_of(2) {
            ArbDirection::KalshiYes
        } else {
            ArbDirection::PolymarketYes
        }),
        edge: Some(rust_decimal::Decimal::new(5, 2)),
        size: Some(rust_decimal::Decimal::from(20)),
        duration_ms: Some(WINDOW_EVERY_MS / 2),
        venue: None,
    }
}

/// What to tell the simulator at the `k`-th window slot: hold the last
/// window's pair again if it is a quiet one (its window closed half a period
/// ago and a tick or two has rebuilt its books since), then open the next.
fn slot(pairs: &[SimPair], k: usize) -> Vec<ScenarioEvent> {
    let mut events = Vec::new();
    if k > 0 && (k - 1) % pairs.len() >= MOVING {
        events.push(hold(&pairs[(k - 1) % pairs.len()]));
    }
    events.push(window(pairs, k));
    events
}

/// The host's configuration: `pairs` market pairs, the given plugins folder,
/// a fresh SQLite store, orders allowed (the venues are simulated).
fn config(
    dir: &Path,
    plugins: &Path,
    cache: &Path,
    pairs: usize,
    settings: HostSettings,
) -> anyhow::Result<Config> {
    let HostSettings {
        strategy_thread,
        batch_frames,
    } = settings;
    let mut text = format!(
        "dry_run = false\nmin_profit_threshold = \"0.01\"\nplugins_dir = {:?}\nplugin_cache_dir = {:?}\ndatabase_url = \"sqlite://{}/bench.db\"\nstrategy_thread = {strategy_thread}\nfeed_batch_frames = {batch_frames}\n",
        plugins.display().to_string(),
        cache.display().to_string(),
        dir.display()
    );
    for i in 0..pairs {
        text.push_str(&format!(
            "\n[[markets]]\nid = \"p{i}\"\nkalshi_ticker = \"KXBENCH-{i}\"\npolymarket_condition_id = \"0x{i:x}\"\npolymarket_yes_token = \"{}\"\npolymarket_no_token = \"{}\"\nrules_match = true\npolymarket_fee_rate = \"0.04\"\n",
            1_000_000 + 2 * i,
            1_000_001 + 2 * i
        ));
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, text)?;
    // Only the file: the bench must not pick up a real deployment's settings.
    Ok(Config::load(Some(&path), |_| None)?)
}

/// How the host under test is configured, beyond its defaults.
#[derive(Debug, Clone, Copy)]
pub struct HostSettings {
    /// Plugins on a strategy thread of their own instead of inline.
    pub strategy_thread: bool,
    /// `feed_batch_frames`.
    pub batch_frames: usize,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            strategy_thread: false,
            batch_frames: crate::venues::feed::BATCH_FRAMES,
        }
    }
}

/// A session key the simulator verifies: every Kalshi request is really
/// signed. Made once and shared by the cells: a 2048-bit key takes a while.
fn kalshi_key() -> anyhow::Result<(Arc<KalshiSigner>, KalshiVerifier)> {
    static PEMS: OnceLock<(String, String)> = OnceLock::new();
    let (private, public) = match PEMS.get() {
        Some(pems) => pems,
        None => {
            let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).context("RSA key")?;
            let private = key.to_pkcs8_pem(LineEnding::LF).context("RSA key")?;
            let public = key
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .context("RSA key")?;
            PEMS.get_or_init(|| (private.to_string(), public))
        }
    };
    let signer = KalshiSigner::from_pem("bench-key", private, Path::new("<generated>"))?;
    Ok((Arc::new(signer), KalshiVerifier::from_public_pem(public)?))
}

/// The Hardhat/Anvil test wallet (PROTOCOLS.md §3): simulator only.
const SIM_WALLET_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Both feeds have a snapshot of every pair's books, none stale.
fn in_sync(host: &Host) -> bool {
    host.books.all().iter().all(|e| {
        let m = e.state();
        [&m.kalshi, &m.polymarket]
            .iter()
            .all(|v| v.updated_at.is_some() && !v.stale)
    })
}

pub async fn measure(
    plugins: &[(String, Arc<Vec<u8>>)],
    cache: &Path,
    pairs: usize,
    seconds: u64,
    layout: &Layout,
    settings: HostSettings,
) -> anyhow::Result<Loopback> {
    let Layout::Split { host, venues } = layout else {
        return measure_on(
            plugins,
            cache,
            pairs,
            seconds,
            layout.clone(),
            settings,
            None,
        )
        .await;
    };
    // Runtimes of their own, driven from a thread outside this one.
    let (plugins, cache) = (plugins.to_vec(), cache.to_path_buf());
    let (host, venues, layout) = (host.clone(), venues.clone(), layout.clone());
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-host".into())
        .spawn(move || {
            let run = || {
                let venues_rt = confined_runtime(&venues)?;
                // Threads inherit their creator's cores: the strategy
                // thread, the presigners and the store's threads stay here.
                crate::cores::confine(&host).context("confining the host")?;
                let host_rt = confined_runtime(&host)?;
                let sim_runtime = venues_rt.handle().clone();
                let l = host_rt.block_on(measure_on(
                    &plugins,
                    &cache,
                    pairs,
                    seconds,
                    layout,
                    settings,
                    Some(sim_runtime),
                ));
                host_rt.shutdown_timeout(Duration::from_secs(5));
                venues_rt.shutdown_timeout(Duration::from_secs(5));
                l
            };
            let _ = done.send(run());
        })
        .context("starting the bench's host thread")?;
    result.await.context("the bench's host thread ended")?
}

/// A runtime with one worker per core of `cores`, every thread of it confined there.
fn confined_runtime(cores: &[usize]) -> anyhow::Result<tokio::runtime::Runtime> {
    let mine = cores.to_vec();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.len().max(1))
        .enable_all()
        .on_thread_start(move || {
            if let Err(e) = crate::cores::confine(&mine) {
                tracing::warn!(error = %e, "could not confine a bench runtime thread");
            }
        })
        .build()
        .context("building a bench runtime")
}

/// One cell in `layout`, with the simulator on `sim_runtime` (this one when `None`).
async fn measure_on(
    plugins: &[(String, Arc<Vec<u8>>)],
    cache: &Path,
    pairs: usize,
    seconds: u64,
    layout: Layout,
    settings: HostSettings,
    sim_runtime: Option<tokio::runtime::Handle>,
) -> anyhow::Result<Loopback> {
    let dir = super::Scratch::new("host")?;
    let plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    for (name, bytes) in plugins {
        std::fs::write(plugins_dir.join(format!("{name}.wasm")), &**bytes)?;
    }
    let config = config(dir.path(), &plugins_dir, cache, pairs, settings)?;
    let sim_pairs: Vec<SimPair> = config
        .pair_setups()
        .iter()
        .map(|(p, _)| SimPair::from(p))
        .collect();
    let (signer, verifier) = kalshi_key()?;
    let sim_config = SimConfig {
        pairs: sim_pairs.clone(),
        scenario: Scenario {
            seed: 5,
            tick_ms: 50,
            events: sim_pairs.iter().skip(MOVING).map(hold).collect(),
        },
        kalshi_auth: Some(sim::kalshi_signature_check(verifier)),
    };
    // The simulator's listeners, servers and driver live on the runtime it starts on.
    let sim = match sim_runtime {
        Some(rt) => rt.spawn(sim::start(sim_config)).await??,
        None => sim::start(sim_config).await?,
    };
    // Enough cash on both venues that no cell runs out (one pair trades every window).
    for venue in Venue::ALL {
        sim.set_balance(venue, rust_decimal::Decimal::from(1_000_000));
    }
    let started = Instant::now();
    let host = Arc::new(tokio::task::spawn_blocking(move || Host::start(config)).await??);
    // Latency, not the risk policy, is measured: every window's trade goes out,
    // however thin after fees on its pair and however many on one pair.
    host.risk
        .set_limits(RiskLimits {
            min_profit_per_trade: Usd::new(rust_decimal::Decimal::new(1, 2)),
            max_exposure_per_market: Usd::new(rust_decimal::Decimal::from(1_000_000)),
            max_total_exposure: Usd::new(rust_decimal::Decimal::from(1_000_000)),
            // A window closing between the legs must not end a 1-pair cell.
            cooldown_after_leg_failure_ms: 0,
            ..host.risk.limits()
        })
        .map_err(|e| anyhow::anyhow!("bench risk limits: {e}"))?;
    let traces = host
        .strategy
        .trace_opportunities()
        .context("opportunity trace already taken")?;
    let feeds = Feeds::start(
        &host,
        &VenueUrls::from_sim(&sim),
        Some(signer.clone()),
        None,
    );
    let creds = {
        use base64::Engine;
        use rand::RngCore;
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        ApiCreds::new(
            "bench-api-key",
            Secret::new(base64::engine::general_purpose::URL_SAFE.encode(secret)),
            Secret::new(format!("{:016x}", rand::thread_rng().next_u64())),
        )
    };
    sim.set_polymarket_creds(creds.clone());
    let clients = VenueClients {
        kalshi: KalshiRest::new(&sim.kalshi_rest_url, Some(signer))?.with_presigned_orders(
            crate::app::PRESIGNED_ORDERS,
            Duration::from_millis(host.config.kalshi.presign_max_age_ms),
        ),
        polymarket: PolymarketRest::new(
            &sim.polymarket_rest_url,
            Some(creds),
            Some(
                PolySigner::from_private_key(&Secret::new(SIM_WALLET_KEY))?
                    .with_presignatures(crate::app::PRESIGNED_ORDERS),
            ),
        )?,
    };
    let trading = crate::app::start_trading(&host, clients).await?;
    // Windows open only once the host holds every book: start-up is its own figure.
    let sync_deadline = started + Duration::from_secs(60);
    while !in_sync(&host) {
        anyhow::ensure!(
            Instant::now() < sync_deadline,
            "{pairs} pairs: the feeds had not every book after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And once the strategy has worked through the snapshots' changes.
    let strategy = host.strategy.clone();
    tokio::task::spawn_blocking(move || strategy.drain()).await?;
    let start_up = started.elapsed();
    let after_start_up = host.strategy.tick_to_decision_mark();
    sim::order_arrivals(true);
    let mut slots = tokio::time::interval(Duration::from_millis(WINDOW_EVERY_MS));
    for k in 0..(seconds * 1_000 / WINDOW_EVERY_MS) as usize {
        slots.tick().await;
        for event in slot(&sim_pairs, k) {
            sim.inject(event);
        }
    }
    // The last window's trade, with room to spare.
    tokio::time::sleep(Duration::from_millis(2 * WINDOW_EVERY_MS)).await;
    let arrivals = sim::order_arrivals(false);
    let book_updates = feeds
        .stats
        .values()
        .map(|s| s.book_updates.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    // The trades whose orders went out, each named by its opportunity.
    let sent: Vec<(crate::domain::PairId, u64)> = host
        .trades
        .repo
        .trades(10_000)
        .await
        .context("reading the bench's trades")?
        .into_iter()
        .filter(|t| {
            !matches!(
                t.outcome,
                crate::execution::TradeOutcome::Refused(_) | crate::execution::TradeOutcome::DryRun
            )
        })
        .map(|t| (t.opportunity.pair, t.opportunity.found_at))
        .collect();
    let order_path = trading.executor.stages.summaries();
    let signed_inline = trading.executor.clients().kalshi.orders_signed_inline();
    let handovers = trading.executor.stages.handovers();
    trading.stop().await;
    feeds.stop().await;
    let strategy = host.strategy.clone();
    let tick_to_decision = strategy.tick_to_decision_since(&after_start_up);
    tokio::task::spawn_blocking(move || strategy.shutdown()).await?;
    drop(sim);

    let traces: Vec<_> = traces.try_iter().collect();
    let matched = match_orders(&traces, &sent, &arrivals);
    let tick_to_hand_over = match_handovers(&traces, &handovers);
    Ok(Loopback {
        layout,
        pairs,
        plugins: plugins.len(),
        seconds,
        start_up,
        tick_to_decision,
        tick_to_hand_over: tick_to_hand_over.summary(),
        tick_to_order: matched.written.summary(),
        tick_to_venue: matched.parsed.summary(),
        windows: matched.windows,
        traded: matched.traded,
        book_updates,
        signed_inline,
        order_path,
    })
}

/// Each trade whose orders went out, timed from the book message of the
/// decision it came from (not the window's first opportunity, which the risk
/// gate may have refused: that wait is the market's, not the host's) to the
/// later of its two order requests: written to its socket, and parsed at the
/// simulator. Windows are counted from the traces: a trace more than half a
/// period after the previous window's first one opens the next.
fn match_orders(
    traces: &[crate::strategy::runtime::OpportunityTrace],
    sent: &[(crate::domain::PairId, u64)],
    arrivals: &[sim::OrderArrival],
) -> Matched {
    let m = Matched::default();
    let window_us = WINDOW_EVERY_MS * 1_000 / 2;
    let mut last_window: Option<u64> = None;
    let mut windows = 0;
    for t in traces {
        if last_window.is_some_and(|w| t.decided_at < w + window_us) {
            continue;
        }
        last_window = Some(t.decided_at);
        windows += 1;
    }
    let mut traded = 0;
    for (pair, found_at) in sent {
        let Some(t) = traces
            .iter()
            .find(|t| t.pair == *pair && t.found_at == *found_at)
        else {
            continue;
        };
        // The trade's own request on `venue`: the first parsed after its decision.
        let first = |venue| {
            arrivals
                .iter()
                .filter(|a| {
                    a.venue == venue
                        && a.parsed_at >= t.decided_at
                        && a.parsed_at < t.decided_at + window_us
                })
                .min_by_key(|a| a.parsed_at)
        };
        if let (Some(k), Some(p)) = (first(Venue::Kalshi), first(Venue::Polymarket)) {
            traded += 1;
            m.parsed
                .record_ns((k.parsed_at.max(p.parsed_at) - t.received_at) * 1_000);
            if let (Some(kw), Some(pw)) = (k.written_at, p.written_at) {
                m.written
                    .record_ns(kw.max(pw).saturating_sub(t.received_at) * 1_000);
            }
        }
    }
    Matched {
        windows,
        traded,
        ..m
    }
}

#[derive(Default)]
struct Matched {
    /// Tick → both requests written to their sockets.
    written: Histogram,
    /// Tick → both requests parsed at the simulator.
    parsed: Histogram,
    windows: usize,
    traded: usize,
}

/// Each trade's book message received → both its orders handed over, the
/// executor's hand-over matched to its decision by the opportunity's time.
fn match_handovers(
    traces: &[crate::strategy::runtime::OpportunityTrace],
    handovers: &[(u64, u64)],
) -> Histogram {
    let h = Histogram::default();
    for (found_at, handed_at) in handovers {
        if let Some(t) = traces.iter().find(|t| t.found_at == *found_at) {
            h.record_ns(handed_at.saturating_sub(t.received_at) * 1_000);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PairId;
    use crate::strategy::runtime::OpportunityTrace;

    fn trace(received_at: u64, decided_at: u64) -> OpportunityTrace {
        OpportunityTrace {
            pair: PairId("a".into()),
            received_at,
            decided_at,
            found_at: received_at + 1,
        }
    }

    fn sim_pairs(n: usize) -> Vec<SimPair> {
        (0..n)
            .map(|i| SimPair {
                id: format!("p{i}"),
                kalshi_ticker: String::new(),
                condition_id: String::new(),
                yes_token: String::new(),
                no_token: String::new(),
                rules: String::new(),
            })
            .collect()
    }

    /// (kind, pair) of each event the `k`-th slot sends.
    fn slot_of(pairs: &[SimPair], k: usize) -> Vec<(EventKind, String)> {
        slot(pairs, k)
            .into_iter()
            .map(|e| (e.kind, e.pair.unwrap_or_default()))
            .collect()
    }

    /// The split layout end to end, one pair for a second: the simulator on
    /// a runtime of its own, the host's threads confined to one core, trades
    /// out and timed to the socket write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_split_layout_trades_and_times_its_orders_to_the_socket() {
        let Some(layout) = Layout::split() else {
            let cores = crate::cores::allowed_cores().map_or(1, |c| c.len());
            assert!(cores < 2, "{cores} cores but no split layout");
            return;
        };
        let Layout::Split { host, venues } = &layout else {
            unreachable!()
        };
        assert!(host.len() == 1 && !venues.contains(&host[0]), "{layout}");
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let plugins = std::env::var_os("DOUBLETIME_TEST_PLUGINS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("target/plugins"));
        let bytes = std::fs::read(plugins.join("buy-both.wasm"))
            .expect("buy-both.wasm: run scripts/build-plugins first");
        let cells = [("buy-both".to_string(), Arc::new(bytes))];
        let l = tokio::time::timeout(
            Duration::from_secs(120),
            measure(
                &cells,
                &root.join("target/plugin-cache"),
                1,
                1,
                &layout,
                HostSettings::default(),
            ),
        )
        .await
        .expect("one split cell within 2 minutes")
        .unwrap();
        assert_eq!(l.layout, layout);
        assert!(l.book_updates > 0 && l.tick_to_decision.count > 0, "{l:?}");
        assert!(l.windows >= 1 && l.traded >= 1, "{l:?}");
        // Both requests of a traded window carry the kernel's write stamp.
        assert!(l.tick_to_order.count >= 1, "{l:?}");
        assert!(l.tick_to_order.count as usize <= l.traded, "{l:?}");
    }

    #[test]
    fn windows_go_round_the_pairs_and_a_quiet_pair_is_held_again_after_its_window() {
        let many = sim_pairs(MOVING + 5);
        assert_eq!(slot_of(&many, 0), [(EventKind::ArbWindow, "p0".into())]);
        // After a moving pair's window: nothing to hold.
        assert_eq!(
            slot_of(&many, MOVING),
            [(EventKind::ArbWindow, format!("p{MOVING}"))]
        );
        // After a quiet pair's window: held again, then the next window.
        assert_eq!(
            slot_of(&many, MOVING + 1),
            [
                (EventKind::Stale, format!("p{MOVING}")),
                (EventKind::ArbWindow, format!("p{}", MOVING + 1))
            ]
        );
        // Round again: the last quiet pair held, the first moving one opened.
        assert_eq!(
            slot_of(&many, MOVING + 5),
            [
                (EventKind::Stale, format!("p{}", MOVING + 4)),
                (EventKind::ArbWindow, "p0".into())
            ]
        );
        // One pair: it moves, every window is on it, nothing is ever held.
        let one = sim_pairs(1);
        assert!((0..5).all(|k| slot_of(&one, k) == [(EventKind::ArbWindow, "p0".into())]));
    }

    #[test]
    fn a_hand_over_is_timed_from_its_own_decisions_book_message() {
        let traces = [trace(1_000, 1_010), trace(5_000, 5_020)];
        // found_at is received_at + 1 in `trace`; the third matches nothing.
        let h = match_handovers(&traces, &[(5_001, 5_400), (1_001, 1_300), (9, 10)]);
        assert_eq!(h.count(), 2);
        let (p50, p99) = (h.quantile_ns(0.5), h.quantile_ns(0.99));
        assert!((300_000..=320_000).contains(&p50), "{p50}");
        assert!((400_000..=425_000).contains(&p99), "{p99}");
    }

    #[test]
    fn each_trade_is_timed_from_its_own_decision_to_its_two_orders() {
        let w = WINDOW_EVERY_MS * 1_000;
        let traces = [
            // Refused by the gate (too small): the window's first, not traded.
            trace(1_000, 1_010),
            // The same window found again, approved: timed from here.
            trace(1_500, 1_510),
            trace(w + 2_000, w + 2_020),
            // No orders within half a period: a window, not traded.
            trace(3 * w, 3 * w + 5),
        ];
        let sent = [(PairId("a".into()), 1_501), (PairId("a".into()), w + 2_001)];
        // Written 100 µs before parsed, except one request with no stamp.
        let at = |venue, parsed_at: u64, stamped: bool| sim::OrderArrival {
            venue,
            written_at: stamped.then(|| parsed_at - 100),
            parsed_at,
        };
        let arrivals = [
            at(Venue::Kalshi, 1_600, true),
            at(Venue::Polymarket, 2_400, true),
            at(Venue::Polymarket, w + 2_300, true),
            at(Venue::Kalshi, w + 2_500, false),
            at(Venue::Kalshi, 3 * w + w, true),
        ];
        let m = match_orders(&traces, &sent, &arrivals);
        assert_eq!((m.windows, m.traded), (3, 2));
        assert_eq!(m.parsed.count(), 2);
        // 900 µs (2_400 − 1_500, not − 1_000) and 500 µs, within a histogram bucket.
        let p99 = m.parsed.quantile_ns(0.99);
        assert!((900_000..=960_000).contains(&p99), "{p99}");
        // Written: only the trade with both stamps, 800 µs.
        assert_eq!(m.written.count(), 1);
        let p50 = m.written.quantile_ns(0.5);
        assert!((800_000..=850_000).contains(&p50), "{p50}");
    }
}
