//! The whole host against the in-process simulator on loopback: both feeds
//! over WebSocket, the Rust plugin, the risk gate, the trade store and the
//! executor paper-trading with signed orders. Arbitrage windows open on one
//! pair after another; each opportunity's book message receive time is
//! matched with the moment both of its order requests reached the simulator.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::app::Host;
use crate::config::{Config, Secret};
use crate::domain::Venue;
use crate::execution::VenueClients;
use crate::feeds::{Feeds, VenueUrls};
use crate::sim::{self, ArbDirection, EventKind, Scenario, ScenarioEvent, SimConfig, SimPair};
use crate::strategy::stats::{Histogram, LatencySummary};
use crate::venues::kalshi::rest::KalshiRest;
use crate::venues::kalshi::{KalshiSigner, KalshiVerifier};
use crate::venues::polymarket::rest::PolymarketRest;
use crate::venues::polymarket::{ApiCreds, PolySigner};

#[derive(Debug, Clone)]
pub struct Loopback {
    pub pairs: usize,
    pub seconds: u64,
    /// Book message received → the plugin decided (every evaluation).
    pub tick_to_decision: LatencySummary,
    /// Book message received → both order requests at the simulator.
    pub tick_to_order: LatencySummary,
    /// Windows seen (first opportunity of each), and trades whose two orders arrived.
    pub windows: usize,
    pub traded: usize,
    pub book_updates: u64,
    /// The executor's own stages of the same trades.
    pub order_path: Vec<(&'static str, LatencySummary)>,
}

/// Windows open this often, each on the next pair, and last half as long.
const WINDOW_EVERY_MS: u64 = 300;

fn scenario(pairs: &[SimPair], seconds: u64) -> Scenario {
    let events = (0..seconds * 1_000 / WINDOW_EVERY_MS)
        .map(|k| ScenarioEvent {
            at_ms: 1_000 + k * WINDOW_EVERY_MS,
            pair: Some(pairs[k as usize % pairs.len()].id.clone()),
            kind: EventKind::ArbWindow,
            direction: Some(if k % 2 == 0 {
                ArbDirection::KalshiYes
            } else {
                ArbDirection::PolymarketYes
            }),
            edge: Some(rust_decimal::Decimal::new(5, 2)),
            size: Some(rust_decimal::Decimal::from(20)),
            duration_ms: Some(WINDOW_EVERY_MS / 2),
            venue: None,
        })
        .collect();
    Scenario {
        seed: 5,
        tick_ms: 50,
        events,
    }
}

/// The host's configuration: `pairs` market pairs, the given plugins folder,
/// a fresh SQLite store, orders allowed (the venues are simulated).
fn config(dir: &Path, plugins: &Path, cache: &Path, pairs: usize) -> anyhow::Result<Config> {
    let mut text = format!(
        "dry_run = false\nmin_profit_threshold = \"0.01\"\nplugins_dir = {:?}\nplugin_cache_dir = {:?}\ndatabase_url = \"sqlite://{}/bench.db\"\n",
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

/// A session key the simulator verifies: every Kalshi request is really signed.
fn kalshi_key() -> anyhow::Result<(Arc<KalshiSigner>, KalshiVerifier)> {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).context("RSA key")?;
    let private = key.to_pkcs8_pem(LineEnding::LF).context("RSA key")?;
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .context("RSA key")?;
    let signer = KalshiSigner::from_pem("bench-key", &private, Path::new("<generated>"))?;
    Ok((Arc::new(signer), KalshiVerifier::from_public_pem(&public)?))
}

/// The Hardhat/Anvil test wallet (PROTOCOLS.md §3): simulator only.
const SIM_WALLET_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

pub async fn measure(
    plugins: &Path,
    cache: &Path,
    pairs: usize,
    seconds: u64,
) -> anyhow::Result<Loopback> {
    let dir = super::Scratch::new("host")?;
    let config = config(dir.path(), plugins, cache, pairs)?;
    let sim_pairs: Vec<SimPair> = config
        .pair_setups()
        .iter()
        .map(|(p, _)| SimPair::from(p))
        .collect();
    let (signer, verifier) = kalshi_key()?;
    let sim = sim::start(SimConfig {
        pairs: sim_pairs.clone(),
        scenario: scenario(&sim_pairs, seconds),
        kalshi_auth: Some(sim::kalshi_signature_check(verifier)),
    })
    .await?;
    let host = Arc::new(tokio::task::spawn_blocking(move || Host::start(config)).await??);
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
            Some(PolySigner::from_private_key(&Secret::new(SIM_WALLET_KEY))?),
        )?,
    };
    let trading = crate::app::start_trading(&host, clients).await?;
    sim::order_arrivals(true);
    tokio::time::sleep(Duration::from_millis(1_000 + seconds * 1_000)).await;
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
    trading.stop().await;
    feeds.stop().await;
    let strategy = host.strategy.clone();
    let tick_to_decision = strategy.tick_to_decision();
    tokio::task::spawn_blocking(move || strategy.shutdown()).await?;
    drop(sim);

    let traces: Vec<_> = traces.try_iter().collect();
    let (tick_to_order, windows, traded) = match_orders(&traces, &sent, &arrivals);
    Ok(Loopback {
        pairs,
        seconds,
        tick_to_decision,
        tick_to_order: tick_to_order.summary(),
        windows,
        traded,
        book_updates,
        order_path,
    })
}

/// Each trade whose orders went out, timed from the book message of the
/// decision it came from (not the window's first opportunity, which the risk
/// gate may have refused: that wait is the market's, not the host's) to the
/// later of its two order requests at the simulator. Windows are counted from
/// the traces: a trace more than half a period after the previous window's
/// first one opens the next.
fn match_orders(
    traces: &[crate::strategy::runtime::OpportunityTrace],
    sent: &[(crate::domain::PairId, u64)],
    arrivals: &[(Venue, u64)],
) -> (Histogram, usize, usize) {
    let h = Histogram::default();
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
        let first = |venue| {
            arrivals
                .iter()
                .filter(|(v, at)| {
                    *v == venue && *at >= t.decided_at && *at < t.decided_at + window_us
                })
                .map(|(_, at)| *at)
                .min()
        };
        if let (Some(k), Some(p)) = (first(Venue::Kalshi), first(Venue::Polymarket)) {
            traded += 1;
            h.record_ns((k.max(p) - t.received_at) * 1_000);
        }
    }
    (h, windows, traded)
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
        let arrivals = [
            (Venue::Kalshi, 1_600),
            (Venue::Polymarket, 2_400),
            (Venue::Polymarket, w + 2_300),
            (Venue::Kalshi, w + 2_500),
            (Venue::Kalshi, 3 * w + w),
        ];
        let (h, windows, traded) = match_orders(&traces, &sent, &arrivals);
        assert_eq!((windows, traded), (3, 2));
        assert_eq!(h.count(), 2);
        // 900 µs (2_400 − 1_500, not − 1_000) and 500 µs, within a histogram bucket.
        let p99 = h.quantile_ns(0.99);
        assert!((900_000..=960_000).contains(&p99), "{p99}");
    }
}
