//! One plugin's backtest: the plugin alone, on books that follow the
//! recording, its opportunities through the real risk gate and executor, and
//! its orders filled by a simulator whose books are the recorded ones.
//!
//! Each plugin gets a [`Lane`] of its own (books, bus, plugin runtime, risk
//! gate, executor, SQLite store in a scratch folder, simulated accounts), so
//! every trade, fee and dollar of P&L in its report is its own.
//!
//! The recording cannot show how the venues would have answered our orders.
//! The rule here: liquidity our fills took stays taken at that level until
//! the recording changes the level (the venue then reports its new size), so
//! a window the recording keeps open is not traded again and again as if
//! nobody had taken it. The plugin, the risk gate and the simulator all see
//! the recorded books minus what is still taken.
//!
//! The risk gate reads both balances over REST at the start and after each
//! trade (live, a task refreshes them every second). What a market holds
//! stays counted as its exposure until settlement, which a recording does not
//! show: once a plugin has filled `max_exposure_per_market` on a market, the
//! rest of that market's opportunities are refused (`market_exposure`), as
//! they would be live.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::books::BookStore;
use crate::bus::{BookChanged, Bus, CoalescingReceiver, LosslessReceiver};
use crate::config::{Config, Secret};
use crate::domain::events::{ArbitrageOpportunityFound, ExecuteTrade};
use crate::domain::{
    MarketOutcomes, MarketState, OrderBook, PairId, Price, Side, Size, UnixMicros, Usd, Venue,
};
use crate::execution::{ExecutionPolicy, Executor, TradeRecord, VenueClients};
use crate::risk::{RiskDecision, RiskGate, RiskHandle, RiskLimits};
use crate::sim::{SimHandle, SimPair, VenueBooks};
use crate::store::TradeStore;
use crate::strategy::StrategyRuntime;
use crate::venues::kalshi::KalshiSigner;
use crate::venues::kalshi::rest::KalshiRest;
use crate::venues::polymarket::rest::PolymarketRest;
use crate::venues::polymarket::{ApiCreds, PolySigner};

use super::report::{Backtest, FillLine, TradeLine};

/// A trade that takes longer than this against a loopback simulator is stuck:
/// the replay stops with an error rather than hang.
const TRADE_TIMEOUT: Duration = Duration::from_secs(60);

/// Trades listed one by one in the report; the totals count them all.
pub const TRADES_LISTED: usize = 1_000;

/// Credentials shared by every lane: one RSA key per replay (the simulator
/// accepts any Kalshi signature), one wallet and one set of L2 keys.
pub struct Keys {
    kalshi: Arc<KalshiSigner>,
    polymarket: ApiCreds,
}

impl Keys {
    pub fn new() -> anyhow::Result<Keys> {
        let (kalshi, _) = crate::demo::demo_kalshi_key()?;
        Ok(Keys {
            kalshi,
            polymarket: crate::demo::demo_poly_creds(),
        })
    }
}

/// One of the four books of a pair as the venues publish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum BookOf {
    KalshiYes,
    KalshiNo,
    PolyYes,
    PolyNo,
}

const BOOKS: [BookOf; 4] = [
    BookOf::KalshiYes,
    BookOf::KalshiNo,
    BookOf::PolyYes,
    BookOf::PolyNo,
];

fn book(b: &VenueBooks, of: BookOf) -> &OrderBook {
    match of {
        BookOf::KalshiYes => &b.kalshi_yes,
        BookOf::KalshiNo => &b.kalshi_no,
        BookOf::PolyYes => &b.poly_yes,
        BookOf::PolyNo => &b.poly_no,
    }
}

fn book_mut(b: &mut VenueBooks, of: BookOf) -> &mut OrderBook {
    match of {
        BookOf::KalshiYes => &mut b.kalshi_yes,
        BookOf::KalshiNo => &mut b.kalshi_no,
        BookOf::PolyYes => &mut b.poly_yes,
        BookOf::PolyNo => &mut b.poly_no,
    }
}

fn level(b: &OrderBook, side: Side, price: Price) -> Size {
    let found = match side {
        Side::Bid => b.bids().find(|l| l.price == price),
        Side::Ask => b.asks().find(|l| l.price == price),
    };
    found.map_or(Size::ZERO, |l| l.size)
}

/// The venues' books of a pair as recorded (Kalshi: bids only, as its feed
/// sends them; Polymarket: both sides of each token).
fn venue_books(state: &MarketState) -> VenueBooks {
    VenueBooks {
        kalshi_yes: state.kalshi.yes.clone(),
        kalshi_no: state.kalshi.no.clone(),
        poly_yes: state.polymarket.yes.clone(),
        poly_no: state.polymarket.no.clone(),
    }
}

/// Liquidity our fills took, per level: (the recorded size when it was
/// taken, how much of it is taken). Forgotten once the recording changes
/// the level, so it stays as small as the levels we traded on.
#[derive(Default)]
struct Taken(HashMap<(BookOf, Side, Price), (Size, Size)>);

impl Taken {
    /// The recorded books minus what is still taken.
    fn apply(&mut self, recorded: &VenueBooks) -> VenueBooks {
        let mut books = recorded.clone();
        self.0.retain(|&(of, side, price), &mut (was, taken)| {
            let now = level(book(recorded, of), side, price);
            if now != was {
                return false;
            }
            let left = now.checked_sub(taken).unwrap_or(Size::ZERO);
            book_mut(&mut books, of).set_level(side, price, left);
            true
        });
        books
    }

    /// Books what a trade took: every level that shrank between `before` and
    /// `after` (the simulator's books around the trade).
    fn note(&mut self, recorded: &VenueBooks, before: &VenueBooks, after: &VenueBooks) {
        for of in BOOKS {
            for side in [Side::Bid, Side::Ask] {
                let levels: Vec<_> = match side {
                    Side::Bid => book(before, of).bids().collect(),
                    Side::Ask => book(before, of).asks().collect(),
                };
                for l in levels {
                    let left = level(book(after, of), side, l.price);
                    if left >= l.size {
                        continue;
                    }
                    let was = level(book(recorded, of), side, l.price);
                    let taken = was.checked_sub(left).unwrap_or(Size::ZERO);
                    self.0.insert((of, side, l.price), (was, taken));
                }
            }
        }
    }
}

/// One plugin backtested on its own.
pub struct Lane {
    pub plugin: String,
    books: Arc<BookStore>,
    bus: Arc<Bus>,
    pub strategy: Arc<StrategyRuntime>,
    opportunities: CoalescingReceiver<PairId, ArbitrageOpportunityFound>,
    executions: LosslessReceiver<ExecuteTrade>,
    risk: RiskHandle,
    executor: Arc<Executor>,
    clients: Arc<VenueClients>,
    sim: SimHandle,
    /// The simulator's index of each pair.
    index: HashMap<PairId, usize>,
    /// Per pair, what our fills took.
    taken: HashMap<PairId, Taken>,
    /// Per pair and venue: when the recorded book last changed, as the feed
    /// stamped it and in recorded time.
    changed_at: HashMap<(PairId, Venue), (Option<UnixMicros>, u64)>,
    approved: u64,
    _scratch: crate::bench::Scratch,
}

impl Lane {
    /// A lane for the plugin in `plugin_file`: a fresh simulator (both
    /// accounts at their opening balance), store, risk gate and executor.
    pub async fn start(
        config: &Config,
        plugin_file: &std::path::Path,
        keys: &Keys,
    ) -> anyhow::Result<Lane> {
        let setups = config.pair_setups();
        let books = Arc::new(BookStore::new());
        for (pair, fees) in &setups {
            books.add(
                pair.clone(),
                *fees,
                Size::whole(crate::app::DEFAULT_POLYMARKET_MIN_SIZE),
            );
        }
        let bus = Arc::new(Bus::default());
        let strategy = super::start_strategy(config, books.clone(), bus.clone())?;
        let report = strategy
            .load_file(plugin_file)
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", plugin_file.display()))?;
        let sim = crate::sim::start_still(setups.iter().map(|(p, _)| SimPair::from(p)).collect())
            .await
            .context("starting the simulator to execute against")?;
        // The venues charge what the configured pairs say they charge.
        if let Some((_, fees)) = setups.first() {
            sim.set_kalshi_fees(fees.kalshi);
            sim.set_polymarket_fees(fees.polymarket);
            if setups.iter().any(|(_, f)| f != fees) {
                tracing::warn!(
                    "the pairs' fees differ; the simulator charges the first pair's on every pair"
                );
            }
        }
        sim.set_polymarket_creds(keys.polymarket.clone());
        let clients = Arc::new(VenueClients {
            kalshi: KalshiRest::new(&sim.kalshi_rest_url, Some(keys.kalshi.clone()))?,
            polymarket: PolymarketRest::new(
                &sim.polymarket_rest_url,
                Some(keys.polymarket.clone()),
                Some(PolySigner::from_private_key(&Secret::new(
                    crate::demo::DEMO_WALLET_KEY,
                ))?),
            )?,
        });
        clients
            .polymarket
            .sync_version()
            .await
            .context("asking the simulator for Polymarket's exchange version")?;
        let scratch = crate::bench::Scratch::new("replay")?;
        let url = format!("sqlite://{}/trades.db", scratch.path().display());
        let store = TradeStore::open(&url, "replay")
            .await
            .context("opening the backtest's trade store")?;
        // Not dry run: the orders go to the simulator, the only venue here.
        let risk = RiskHandle::new(RiskGate::new(RiskLimits::from_config(config), false));
        let executor = Executor::new(
            clients.clone(),
            books.clone(),
            bus.clone(),
            risk.clone(),
            ExecutionPolicy {
                dry_run: false,
                leg_mode: config.leg_mode,
                leg_order: config.leg_order,
                ..ExecutionPolicy::default()
            },
            store,
        );
        let opportunities = bus.opportunities.subscribe();
        let executions = bus.executions.subscribe();
        let index = setups
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (p.id.clone(), i))
            .collect();
        let lane = Lane {
            plugin: report.name,
            books,
            bus,
            strategy,
            opportunities,
            executions,
            risk,
            executor,
            clients,
            sim,
            index,
            taken: HashMap::new(),
            changed_at: HashMap::new(),
            approved: 0,
            _scratch: scratch,
        };
        lane.read_balances().await;
        Ok(lane)
    }

    /// The recorded books of `pair` changed (at recorded time `t`): this
    /// lane's books and its simulator take them (minus what our fills still
    /// hold), and the plugin hears of it.
    pub fn on_changed(
        &mut self,
        recorded: &BookStore,
        pair: &PairId,
        changed: BookChanged,
        t: u64,
    ) {
        let Some(&i) = self.index.get(pair) else {
            return;
        };
        let Some(rec) = recorded.get(pair).map(|e| e.state().clone()) else {
            return;
        };
        let market = self
            .taken
            .entry(pair.clone())
            .or_default()
            .apply(&venue_books(&rec));
        self.show(pair, &market, &rec, t);
        self.sim.set_books(i, market);
        self.bus.books.publish(pair.clone(), changed);
    }

    /// Puts `books` in this lane's store for `pair`, with the recorded
    /// staleness and each venue's age as recorded at `t`: the risk gate's
    /// book-age limit and the plugin's `book_age_us` then read the
    /// recording's clock, not how fast the replay runs.
    fn show(&mut self, pair: &PairId, books: &VenueBooks, rec: &MarketState, t: u64) {
        let Some(ours) = self.books.get(pair) else {
            return;
        };
        let now = crate::strategy::now_micros();
        let mut st = ours.state();
        st.kalshi = MarketOutcomes {
            yes: books.kalshi_yes.clone(),
            no: books.kalshi_no.clone(),
            ..rec.kalshi.clone()
        };
        st.polymarket = MarketOutcomes {
            yes: books.poly_yes.clone(),
            no: books.poly_no.clone(),
            ..rec.polymarket.clone()
        };
        for venue in Venue::ALL {
            let fed_at = rec.venue(venue).updated_at;
            let last = self
                .changed_at
                .entry((pair.clone(), venue))
                .or_insert((fed_at, t));
            if last.0 != fed_at {
                *last = (fed_at, t);
            }
            let age = t.saturating_sub(last.1);
            st.venue_mut(venue).updated_at = fed_at.map(|_| now.saturating_sub(age));
        }
    }

    /// The plugin's opportunities after the last changes (recorded time `t`):
    /// each through the risk gate, each approved one executed to the end
    /// before the next.
    pub async fn trade(&mut self, recorded: &BookStore, t: u64) -> anyhow::Result<()> {
        // Blocks this thread only: the simulator runs on the runtime's workers.
        self.strategy.drain();
        while let Some((pair, found)) = self.opportunities.try_recv() {
            let (Some(&i), Some(rec)) = (
                self.index.get(&pair),
                recorded.get(&pair).map(|e| e.state().clone()),
            ) else {
                continue;
            };
            // Ages as recorded now, not when the plugin was told.
            let market = self.books.get(&pair).map(|e| venue_books(&e.state()));
            if let Some(market) = market {
                self.show(&pair, &market, &rec, t);
            }
            let decision = self.risk.decide(found.opportunity, &self.books, &self.bus);
            let RiskDecision::Approved { .. } = decision else {
                continue;
            };
            let Some(cmd) = self.executions.try_recv() else {
                continue;
            };
            self.approved += 1;
            let before = self.sim.books(i).unwrap_or_default();
            tokio::time::timeout(TRADE_TIMEOUT, self.executor.execute(cmd))
                .await
                .map_err(|_| anyhow::anyhow!("a trade on {pair} did not finish in 60 s"))?;
            let after = self.sim.books(i).unwrap_or_default();
            self.taken
                .entry(pair.clone())
                .or_default()
                .note(&venue_books(&rec), &before, &after);
            self.show(&pair, &after, &rec, t);
            // Our trades are the only thing that moves the accounts.
            self.read_balances().await;
        }
        Ok(())
    }

    /// Both venues' balances for the risk gate, read over REST as the
    /// host's balance refresh reads them.
    async fn read_balances(&self) {
        match self.clients.kalshi.balance().await {
            Ok(b) => self.risk.set_balance(Venue::Kalshi, b),
            Err(e) => tracing::warn!(error = %e, "replay: Kalshi balance unavailable"),
        }
        match self.clients.polymarket.balance().await {
            Ok(b) => self.risk.set_balance(Venue::Polymarket, b),
            Err(e) => tracing::warn!(error = %e, "replay: Polymarket balance unavailable"),
        }
    }

    /// What the plugin traded, from the lane's trade store.
    pub async fn result(&self) -> anyhow::Result<Backtest> {
        let store = &self.executor.store;
        let mut records = store
            .repo
            .trades(u32::MAX)
            .await
            .context("reading the backtest's trades")?;
        // Trade ids grow with time: oldest first.
        records.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
        let totals = store
            .repo
            .totals(&store.host)
            .await
            .context("reading the backtest's totals")?;
        let (refusals, _) = self.risk.counts();
        let mut fees: BTreeMap<String, Usd> = Venue::ALL
            .iter()
            .map(|v| (v.to_string(), Usd::ZERO))
            .collect();
        let (mut locked_in, mut realised) = (Usd::ZERO, Usd::ZERO);
        let mut hedged = Size::ZERO;
        for r in &records {
            for f in [&r.yes_fill, &r.no_fill, &r.unwind_fill]
                .into_iter()
                .flatten()
            {
                let paid = fees.entry(f.venue.to_string()).or_default();
                *paid = *paid + f.fee;
            }
            // An unwound trade may still hold part of both legs.
            if let (Some(y), Some(n)) = (&r.yes_fill, &r.no_fill) {
                hedged = hedged + y.size.min(n.size);
            }
            match r.outcome {
                crate::execution::TradeOutcome::Hedged => locked_in = locked_in + r.pnl,
                crate::execution::TradeOutcome::Unwound => realised = realised + r.pnl,
                _ => {}
            }
        }
        let mut fills: BTreeMap<String, u64> =
            Venue::ALL.iter().map(|v| (v.to_string(), 0)).collect();
        fills.extend(totals.fills);
        Ok(Backtest {
            approved: self.approved,
            refused: refusals
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            trades: totals.trades,
            fills,
            fees,
            fees_total: totals.fees,
            contracts_hedged: hedged,
            locked_in_pnl: locked_in,
            realised_pnl: realised,
            pnl: totals.pnl,
            trades_listed: records.iter().take(TRADES_LISTED).map(trade_line).collect(),
        })
    }

    pub fn shutdown(&self) {
        self.strategy.shutdown();
    }
}

fn trade_line(r: &TradeRecord) -> TradeLine {
    let fill = |f: &Option<crate::domain::Fill>| {
        f.as_ref().map(|f| FillLine {
            venue: f.venue,
            outcome: f.outcome,
            action: f.action,
            price: f.price,
            size: f.size,
            fee: f.fee,
        })
    };
    let reason = match &r.outcome {
        crate::execution::TradeOutcome::NotFilled(why)
        | crate::execution::TradeOutcome::Refused(why) => Some(why.clone()),
        _ => None,
    };
    TradeLine {
        pair: r.opportunity.pair.to_string(),
        outcome: r.outcome.kind().to_string(),
        reason,
        planned_size: r.opportunity.size,
        planned_yes_price: r.opportunity.yes_price,
        planned_no_price: r.opportunity.no_price,
        yes: fill(&r.yes_fill),
        no: fill(&r.no_fill),
        unwind: fill(&r.unwind_fill),
        pnl: r.pnl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    /// A Polymarket YES ask at 0.40 and a Kalshi NO bid at 0.55.
    fn recorded(ask: u64, bid: u64) -> VenueBooks {
        let mut b = VenueBooks::default();
        b.poly_yes.set_level(Side::Ask, p("0.40"), Size::whole(ask));
        b.poly_yes.set_level(Side::Ask, p("0.41"), Size::whole(100));
        b.kalshi_no
            .set_level(Side::Bid, p("0.55"), Size::whole(bid));
        b
    }

    #[test]
    fn liquidity_a_fill_took_stays_taken_until_the_recording_changes_the_level() {
        let mut taken = Taken::default();
        let rec = recorded(50, 80);
        let before = taken.apply(&rec);
        assert_eq!(before, rec, "nothing taken yet");
        // A trade takes 30 at the ask and all 80 of the bid.
        let mut after = before.clone();
        after
            .poly_yes
            .set_level(Side::Ask, p("0.40"), Size::whole(20));
        after.kalshi_no.set_level(Side::Bid, p("0.55"), Size::ZERO);
        taken.note(&rec, &before, &after);

        // The next message leaves both levels as recorded: still taken.
        let next = taken.apply(&rec);
        assert_eq!(level(&next.poly_yes, Side::Ask, p("0.40")), Size::whole(20));
        assert_eq!(level(&next.kalshi_no, Side::Bid, p("0.55")), Size::ZERO);
        assert_eq!(
            level(&next.poly_yes, Side::Ask, p("0.41")),
            Size::whole(100)
        );

        // A second trade takes 5 more of the ask: 35 taken of the recorded 50.
        let mut again = next.clone();
        again
            .poly_yes
            .set_level(Side::Ask, p("0.40"), Size::whole(15));
        taken.note(&rec, &next, &again);
        let next = taken.apply(&rec);
        assert_eq!(level(&next.poly_yes, Side::Ask, p("0.40")), Size::whole(15));

        // The venue reports a new size for the ask: that is where it stands.
        let moved = recorded(70, 80);
        let next = taken.apply(&moved);
        assert_eq!(level(&next.poly_yes, Side::Ask, p("0.40")), Size::whole(70));
        assert_eq!(level(&next.kalshi_no, Side::Bid, p("0.55")), Size::ZERO);
        assert_eq!(taken.0.len(), 1, "the changed level is forgotten");
    }
}
