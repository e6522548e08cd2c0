//! The executor: turns an approved opportunity into two filled legs, safely.
//!
//! Both legs get the same number of contracts (never equal dollars) on both
//! venues' grids, fill-or-kill, with client order ids derived from the trade id
//! so a retry can never double an order. Before anything is sent, the cash for
//! both legs (price × size + worst-case fee) is checked against fresh balances:
//! a shortfall refuses the trade, which is how bots like this usually end up
//! one-legged. When one leg fills and the other does not, the missing leg is
//! retried within a price tolerance; if it still fails, the filled leg is
//! unwound at the best bid and the realised loss is recorded (leg risk).
//! In dry run everything up to the order request runs and the would-be trade
//! is recorded; no order leaves the host.
//!
//! Everything is booked in the trade store: the intent and its planned orders
//! are written before the first order leaves (to the intent journal, with the
//! store write beside the orders; or to a store that can refuse the trade),
//! every order's fate and fill as it comes back, the
//! outcome and P&L at the end. Trades a crash left open are settled from the
//! venues at start-up by [`Executor::reconcile`].
//!
//! A Polymarket leg counts what its `CONFIRMED` trades matched: a trade that
//! `FAILED` on-chain leaves the leg short by its size, retried or unwound like
//! any partial fill. The kill switch ([`Executor::cancel_orders_on_kill`])
//! cancels every order resting on either venue and reports what it did.

mod fill_watch;
mod record;
mod settlement;

pub use fill_watch::FillWatch;
pub use settlement::{FailedTrade, Settled, SettlementWatch};

pub use record::{Position, TradeOutcome, TradeRecord};

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::books::{BookStore, PairEntry};
use crate::bus::{Bus, TradeEvent};
use crate::domain::events::{ExecuteTrade, LegFailed, TradeExecuted};
use crate::domain::{
    Action, Fill, Leg, LegStatus, Order, Outcome, Price, Size, TimeInForce, TokenId, Trade,
    UnixMicros, Usd, Venue,
};
use crate::risk::RiskHandle;
use crate::store::journal::IntentJournal;
use crate::store::lease::PairLeases;
use crate::store::{OrderStatus, TradeIntent, TradeStore};
use crate::strategy::now_micros;
use crate::venues::kalshi::rest::KalshiRest;
use crate::venues::polymarket::TickSize;
use crate::venues::polymarket::orders::max_marketable_buy_size;
use crate::venues::polymarket::rest::{PolymarketRest, SignedOrder};

/// How the two legs go out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegMode {
    /// Both at once: the fastest, and the usual choice when both books are deep.
    #[default]
    Concurrent,
    /// The less liquid leg first; the other only once it filled, for what it filled.
    Sequential,
}

impl std::str::FromStr for LegMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "concurrent" => Ok(LegMode::Concurrent),
            "sequential" => Ok(LegMode::Sequential),
            other => Err(format!("'{other}' is not concurrent or sequential")),
        }
    }
}

/// How the executor handles leg risk.
#[derive(Debug, Clone)]
pub struct ExecutionPolicy {
    pub dry_run: bool,
    pub leg_mode: LegMode,
    /// How each leg is sent: fill-or-kill (default: all or nothing) or
    /// immediate-or-cancel (what the book has now; the legs may then differ
    /// and the difference is retried or unwound).
    pub leg_order: TimeInForce,
    /// How far past its planned price the missing leg may be retried.
    pub retry_tolerance: Decimal,
    pub retry_attempts: u32,
    pub retry_window: Duration,
    /// How long a Kalshi order whose answer was lost waits for its fill on the `fill` channel.
    pub answer_grace: Duration,
    /// A balance read this recently counts as fresh for the pre-trade cash
    /// check (the refresh task keeps it so; our own trades invalidate it), so
    /// the check costs no request on the order path.
    pub balance_max_age: Duration,
    /// How long a matched Polymarket leg waits for its trades to be `CONFIRMED`
    /// (or `FAILED`) on the user channel before the venue is asked.
    pub confirm_within: Duration,
}

impl Default for ExecutionPolicy {
    fn default() -> Self {
        ExecutionPolicy {
            dry_run: true,
            leg_mode: LegMode::Concurrent,
            leg_order: TimeInForce::FillOrKill,
            retry_tolerance: Decimal::new(1, 2),
            retry_attempts: 2,
            retry_window: Duration::from_millis(500),
            answer_grace: Duration::from_secs(2),
            confirm_within: Duration::from_secs(20),
            balance_max_age: Duration::from_secs(2),
        }
    }
}

/// The venues' order endpoints.
pub struct VenueClients {
    pub kalshi: KalshiRest,
    pub polymarket: PolymarketRest,
}

/// The order path's stages, each timed on every trade that sends orders.
#[derive(Default)]
pub struct OrderPathStages {
    /// The plugin's decision → the executor starts on it (risk gate, hand-over).
    pub to_executor: crate::strategy::stats::Histogram,
    /// Lease, grid and cash checks.
    pub checks: crate::strategy::stats::Histogram,
    /// Writing the trade intent and its planned orders.
    pub intent: crate::strategy::stats::Histogram,
    /// Sending a journalled trade's orders, step by step: the Kalshi
    /// request written to its order line (the first poll of its send), the
    /// Polymarket leg's EIP-712 signature, the Polymarket request written;
    /// and the whole, from the decision.
    pub kalshi_handed_over: crate::strategy::stats::Histogram,
    pub polymarket_signed: crate::strategy::stats::Histogram,
    pub polymarket_handed_over: crate::strategy::stats::Histogram,
    pub hand_over: crate::strategy::stats::Histogram,
    /// (opportunity found at, both orders handed over at) of the first
    /// [`HANDOVERS_KEPT`] trades, for `doubletime bench` to time from the tick.
    handovers: std::sync::Mutex<Vec<(UnixMicros, UnixMicros)>>,
}

const HANDOVERS_KEPT: usize = 10_000;

impl OrderPathStages {
    fn handed_over(&self, found_at: UnixMicros, at: UnixMicros) {
        self.hand_over
            .record_ns(at.saturating_sub(found_at).saturating_mul(1_000));
        let mut kept = self.handovers.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < HANDOVERS_KEPT {
            kept.push((found_at, at));
        }
    }

    /// (opportunity found at, both orders handed over at) per trade so far.
    pub fn handovers(&self) -> Vec<(UnixMicros, UnixMicros)> {
        self.handovers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Each stage, named for a report, in order along the path.
    pub fn summaries(&self) -> Vec<(&'static str, crate::strategy::stats::LatencySummary)> {
        vec![
            (
                "decision → executor starts (risk gate, hand-over)",
                self.to_executor.summary(),
            ),
            (
                "executor's checks (lease, grid, cash)",
                self.checks.summary(),
            ),
            (
                "trade intent written (journalled, or stored when the orders wait for the store)",
                self.intent.summary(),
            ),
            (
                "Kalshi request written (first poll of its send)",
                self.kalshi_handed_over.summary(),
            ),
            (
                "Polymarket leg signed (EIP-712)",
                self.polymarket_signed.summary(),
            ),
            (
                "Polymarket request written (first poll of its send)",
                self.polymarket_handed_over.summary(),
            ),
            ("decision → both orders written", self.hand_over.summary()),
        ]
    }
}

/// A venue's cash as last read, less what our orders sent since may spend.
#[derive(Debug, Clone, Copy)]
struct CachedBalance {
    cash: Usd,
    read_at: tokio::time::Instant,
    /// Buys debited so far, and those not yet answered.
    debits: u64,
    in_flight: u32,
}

pub struct Executor {
    clients: Arc<VenueClients>,
    books: Arc<BookStore>,
    bus: Arc<Bus>,
    risk: RiskHandle,
    policy: ExecutionPolicy,
    pub store: TradeStore,
    /// Writes the store could not make after an order went out (logged, counted).
    store_errors: std::sync::atomic::AtomicU64,
    /// Where the order path spends its time (`doubletime bench` reports them).
    pub stages: OrderPathStages,
    /// Set when several hosts share the store: only leased markets are traded.
    leases: std::sync::OnceLock<Arc<PairLeases>>,
    /// Set when intents are journalled: the orders leave once the intent is
    /// in the journal, and the store write runs beside them.
    journal: std::sync::OnceLock<Arc<IntentJournal>>,
    /// A journalled intent the store refused: until the store takes one
    /// again, each trade waits for its store write before sending.
    store_behind: std::sync::atomic::AtomicBool,
    /// The last balance read per venue, and when.
    balances: std::sync::Mutex<std::collections::HashMap<Venue, CachedBalance>>,
    /// Polymarket trade statuses from the user channel.
    settlement: std::sync::OnceLock<Arc<SettlementWatch>>,
    /// Kalshi fills from the private channel, for orders whose answer was lost.
    fill_watch: std::sync::OnceLock<Arc<FillWatch>>,
    /// Markets with a trade reconciliation could not settle: not traded.
    held_back: std::sync::Mutex<std::collections::HashSet<crate::domain::PairId>>,
    /// Kill switches cancel one at a time.
    killing: tokio::sync::Mutex<()>,
    kill_report: tokio::sync::watch::Sender<Option<KillReport>>,
}

/// How often reconciliation asks Polymarket again about trades not yet final.
const RECONCILE_POLL: Duration = Duration::from_millis(250);

/// Rounds of cancel-and-check a kill makes per venue before it reports what is left.
const KILL_ROUNDS: u32 = 3;
const KILL_BACKOFF: Duration = Duration::from_millis(250);
/// Polymarket balance requests in flight at once in the position check.
const POSITION_CHECK_REQUESTS: usize = 8;
/// Kalshi cancels per batch: 20 × 2 tokens fits the Basic write bucket (§1.7).
const KALSHI_CANCEL_BATCH: usize = 20;

/// What one kill switch's cancel did on one venue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct VenueCancels {
    /// Cancels the venue accepted.
    pub cancelled: usize,
    /// Orders still resting when the kill gave up (venue order ids).
    pub still_resting: Vec<String>,
    /// Why the venue could not be asked, if it could not in the end.
    pub error: Option<String>,
}

impl VenueCancels {
    /// Nothing left resting, as far as the venue says.
    pub fn is_clean(&self) -> bool {
        self.error.is_none() && self.still_resting.is_empty()
    }
}

/// What the kill switch's cancel did on both venues.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct KillReport {
    pub kalshi: VenueCancels,
    pub polymarket: VenueCancels,
}

impl KillReport {
    pub fn cancelled(&self) -> usize {
        self.kalshi.cancelled + self.polymarket.cancelled
    }
    pub fn is_clean(&self) -> bool {
        self.kalshi.is_clean() && self.polymarket.is_clean()
    }
}

/// A holding the store and a venue disagree on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PositionMismatch {
    pub pair: crate::domain::PairId,
    pub venue: Venue,
    /// `None` on Kalshi, which nets YES (+) against NO (−).
    pub outcome: Option<Outcome>,
    pub booked: rust_decimal::Decimal,
    pub at_venue: rust_decimal::Decimal,
}

/// What start-up reconciliation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Open trades settled from the venues' answers.
    pub settled: usize,
    /// Open trades left open (their markets held back).
    pub unresolved: usize,
}

/// What one leg did.
#[derive(Debug, Clone)]
struct LegResult {
    order: Order,
    venue_order_id: Option<String>,
    /// Everything the leg filled, at its average price (for the store and the logs).
    fill: Option<Fill>,
    /// The fills it is made of (the order, its retries): their exact cost is
    /// the leg's, where the average price would round.
    parts: Vec<Fill>,
    error: Option<String>,
}

impl LegResult {
    fn added(&mut self, f: Fill) {
        self.parts.push(f.clone());
        self.fill = Some(merge(self.fill.take(), f));
    }

    /// What the leg's fills cost, fees included, exactly.
    fn cost(&self) -> Usd {
        self.parts.iter().map(|f| f.price * f.size + f.fee).sum()
    }
}

impl Executor {
    /// The venues' order clients.
    pub fn clients(&self) -> &VenueClients {
        &self.clients
    }

    /// An executor booking into `store` (the host's, so the API sees it).
    pub fn new(
        clients: Arc<VenueClients>,
        books: Arc<BookStore>,
        bus: Arc<Bus>,
        risk: RiskHandle,
        policy: ExecutionPolicy,
        store: TradeStore,
    ) -> Arc<Self> {
        Arc::new(Executor {
            clients,
            books,
            bus,
            risk,
            policy,
            store,
            store_errors: Default::default(),
            stages: Default::default(),
            leases: Default::default(),
            journal: Default::default(),
            store_behind: Default::default(),
            held_back: Default::default(),
            fill_watch: Default::default(),
            settlement: Default::default(),
            balances: Default::default(),
            killing: Default::default(),
            kill_report: tokio::sync::watch::channel(None).0,
        })
    }

    /// Settles the trades a previous run left open (it died between writing
    /// an intent and booking the outcome). Orders without an answer are asked
    /// of the venue; then the trade is settled from its fills exactly as a
    /// live one: equal legs are hedged, an excess leg is unwound, nothing is
    /// not-filled. A trade the venues cannot account for yet stays open, and
    /// its market is held back from trading until it is settled.
    pub async fn reconcile(&self) -> Reconciled {
        let mut done = Reconciled::default();
        let open = match self.store.repo.open_trades(&self.store.host).await {
            Ok(open) => open,
            Err(e) => {
                tracing::error!(error = %e, "reconciliation: could not read open trades");
                return done;
            }
        };
        for t in open {
            let pair = t.opportunity.pair.clone();
            let mut fills = t.fills.clone();
            let mut unknown = Vec::new();
            for o in t.orders.iter().filter(|o| o.status.unresolved()) {
                match self.venue_fill(o, t.created_at).await {
                    Ok(fill) => {
                        let status = match &fill {
                            Some(f) if f.size == o.order.size => OrderStatus::Filled,
                            Some(_) => OrderStatus::PartiallyFilled,
                            None => OrderStatus::Rejected,
                        };
                        let why = fill
                            .is_none()
                            .then_some("the venue has no fill for it (reconciled)");
                        let r = self
                            .store
                            .repo
                            .update_order(&o.order.client_order_id, status, None, why, now_micros())
                            .await;
                        self.booked("a reconciled order", r);
                        if let Some(f) = fill {
                            let r = self
                                .store
                                .repo
                                .record_fill(&self.store.host, &t.trade_id, &f)
                                .await;
                            if self.booked("a reconciled fill", r) == Some(true) {
                                fills.push(f);
                            }
                        }
                    }
                    Err(e) => unknown.push(format!("{}: {e}", o.order.client_order_id)),
                }
            }
            if !unknown.is_empty() {
                tracing::error!(trade = %t.trade_id, %pair, ?unknown, "reconciliation: orders the venues cannot account for; the market is held back until they are settled");
                self.held_back
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(pair);
                done.unresolved += 1;
                continue;
            }
            self.settle_reconciled(&t, fills).await;
            done.settled += 1;
        }
        done
    }

    /// Compares what the store says this host holds with what the venues
    /// say, per market, venue and outcome; returns the disagreements (logged).
    /// The venue is the truth: a difference means a fill was missed or the
    /// account is also traded by hand, and a person should look.
    pub async fn check_positions(&self) -> Vec<PositionMismatch> {
        let booked = match self.store.repo.positions(&self.store.host).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "position check: could not read the store");
                return vec![];
            }
        };
        let held = |pair: &crate::domain::PairId, venue, outcome| {
            booked
                .iter()
                .find(|p| p.pair == *pair && p.venue == venue && p.outcome == outcome)
                .map_or(rust_decimal::Decimal::ZERO, |p| p.contracts)
        };
        let entries = self.books.all();
        // Polymarket answers one token per request: asked a few at a time
        // (start-up waits for this), while Kalshi lists every position at once.
        let tokens: Vec<&crate::domain::TokenId> = entries
            .iter()
            .flat_map(|e| [&e.pair.polymarket_yes_token, &e.pair.polymarket_no_token])
            .collect();
        let balances = {
            use futures_util::StreamExt;
            futures_util::stream::iter(tokens)
                .map(|t| self.clients.polymarket.token_balance(t))
                .buffered(POSITION_CHECK_REQUESTS)
                .collect::<Vec<_>>()
        };
        let (kalshi, balances) = tokio::join!(self.clients.kalshi.positions(), balances);
        let kalshi = kalshi
            .map_err(|e| tracing::warn!(error = %e, "position check: Kalshi positions unavailable"))
            .ok();
        let mut balances = balances.into_iter();
        let mut mismatches = Vec::new();
        for entry in entries {
            let pair = &entry.pair;
            if let Some(kalshi) = &kalshi {
                // Kalshi nets YES against NO: + YES, − NO contracts.
                let venue = kalshi
                    .iter()
                    .find(|p| p.ticker == pair.kalshi_ticker)
                    .map_or(rust_decimal::Decimal::ZERO, |p| p.position);
                let ours = held(&pair.id, Venue::Kalshi, Outcome::Yes)
                    - held(&pair.id, Venue::Kalshi, Outcome::No);
                if venue != ours {
                    mismatches.push(PositionMismatch {
                        pair: pair.id.clone(),
                        venue: Venue::Kalshi,
                        outcome: None,
                        booked: ours,
                        at_venue: venue,
                    });
                }
            }
            for outcome in [Outcome::Yes, Outcome::No] {
                let Some(balance) = balances.next() else {
                    break;
                };
                match balance {
                    Ok(size) => {
                        let ours = held(&pair.id, Venue::Polymarket, outcome);
                        if size.value() != ours {
                            mismatches.push(PositionMismatch {
                                pair: pair.id.clone(),
                                venue: Venue::Polymarket,
                                outcome: Some(outcome),
                                booked: ours,
                                at_venue: size.value(),
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pair = %pair.id, error = %e, "position check: Polymarket balance unavailable")
                    }
                }
            }
        }
        for m in &mismatches {
            tracing::warn!(pair = %m.pair, venue = %m.venue, outcome = ?m.outcome, booked = %m.booked, at_venue = %m.at_venue, "position check: the store and the venue disagree");
        }
        mismatches
    }

    /// What a venue filled for an order whose answer was never booked, found
    /// by the venue's order id when we have it, else by our client order id
    /// (Kalshi) or by our trades on the token since the intent (Polymarket:
    /// with one trade in flight per market and the market leased to this
    /// host, every trade of ours there after the intent is this trade's).
    async fn venue_fill(
        &self,
        o: &crate::store::StoredOrder,
        since: crate::domain::UnixMicros,
    ) -> Result<Option<Fill>, String> {
        let entry = self
            .books
            .get(&o.order.pair)
            .ok_or_else(|| format!("market {} is no longer configured", o.order.pair))?;
        let since_s = (since / 1_000_000).saturating_sub(60);
        let base = |price: Price, size: Size, fee: Usd| Fill {
            client_order_id: o.order.client_order_id.clone(),
            venue: o.order.venue,
            outcome: o.order.outcome,
            action: o.order.action,
            price,
            size,
            fee,
            at: now_micros(),
        };
        match o.order.venue {
            Venue::Kalshi => {
                let kalshi = &self.clients.kalshi;
                let order_id = match &o.venue_order_id {
                    Some(id) => id.clone(),
                    None => {
                        let q = crate::venues::kalshi::rest::OrderQuery {
                            ticker: Some(entry.pair.kalshi_ticker.clone()),
                            min_ts: Some(since_s),
                            ..Default::default()
                        };
                        match kalshi
                            .order_by_client_order_id(&o.order.client_order_id, &q)
                            .await
                            .map_err(|e| e.to_string())?
                        {
                            Some(found) => found.order_id,
                            // Never reached the venue (a killed FOK is no order either).
                            None => return Ok(None),
                        }
                    }
                };
                let mut total: Option<Fill> = None;
                for f in kalshi.fills(&order_id).await.map_err(|e| e.to_string())? {
                    let price = match o.order.outcome {
                        Outcome::Yes => f.yes_price,
                        Outcome::No => f.yes_price.complement(),
                    };
                    total = Some(merge(total, base(price, f.count, f.fee)));
                }
                Ok(total)
            }
            Venue::Polymarket => {
                let token = match o.order.outcome {
                    Outcome::Yes => &entry.pair.polymarket_yes_token,
                    Outcome::No => &entry.pair.polymarket_no_token,
                };
                let q = crate::venues::polymarket::rest::TradeQuery {
                    asset_id: Some(token.to_string()),
                    after: Some(since_s),
                    ..Default::default()
                };
                let is_ours = |t: &crate::venues::polymarket::PolyTrade| {
                    t.side == o.order.action
                        && o.venue_order_id.as_deref().is_none_or(|id| t.involves(id))
                };
                // As a live leg waits for its trades to be final, so does a
                // reconciled one: a trade still on its way may yet FAIL.
                let deadline = tokio::time::Instant::now() + self.policy.confirm_within;
                let trades = loop {
                    let trades = self
                        .clients
                        .polymarket
                        .trades(&q)
                        .await
                        .map_err(|e| e.to_string())?;
                    let unsettled = trades
                        .iter()
                        .filter(|t| is_ours(t) && !t.is_final())
                        .count();
                    if unsettled == 0 {
                        break trades;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(order = %o.order.client_order_id, unsettled, "reconciliation: polymarket trades not final in time; their match stands");
                        break trades;
                    }
                    tokio::time::sleep(RECONCILE_POLL).await;
                };
                let ours = trades.iter().filter(|t| {
                    t.status != crate::venues::polymarket::TradeStatus::Failed && is_ours(t)
                });
                let mut total: Option<Fill> = None;
                for t in ours {
                    let fee = entry.fees.polymarket.taker_fee(t.price, t.size);
                    total = Some(merge(total, base(t.price, t.size, fee)));
                }
                Ok(total)
            }
        }
    }

    /// Books the outcome of a reconciled trade from its fills, unwinding an excess leg.
    async fn settle_reconciled(&self, t: &crate::store::OpenTrade, fills: Vec<Fill>) {
        let o = &t.opportunity;
        let cmd = ExecuteTrade {
            trade_id: t.trade_id.clone(),
            opportunity: o.clone(),
        };
        let leg_of = |venue: Venue, outcome: Outcome| -> LegResult {
            let order = t
                .orders
                .iter()
                .map(|s| &s.order)
                .find(|x| x.venue == venue && x.outcome == outcome && x.action == Action::Buy)
                .cloned()
                .unwrap_or_else(|| Order {
                    client_order_id: format!("{}-{}", t.trade_id, outcome),
                    venue,
                    pair: o.pair.clone(),
                    outcome,
                    action: Action::Buy,
                    limit: if outcome == Outcome::Yes {
                        o.yes_price
                    } else {
                        o.no_price
                    },
                    size: o.size,
                    time_in_force: TimeInForce::FillOrKill,
                });
            let mut leg = LegResult {
                order,
                venue_order_id: None,
                fill: None,
                parts: vec![],
                error: None,
            };
            for f in fills
                .iter()
                .filter(|f| f.venue == venue && f.outcome == outcome && f.action == Action::Buy)
            {
                leg.added(f.clone());
            }
            leg
        };
        let y = leg_of(o.buy_yes_on, Outcome::Yes);
        let n = leg_of(o.buy_no_on, Outcome::No);
        tracing::warn!(trade = %t.trade_id, pair = %o.pair, yes = %Self::filled(&y), no = %Self::filled(&n), "reconciliation: settling a trade a previous run left open");
        match self.books.get(&o.pair) {
            Some(entry) => self.settle(&entry, &cmd, y, n).await,
            None => {
                let why = "its market is no longer configured".to_string();
                self.finish(
                    &cmd,
                    TradeOutcome::NotFilled(why),
                    Usd::ZERO,
                    false,
                    Some((y, n)),
                    None,
                )
                .await
            }
        }
    }

    /// Reads the Kalshi fill channel through `watch` when an order's answer is lost; set once.
    pub fn watch_kalshi_fills(&self, watch: Arc<FillWatch>) {
        let _ = self.fill_watch.set(watch);
    }

    /// Follows Polymarket trade settlement through `watch`: a matched leg counts
    /// what its `CONFIRMED` trades matched; a `FAILED` trade's quantity is
    /// unfilled. Set once.
    pub fn watch_polymarket_settlement(&self, watch: Arc<SettlementWatch>) {
        let _ = self.settlement.set(watch);
    }

    /// Waits for a matched Polymarket leg's trades to settle; returns the ones
    /// that `FAILED`. A trade with no final word in time is asked of the
    /// venue; still pending, its match stands.
    async fn failed_trades(&self, trade_ids: &[String]) -> Vec<FailedTrade> {
        let Some(watch) = self.settlement.get() else {
            return vec![];
        };
        let (mut failed, pending) = match watch.wait(trade_ids, self.policy.confirm_within).await {
            Settled::Final { failed } => return failed,
            Settled::Pending { failed, pending } => (failed, pending),
        };
        // The channel may have dropped: ask the venue for each trade.
        for id in &pending {
            let q = crate::venues::polymarket::rest::TradeQuery {
                id: Some(id.clone()),
                ..Default::default()
            };
            match self.clients.polymarket.trades(&q).await {
                Ok(found) => {
                    if let Some(t) = found.iter().find(|t| {
                        t.trade_id == *id
                            && t.status == crate::venues::polymarket::TradeStatus::Failed
                    }) {
                        failed.push(FailedTrade {
                            trade_id: id.clone(),
                            price: Some(t.price),
                            size: Some(t.size),
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(trade = %id, error = %e, "could not ask Polymarket how a trade settled")
                }
            }
        }
        tracing::warn!(trades = ?pending, "polymarket trades not confirmed in time; their match stands");
        failed
    }

    /// Trades only the markets `leases` holds (a shared store); set once, before trading.
    pub fn trade_only_leased(&self, leases: Arc<PairLeases>) {
        let _ = self.leases.set(leases);
    }

    /// Journals every intent in `journal` before its orders leave, and
    /// writes the store beside them; set once, before trading, after
    /// [`IntentJournal::replay`].
    pub fn journal_intents(&self, journal: Arc<IntentJournal>) {
        let _ = self.journal.set(journal);
    }

    /// Makes the risk gate's kill switch cancel every resting order of the
    /// account on both venues (see [`Executor::cancel_open_orders`]); the
    /// work runs on the current runtime, the switch itself returns at once.
    pub fn cancel_orders_on_kill(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let runtime = tokio::runtime::Handle::current();
        self.risk.on_kill_cancel_open_orders(move || {
            let Some(me) = me.upgrade() else { return };
            runtime.spawn(async move {
                me.cancel_open_orders().await;
            });
        });
    }

    /// What each kill switch's cancel did, latest first (`None` before the first).
    pub fn kill_reports(&self) -> tokio::sync::watch::Receiver<Option<KillReport>> {
        self.kill_report.subscribe()
    }

    /// Cancels every order of the account resting on either venue — ours,
    /// a crash's, a hand-placed one alike — and checks that none is left:
    /// Kalshi's resting orders are listed and cancelled in batches,
    /// Polymarket's with `DELETE /cancel-all` then by id. A venue that fails
    /// is asked again briefly; what could not be done is in the report (and
    /// logged), never a panic. Kills run one at a time.
    pub async fn cancel_open_orders(&self) -> KillReport {
        let _one_at_a_time = self.killing.lock().await;
        let (kalshi, polymarket) = tokio::join!(
            self.cancel_resting_kalshi(),
            self.cancel_resting_polymarket()
        );
        let report = KillReport { kalshi, polymarket };
        for (venue, r) in [
            (Venue::Kalshi, &report.kalshi),
            (Venue::Polymarket, &report.polymarket),
        ] {
            if r.is_clean() {
                tracing::warn!(%venue, cancelled = r.cancelled, "kill switch: every resting order cancelled");
            } else {
                tracing::error!(%venue, cancelled = r.cancelled, still_resting = ?r.still_resting, error = r.error.as_deref().unwrap_or(""), "kill switch: orders may still rest on the venue; cancel them by hand");
            }
        }
        self.kill_report.send_replace(Some(report.clone()));
        report
    }

    async fn cancel_resting_kalshi(&self) -> VenueCancels {
        let kalshi = &self.clients.kalshi;
        let mut done = VenueCancels::default();
        // The last round only checks what the one before it did.
        for round in 0..=KILL_ROUNDS {
            if round > 0 {
                tokio::time::sleep(KILL_BACKOFF * round).await;
            }
            let resting = match kalshi.resting_orders().await {
                Ok(r) => r,
                Err(e) => {
                    done.error = Some(format!("listing resting orders: {e}"));
                    continue;
                }
            };
            done.error = None;
            done.still_resting = resting.into_iter().map(|o| o.order_id).collect();
            if done.still_resting.is_empty() || round == KILL_ROUNDS {
                break;
            }
            for batch in done.still_resting.chunks(KALSHI_CANCEL_BATCH) {
                match kalshi.cancel_batch(batch).await {
                    Ok(answers) => {
                        for a in answers {
                            match a.error {
                                None => done.cancelled += 1,
                                Some(e) => {
                                    tracing::warn!(order = %a.order_id, error = %e, "kill: Kalshi refused a cancel")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        // The batch endpoint refused: one cancel per order instead.
                        tracing::warn!(error = %e, "kill: Kalshi batch cancel failed; cancelling one by one");
                        for id in batch {
                            match kalshi.cancel(id).await {
                                Ok(_) => done.cancelled += 1,
                                Err(e) => {
                                    tracing::warn!(order = %id, error = %e, "kill: Kalshi cancel failed")
                                }
                            }
                        }
                    }
                }
            }
        }
        done
    }

    async fn cancel_resting_polymarket(&self) -> VenueCancels {
        let poly = &self.clients.polymarket;
        let mut done = VenueCancels::default();
        for round in 0..=KILL_ROUNDS {
            if round > 0 {
                tokio::time::sleep(KILL_BACKOFF * round).await;
            }
            // First everything at once; later rounds by id, for what is left.
            let cancelled = if round == 0 {
                Some(poly.cancel_all().await)
            } else if !done.still_resting.is_empty() && round < KILL_ROUNDS {
                Some(poly.cancel_orders(&done.still_resting).await)
            } else {
                None
            };
            match cancelled {
                Some(Ok(r)) => {
                    done.cancelled += r.canceled.len();
                    for (id, why) in &r.not_canceled {
                        tracing::warn!(order = %id, reason = %why, "kill: Polymarket did not cancel an order");
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kill: Polymarket cancel failed")
                }
                None => {}
            }
            match poly.open_orders().await {
                Ok(open) => {
                    done.error = None;
                    done.still_resting = open.into_iter().map(|o| o.id).collect();
                    if done.still_resting.is_empty() {
                        break;
                    }
                }
                Err(e) => done.error = Some(format!("listing open orders: {e}")),
            }
        }
        done
    }

    /// Store writes that failed after an order had gone out.
    pub fn store_errors(&self) -> u64 {
        self.store_errors.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Logs and counts a write the store refused once orders are out: the
    /// trade goes on (the venues hold the truth; reconciliation reads it back).
    fn booked<T>(&self, what: &str, r: crate::store::StoreResult<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.store_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "trade store: could not book {what}");
                None
            }
        }
    }

    /// Executes every trade the risk gate approves from now on, each in a
    /// task of its own, until the returned task is aborted. The gate starts
    /// the trade's task itself ([`RiskHandle::execute_approvals_with`]): no
    /// consumer task of `bus.executions` to wake in between.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let registration = self.risk.execute_approvals_with(move |cmd| {
            // One trade per market at a time is the risk gate's rule; markets run in parallel.
            let me = me.clone();
            // Boxed: the trade's future is about 19 KB, and spawned as is it
            // is copied into the task as well; the spawn took 14 µs p50 on
            // loopback (probes), 10 µs boxed.
            runtime.spawn(Box::pin(async move { me.execute(cmd).await }));
            // This runs on the thread that decided. A strategy thread of its
            // own may share a core with the worker just woken: let the trade
            // go first, its log line and the rest of the evaluation can wait.
            // A feed's task (plugins evaluated inline) is a worker of this
            // runtime: the trade is queued behind it and runs when it yields.
            if tokio::runtime::Handle::try_current().is_err() {
                std::thread::yield_now();
            } else {
                TRADE_QUEUED.set(true);
            }
        });
        tokio::spawn(async move {
            // Aborting this task drops the registration: no trade starts after.
            let _registration = registration;
            std::future::pending::<()>().await
        })
    }

    /// Reads both venues' balances now and every `every`, for the risk gate
    /// (MINIMUM_WALLET_BALANCE to start, SHUTDOWN_BALANCE to stop).
    pub fn spawn_balance_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                for venue in Venue::ALL {
                    if let Err(e) = me.balance(venue).await {
                        tracing::warn!(%venue, error = %e, "balance refresh failed");
                    }
                }
            }
        })
    }

    /// Sizes both legs to the same contract count on both venues' grids.
    fn legs(&self, cmd: &ExecuteTrade) -> Option<(Order, Order)> {
        let o = &cmd.opportunity;
        // Kalshi counts in hundredths; a Polymarket FOK buy needs a cost with at
        // most 2 decimals (§2.6). Never round a buy's size up.
        let mut size = o.size.floor_to(Size::from_hundredths(1));
        let poly_price = if o.buy_yes_on == Venue::Polymarket {
            o.yes_price
        } else {
            o.no_price
        };
        size = Size::new(max_marketable_buy_size(poly_price.value(), size.value())).ok()?;
        if size.is_zero() {
            return None;
        }
        let order = |venue, outcome, limit: Price, suffix: &str| Order {
            client_order_id: format!("{}-{suffix}", cmd.trade_id),
            venue,
            pair: o.pair.clone(),
            outcome,
            action: Action::Buy,
            limit,
            size,
            time_in_force: self.policy.leg_order,
        };
        Some((
            order(o.buy_yes_on, Outcome::Yes, o.yes_price, "yes"),
            order(o.buy_no_on, Outcome::No, o.no_price, "no"),
        ))
    }

    async fn balance(&self, venue: Venue) -> Result<Usd, String> {
        let before = self.cached_balance(venue);
        let b = match venue {
            Venue::Kalshi => self
                .clients
                .kalshi
                .balance()
                .await
                .map_err(|e| e.to_string()),
            Venue::Polymarket => self
                .clients
                .polymarket
                .balance()
                .await
                .map_err(|e| e.to_string()),
        }?;
        self.risk.set_balance(venue, b);
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        let cached = balances.entry(venue).or_insert(CachedBalance {
            cash: b,
            read_at: tokio::time::Instant::now(),
            debits: 0,
            in_flight: 0,
        });
        // An order sent or unanswered while this read was made may be missing
        // from it: the debited figure stays until a read that no order overlapped.
        if before.is_none_or(|c| c.in_flight == 0 && c.debits == cached.debits) {
            cached.cash = b;
            cached.read_at = tokio::time::Instant::now();
        }
        Ok(b)
    }

    fn cached_balance(&self, venue: Venue) -> Option<CachedBalance> {
        self.balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&venue)
            .copied()
    }

    /// The venue's balance: the last one read if fresh enough (less what our
    /// orders may have spent since), else read now.
    async fn fresh_balance(&self, venue: Venue) -> Result<Usd, String> {
        match self.cached_balance(venue) {
            Some(c) if c.read_at.elapsed() <= self.policy.balance_max_age => Ok(c.cash),
            _ => self.balance(venue).await,
        }
    }

    /// A buy about to be sent: the most it can spend (limit × size + taker
    /// fee) comes off the cached cash, so the next trade's check needs no
    /// read on its order path and can never count this cash twice.
    fn debit(&self, entry: &PairEntry, order: &Order) {
        if order.action != Action::Buy {
            return;
        }
        let most =
            order.limit * order.size + entry.fees.taker_fee(order.venue, order.limit, order.size);
        if let Some(c) = self
            .balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&order.venue)
        {
            c.cash = c.cash - most;
            c.debits += 1;
            c.in_flight += 1;
        }
    }

    /// The venue answered an order [`Self::debit`] counted.
    fn answered(&self, order: &Order) {
        if order.action != Action::Buy {
            return;
        }
        if let Some(c) = self
            .balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&order.venue)
        {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }

    /// Sends one order and books what came back (its fate, then its fill).
    async fn place(&self, entry: &PairEntry, trade_id: &str, order: Order) -> LegResult {
        let leg = self.send(entry, order).await;
        self.book_leg(trade_id, &leg).await;
        leg
    }

    /// A Polymarket order's token and tick on this pair.
    fn polymarket_target<'e>(entry: &'e PairEntry, order: &Order) -> (&'e TokenId, TickSize) {
        let token = match order.outcome {
            Outcome::Yes => &entry.pair.polymarket_yes_token,
            Outcome::No => &entry.pair.polymarket_no_token,
        };
        let tick = TickSize::from_decimal(entry.polymarket_tick(order.outcome))
            .unwrap_or(TickSize::Hundredth);
        (token, tick)
    }

    /// A Polymarket order signed now, to be sent by [`Self::send_signed`];
    /// `None` for a Kalshi order (signed ahead of time by its client) or when
    /// signing fails (sending signs again and reports why).
    fn presign(&self, entry: &PairEntry, order: &Order) -> Option<SignedOrder> {
        if order.venue != Venue::Polymarket {
            return None;
        }
        let (token, tick) = Self::polymarket_target(entry, order);
        self.clients
            .polymarket
            .sign_order(order, token, tick, entry.pair.neg_risk)
            .ok()
    }

    /// Sends one order; nothing is booked (the caller books, off the order path).
    async fn send(&self, entry: &PairEntry, order: Order) -> LegResult {
        self.send_signed(entry, order, None).await
    }

    /// [`Self::send`] with the Polymarket order already signed, if it is.
    async fn send_signed(
        &self,
        entry: &PairEntry,
        order: Order,
        signed: Option<SignedOrder>,
    ) -> LegResult {
        self.debit(entry, &order);
        let at = now_micros();
        let outcome = match order.venue {
            Venue::Kalshi => match self
                .clients
                .kalshi
                .create_order(&order, &entry.pair.kalshi_ticker)
                .await
            {
                Ok(r) => Ok((Some(r.order_id.clone()), r.to_fill(&order, at))),
                Err(e) if answer_lost(&e) => match self.fill_watch.get() {
                    // The request went out and the answer did not come back: the
                    // fill channel tells whether it filled.
                    Some(watch) => match watch
                        .wait(&order.client_order_id, self.policy.answer_grace)
                        .await
                    {
                        Some((fill, order_id)) => {
                            tracing::warn!(order = %order.client_order_id, error = %e, "Kalshi answer lost; the fill channel reported the fill");
                            Ok((Some(order_id), Some(fill)))
                        }
                        None => Err(e.to_string()),
                    },
                    None => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            },
            Venue::Polymarket => {
                let posted = match signed {
                    Some(signed) => {
                        self.clients
                            .polymarket
                            .post_signed_order(&order, signed)
                            .await
                    }
                    None => {
                        let (token, tick) = Self::polymarket_target(entry, &order);
                        self.clients
                            .polymarket
                            .post_order(&order, token, tick, entry.pair.neg_risk)
                            .await
                    }
                };
                match posted {
                    Ok(r) => {
                        let fill = r.to_fill(&order, &entry.fees.polymarket, at);
                        // A match is final only once its trades are; FAILED
                        // ones are taken back and leave the leg short.
                        let failed = match &fill {
                            Some(_) => self.failed_trades(&r.trade_ids).await,
                            None => vec![],
                        };
                        match without_failed(fill, r.collateral, &failed, &entry.fees.polymarket) {
                            Ok(fill) => Ok((Some(r.order_id.clone()), fill)),
                            Err(why) => Err(why),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        self.answered(&order);
        match outcome {
            Ok((venue_order_id, fill)) => LegResult {
                order,
                venue_order_id: venue_order_id.filter(|id| !id.is_empty()),
                parts: fill.iter().cloned().collect(),
                fill,
                error: None,
            },
            Err(e) => LegResult {
                order,
                venue_order_id: None,
                fill: None,
                parts: vec![],
                error: Some(e),
            },
        }
    }

    /// A trade's intent could not be written: it ends here, no order sent.
    fn store_refused(&self, pair: &crate::domain::PairId) {
        self.store_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.risk.trade_finished(pair, Usd::ZERO, false);
    }

    /// The store took a trade's intent: trades need not wait for it.
    fn store_keeps_up(&self) {
        self.store_behind
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Books both legs' fates and fills and the approval, after both
    /// answers, so the store never delays the second leg.
    async fn book_legs(&self, trade_id: &str, y: &LegResult, n: &LegResult, intent: &TradeIntent) {
        tokio::join!(
            self.book_leg(trade_id, y),
            self.book_leg(trade_id, n),
            self.book_approval(intent)
        );
    }

    /// Books an order's fate and its fill.
    async fn book_leg(&self, trade_id: &str, leg: &LegResult) {
        let status = match (&leg.fill, &leg.error) {
            (Some(f), _) if f.size == leg.order.size => OrderStatus::Filled,
            (Some(_), _) => OrderStatus::PartiallyFilled,
            (None, _) => OrderStatus::Rejected,
        };
        let repo = &self.store.repo;
        let updated = repo
            .update_order(
                &leg.order.client_order_id,
                status,
                leg.venue_order_id.as_deref(),
                leg.error.as_deref(),
                now_micros(),
            )
            .await;
        self.booked("an order's fate", updated);
        if let Some(fill) = &leg.fill {
            let recorded = repo.record_fill(&self.store.host, trade_id, fill).await;
            self.booked("a fill", recorded);
        }
    }

    /// Books the risk gate's approval in the decision history. Not part of
    /// the intent: start-up recovers from the trade and order rows alone, so
    /// this write waits until the orders are out.
    async fn book_approval(&self, intent: &TradeIntent) {
        let r = self
            .store
            .repo
            .record_opportunity(&self.store.host, &intent.approval())
            .await;
        self.booked("an approval", r);
    }

    /// Writes an order of an open trade before it is sent; `false` means do not send it.
    async fn plan(&self, trade_id: &str, order: &Order) -> bool {
        let r = self
            .store
            .repo
            .add_order(&self.store.host, trade_id, order, now_micros())
            .await;
        self.booked("a planned order", r).is_some()
    }

    fn filled(leg: &LegResult) -> Size {
        leg.fill.as_ref().map_or(Size::ZERO, |f| f.size)
    }

    /// The order book depth on the venue an order goes to, at or better than its limit.
    fn depth(entry: &PairEntry, order: &Order) -> Size {
        let state = entry.state();
        state
            .venue(order.venue)
            .ask_ladder(order.venue, order.outcome)
            .take_while(|l| l.price <= order.limit)
            .fold(Size::ZERO, |acc, l| acc + l.size)
    }

    pub async fn execute(&self, cmd: ExecuteTrade) {
        let started = std::time::Instant::now();
        let to_executor = now_micros().saturating_sub(cmd.opportunity.found_at);
        let pair = cmd.opportunity.pair.clone();
        let Some(entry) = self.books.get(&pair) else {
            self.risk.trade_finished(&pair, Usd::ZERO, false);
            return;
        };
        if let Some(leases) = self.leases.get()
            && !leases.owns(&pair)
        {
            let why = "another host holds this market's lease".to_string();
            return self.refuse(&cmd, vec![], TradeOutcome::Refused(why)).await;
        }
        if self
            .held_back
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&pair)
        {
            let why = "an unsettled trade from a previous run holds this market back".to_string();
            return self.refuse(&cmd, vec![], TradeOutcome::Refused(why)).await;
        }
        let Some((yes, no)) = self.legs(&cmd) else {
            return self
                .refuse(
                    &cmd,
                    vec![],
                    TradeOutcome::Refused("no size fits both venues' grids".into()),
                )
                .await;
        };
        if self.policy.dry_run {
            tracing::info!(trade = %cmd.trade_id, %pair, size = %yes.size, "dry run: would buy YES on {} and NO on {}", yes.venue, no.venue);
            self.refuse(&cmd, vec![yes, no], TradeOutcome::DryRun).await;
            self.risk.set_exposure(pair, Usd::ZERO);
            return;
        }
        // Fresh balances on both venues before the first leg: a shortfall refuses.
        let (kb, pb) = tokio::join!(
            self.fresh_balance(Venue::Kalshi),
            self.fresh_balance(Venue::Polymarket)
        );
        for (venue, balance) in [(Venue::Kalshi, kb), (Venue::Polymarket, pb)] {
            let needed = cmd.opportunity.cash_needed(venue);
            let refusal = match balance {
                Ok(b) if b >= needed => continue,
                Ok(b) => format!("{venue} balance {b} below the {needed} needed"),
                Err(e) => format!("{venue} balance unknown: {e}"),
            };
            return self
                .refuse(&cmd, vec![yes, no], TradeOutcome::Refused(refusal))
                .await;
        }
        self.stages.to_executor.record_ns(to_executor * 1_000);
        self.stages.checks.record(started.elapsed());
        // The intent before any order, so a crash from here on is found at
        // start-up. Journalled, it is one local `write`, and the store write
        // runs beside the orders. Without a journal (or while the store is
        // refusing), the orders wait for the store, which can still stop them.
        let writing = std::time::Instant::now();
        let intent = TradeIntent {
            trade_id: cmd.trade_id.clone(),
            opportunity: cmd.opportunity.clone(),
            orders: vec![yes.clone(), no.clone()],
            created_at: now_micros(),
        };
        let journal = self.journal.get();
        // Sequential legs book the first before the second leaves: the store
        // must have the trade by then anyway.
        let beside = journal.is_some()
            && self.policy.leg_mode == LegMode::Concurrent
            && !self.store_behind.load(std::sync::atomic::Ordering::Relaxed);
        // Only an intent whose orders leave before its store write goes into
        // the journal; the others only take their trade id, so a second
        // approval of it is refused either way.
        if let Some(journal) = journal {
            let taken = if beside {
                journal.append(&intent)
            } else {
                journal.claim(&intent.trade_id)
            };
            if let Err(e) = taken {
                tracing::error!(trade = %cmd.trade_id, error = %e, journal = %journal.path().display(), "intent journal refused the intent: no order sent");
                return self.store_refused(&pair);
            }
        }
        let write = self.store.repo.begin_trade(&self.store.host, &intent);
        let mut write = std::pin::pin!(write);
        let (y, n) = if beside {
            self.stages.intent.record(writing.elapsed());
            // The Kalshi request is written first (its send's first poll
            // writes it on an open order-line connection), then the
            // Polymarket leg signs (its signature covers the priced order)
            // and is written, and only then does the store write start.
            let (kalshi, poly) = if yes.venue == Venue::Kalshi {
                (yes, no)
            } else {
                (no, yes)
            };
            let step = std::time::Instant::now();
            let mut k = std::pin::pin!(self.send_signed(&entry, kalshi, None));
            let k_early = poll_once(k.as_mut()).await;
            self.stages.kalshi_handed_over.record(step.elapsed());
            let step = std::time::Instant::now();
            let signed = self.presign(&entry, &poly);
            self.stages.polymarket_signed.record(step.elapsed());
            let step = std::time::Instant::now();
            let mut p = std::pin::pin!(self.send_signed(&entry, poly, signed));
            let p_early = poll_once(p.as_mut()).await;
            self.stages.polymarket_handed_over.record(step.elapsed());
            self.stages
                .handed_over(cmd.opportunity.found_at, now_micros());
            let (k, p, stored) =
                tokio::join!(output_of(k_early, k), output_of(p_early, p), write.as_mut());
            match stored {
                Ok(()) => {
                    if let Some(journal) = journal {
                        journal.stored();
                    }
                    self.store_keeps_up();
                }
                Err(e) => {
                    // The orders are out: the journal keeps the intent for the
                    // next start-up, and trades wait for the store until it
                    // takes one again.
                    tracing::error!(trade = %cmd.trade_id, error = %e, "trade store refused a journalled intent after its orders left");
                    self.store_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.store_behind
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let (y, n) = if k.order.outcome == Outcome::Yes {
                (k, p)
            } else {
                (p, k)
            };
            self.book_legs(&cmd.trade_id, &y, &n, &intent).await;
            (y, n)
        } else {
            // The orders wait for the store, which can still stop them. Start
            // the write (SQLite's worker thread or the PostgreSQL server
            // carries it from there) and sign the Polymarket leg meanwhile.
            let early = poll_once(write.as_mut()).await;
            let signed = match self.policy.leg_mode {
                LegMode::Concurrent => (self.presign(&entry, &yes), self.presign(&entry, &no)),
                LegMode::Sequential => (None, None),
            };
            if let Err(e) = output_of(early, write).await {
                tracing::error!(trade = %cmd.trade_id, error = %e, "trade store refused the intent: no order sent");
                return self.store_refused(&pair);
            }
            self.store_keeps_up();
            self.stages.intent.record(writing.elapsed());
            match self.policy.leg_mode {
                LegMode::Concurrent => {
                    let (y, n) = tokio::join!(
                        self.send_signed(&entry, yes, signed.0),
                        self.send_signed(&entry, no, signed.1)
                    );
                    self.book_legs(&cmd.trade_id, &y, &n, &intent).await;
                    (y, n)
                }
                LegMode::Sequential => {
                    let legs = self.sequential(&entry, &cmd.trade_id, yes, no).await;
                    self.book_approval(&intent).await;
                    legs
                }
            }
        };
        self.settle(&entry, &cmd, y, n).await;
    }

    /// The less liquid leg first; the other for what the first filled.
    async fn sequential(
        &self,
        entry: &PairEntry,
        trade_id: &str,
        yes: Order,
        no: Order,
    ) -> (LegResult, LegResult) {
        let yes_first = Self::depth(entry, &yes) <= Self::depth(entry, &no);
        let (first, second) = if yes_first { (yes, no) } else { (no, yes) };
        let first = self.place(entry, trade_id, first).await;
        let filled = Self::filled(&first);
        let second = if filled.is_zero() {
            let why = "not sent: the first leg did not fill".to_string();
            let r = self
                .store
                .repo
                .update_order(
                    &second.client_order_id,
                    OrderStatus::NotSent,
                    None,
                    Some(&why),
                    now_micros(),
                )
                .await;
            self.booked("an order's fate", r);
            LegResult {
                order: second,
                venue_order_id: None,
                fill: None,
                parts: vec![],
                error: Some(why),
            }
        } else {
            // Only what the first leg filled, so the two stay equal.
            let second = Order {
                size: filled,
                ..second
            };
            self.place(entry, trade_id, second).await
        };
        if yes_first {
            (first, second)
        } else {
            (second, first)
        }
    }

    /// Both legs are back: hedge, retry the short leg, or unwind the excess; then book the outcome.
    async fn settle(
        &self,
        entry: &PairEntry,
        cmd: &ExecuteTrade,
        mut y: LegResult,
        mut n: LegResult,
    ) {
        let (ys, ns) = (Self::filled(&y), Self::filled(&n));
        if ys.is_zero() && ns.is_zero() {
            let why = format!(
                "neither leg filled: yes {}, no {}",
                y.error.clone().unwrap_or_default(),
                n.error.clone().unwrap_or_default()
            );
            return self
                .finish(
                    cmd,
                    TradeOutcome::NotFilled(why),
                    Usd::ZERO,
                    false,
                    Some((y, n)),
                    None,
                )
                .await;
        }
        // Leg risk: retry the missing (or short) leg within the tolerance, then unwind the excess.
        if ys != ns {
            let (short, long) = if ys < ns { (&mut y, &n) } else { (&mut n, &y) };
            self.retry_missing(entry, &cmd.trade_id, short, Self::filled(long))
                .await;
        }
        let (ys, ns) = (Self::filled(&y), Self::filled(&n));
        // What the unwind brought in, plus the cost of excess it could not
        // sell (still held, so not lost): the legs' full cost is charged below.
        let mut unwind_pnl = Usd::ZERO;
        let mut unwind_fill = None;
        let legs_differ = ys != ns;
        if legs_differ {
            let (excess_leg, excess) = if ys > ns {
                (&y, ys.checked_sub(ns))
            } else {
                (&n, ns.checked_sub(ys))
            };
            let excess = excess.unwrap_or(Size::ZERO);
            let reason = excess_leg_error(&y, &n);
            let (proceeds, sold) = self.unwind(entry, &cmd.trade_id, excess_leg, excess).await;
            let unsold = excess
                .checked_sub(sold.as_ref().map_or(Size::ZERO, |f| f.size))
                .unwrap_or(Size::ZERO);
            let held_at_cost = excess_leg
                .cost()
                .per(Self::filled(excess_leg))
                .times(unsold);
            unwind_pnl = proceeds + held_at_cost;
            unwind_fill = sold;
            self.bus.trades.publish(TradeEvent::LegFailed(LegFailed {
                trade_id: cmd.trade_id.clone(),
                order: if ys > ns {
                    n.order.clone()
                } else {
                    y.order.clone()
                },
                reason,
            }));
        }
        let trade = trade(cmd, &y, &n);
        // Cash view: $1 per hedged contract, less everything both legs cost,
        // plus the unwind's proceeds (the realised loss of leg risk).
        let pnl = trade.locked_pnl() + unwind_pnl;
        // A leg failed whether or not the unwind sold anything; what is still
        // held shows in the positions.
        let outcome = if legs_differ {
            TradeOutcome::Unwound
        } else {
            TradeOutcome::Hedged
        };
        tracing::info!(
            trade = %cmd.trade_id, pair = %cmd.opportunity.pair, hedged = %trade.hedged_size(), pnl = %pnl, ?outcome,
            "trade done"
        );
        let leg_failed = outcome == TradeOutcome::Unwound;
        self.finish(cmd, outcome, pnl, leg_failed, Some((y, n)), unwind_fill)
            .await;
        // Announced once booked: whoever hears of it can read it back.
        self.bus
            .trades
            .publish(TradeEvent::Executed(Box::new(TradeExecuted { trade })));
    }

    async fn retry_missing(
        &self,
        entry: &PairEntry,
        trade_id: &str,
        short: &mut LegResult,
        target: Size,
    ) {
        let deadline = tokio::time::Instant::now() + self.policy.retry_window;
        for attempt in 1..=self.policy.retry_attempts {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let missing = target
                .checked_sub(Self::filled(short))
                .unwrap_or(Size::ZERO);
            if missing.is_zero() {
                return;
            }
            let limit = Price::new(short.order.limit.value() + self.policy.retry_tolerance)
                .unwrap_or(short.order.limit);
            let order = Order {
                client_order_id: format!("{}-retry{attempt}", short.order.client_order_id),
                limit,
                size: missing,
                ..short.order.clone()
            };
            if !self.plan(trade_id, &order).await {
                return;
            }
            let r = self.place(entry, trade_id, order).await;
            if let Some(f) = r.fill {
                short.added(f);
            }
        }
    }

    /// Sells `size` of the leg's outcome at the best bid (IOC); returns the
    /// sale's proceeds (fee deducted) and its fill.
    async fn unwind(
        &self,
        entry: &PairEntry,
        trade_id: &str,
        leg: &LegResult,
        size: Size,
    ) -> (Usd, Option<Fill>) {
        let Some(bought) = &leg.fill else {
            return (Usd::ZERO, None);
        };
        // Selling an outcome hits that outcome's bids on the same venue.
        let best_bid = entry
            .state()
            .venue(leg.order.venue)
            .best_bid(leg.order.outcome)
            .map(|l| l.price);
        let limit = best_bid
            .and_then(|b| Price::new(b.value() - self.policy.retry_tolerance).ok())
            .unwrap_or(Price::from_micros(10_000).expect("0.01 is a price"));
        let order = Order {
            client_order_id: format!("{}-unwind", leg.order.client_order_id),
            action: Action::Sell,
            limit,
            size,
            time_in_force: TimeInForce::ImmediateOrCancel,
            ..leg.order.clone()
        };
        if !self.plan(trade_id, &order).await {
            return (Usd::ZERO, None);
        }
        let r = self.place(entry, trade_id, order).await;
        let sold = r.fill.as_ref().map_or(Size::ZERO, |f| f.size);
        let proceeds = r
            .fill
            .as_ref()
            .map_or(Usd::ZERO, |f| f.price * f.size - f.fee);
        let cost = bought.price * sold + bought.fee.per(bought.size).times(sold);
        let realised = proceeds - cost;
        tracing::warn!(trade = %trade_id, venue = %leg.order.venue, %sold, %proceeds, %realised, "leg risk: unwound the filled leg");
        (proceeds, r.fill)
    }

    /// Books a trade that sends no order (refused or dry run): intent and outcome at once.
    async fn refuse(&self, cmd: &ExecuteTrade, orders: Vec<Order>, outcome: TradeOutcome) {
        let intent = TradeIntent {
            trade_id: cmd.trade_id.clone(),
            opportunity: cmd.opportunity.clone(),
            orders,
            created_at: now_micros(),
        };
        let r = self.store.repo.begin_trade(&self.store.host, &intent).await;
        if self.booked("a refused trade", r).is_some() {
            self.book_approval(&intent).await;
            self.finish(cmd, outcome, Usd::ZERO, false, None, None)
                .await;
        } else {
            self.risk
                .trade_finished(&cmd.opportunity.pair, Usd::ZERO, false);
        }
    }

    async fn finish(
        &self,
        cmd: &ExecuteTrade,
        outcome: TradeOutcome,
        pnl: Usd,
        leg_failed: bool,
        legs: Option<(LegResult, LegResult)>,
        unwind_fill: Option<Fill>,
    ) {
        let (yes_fill, no_fill) = match &legs {
            Some((y, n)) => (y.fill.clone(), n.fill.clone()),
            None => (None, None),
        };
        let record = TradeRecord {
            trade_id: cmd.trade_id.clone(),
            opportunity: cmd.opportunity.clone(),
            outcome,
            yes_fill,
            no_fill,
            unwind_fill,
            pnl,
            at: now_micros(),
        };
        let r = self
            .store
            .repo
            .finish_trade(&self.store.host, &record)
            .await;
        self.booked("a trade's outcome", r);
        self.risk
            .trade_finished(&cmd.opportunity.pair, pnl, leg_failed);
    }
}

/// Polls `f` once now, so its work starts (a request handed to its
/// connection, a write to the store's worker), leaving the rest to [`output_of`].
async fn poll_once<F: Future + ?Sized>(mut f: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

/// The output of a future [`poll_once`] polled earlier.
async fn output_of<F: Future + ?Sized>(early: Poll<F::Output>, f: Pin<&mut F>) -> F::Output {
    match early {
        Poll::Ready(v) => v,
        Poll::Pending => f.await,
    }
}

/// The request may have reached Kalshi, but its answer did not reach us.
fn answer_lost(e: &crate::venues::kalshi::KalshiError) -> bool {
    use crate::venues::kalshi::KalshiError as K;
    match e {
        K::Transport { sent, .. } => *sent,
        K::UnreadableResponse { .. } => true,
        K::Other { status, .. } => *status >= 500,
        _ => false,
    }
}

/// A Polymarket fill less the trades that `FAILED` on-chain: what the
/// `CONFIRMED` (or still pending) trades matched, at their average price, the
/// fee charged on that. `Err` when nothing is left, or when a failed trade's
/// size is unknown (then the whole leg counts as failed, the safe side: a
/// fill we do not hold would go unhedged).
fn without_failed(
    fill: Option<Fill>,
    collateral: Usd,
    failed: &[FailedTrade],
    fees: &crate::domain::PolymarketFees,
) -> Result<Option<Fill>, String> {
    let Some(fill) = fill else {
        return Ok(None);
    };
    if failed.is_empty() {
        return Ok(Some(fill));
    }
    let ids = failed
        .iter()
        .map(|t| t.trade_id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let wholly = || format!("polymarket: trade(s) {ids} FAILED on-chain; the match did not happen");
    // From the venue's exact collateral, not the rounded average price.
    let mut size = fill.size.value();
    let mut cost = collateral.value();
    for t in failed {
        let (Some(price), Some(lost)) = (t.price, t.size) else {
            return Err(wholly());
        };
        size -= lost.value();
        cost -= price.value() * lost.value();
    }
    if size <= Decimal::ZERO || cost <= Decimal::ZERO {
        return Err(wholly());
    }
    let (Ok(left), Ok(price)) = (Size::new(size), Price::new((cost / size).round_dp(6))) else {
        return Err(wholly());
    };
    tracing::warn!(order = %fill.client_order_id, failed = %ids, confirmed = %left, of = %fill.size, "polymarket: part of a match FAILED on-chain; the leg is short by it");
    Ok(Some(Fill {
        price,
        size: left,
        fee: fees.taker_fee(price, left),
        ..fill
    }))
}

fn excess_leg_error(y: &LegResult, n: &LegResult) -> String {
    y.error
        .clone()
        .or_else(|| n.error.clone())
        .unwrap_or_else(|| "the legs filled different sizes".into())
}

fn merge(prior: Option<Fill>, new: Fill) -> Fill {
    match prior {
        None => new,
        Some(p) => {
            let size = p.size + new.size;
            let cost = p.price * p.size + new.price * new.size;
            let avg = Price::new((cost.value() / size.value()).round_dp(6)).unwrap_or(new.price);
            Fill {
                price: avg,
                size,
                fee: p.fee + new.fee,
                ..new
            }
        }
    }
}

fn leg(r: &LegResult) -> Leg {
    let status = match (&r.fill, &r.error) {
        (Some(f), _) if f.size == r.order.size => LegStatus::Filled,
        (Some(_), _) => LegStatus::PartiallyFilled,
        (None, _) => LegStatus::Rejected,
    };
    Leg {
        order: r.order.clone(),
        status,
        fills: r.parts.clone(),
    }
}

fn trade(cmd: &ExecuteTrade, y: &LegResult, n: &LegResult) -> Trade {
    Trade {
        id: cmd.trade_id.clone(),
        opportunity: cmd.opportunity.clone(),
        yes_leg: leg(y),
        no_leg: leg(n),
    }
}

thread_local! {
    /// A trade task was queued behind the task running on this worker (a
    /// feed that evaluated the plugins inline).
    static TRADE_QUEUED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `after` once the trade just queued on this worker has had its first
/// poll (its orders written), or at once where no trade is queued here (a
/// strategy thread of its own yields its core instead). For what the risk
/// gate does after approving: its log line alone took 35 µs p50 on loopback,
/// formatted and written while the trade waited behind it.
pub fn after_queued_trade(after: impl FnOnce() + Send + 'static) {
    if TRADE_QUEUED.get()
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        // Spawned last, it runs first (tokio's LIFO slot): one yield puts it
        // behind the trade.
        runtime.spawn(async move {
            tokio::task::yield_now().await;
            after();
        });
    } else {
        after();
    }
}

/// Lets a trade the current task just started run before the task goes on.
/// A feed calls it between venue messages: its socket may hold more, and
/// tokio would only make it yield after its budget of reads (128), while the
/// trade that decides whether the window is caught waits behind it.
pub async fn let_queued_trades_go() {
    if TRADE_QUEUED.replace(false) {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A feed's task on a worker (one worker: the trade's task can only run
    /// when the feed's task leaves it) queues a trade, as the executor's hook
    /// does, then the risk gate's after-work; the trade must start first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn work_after_a_queued_trade_runs_once_the_trade_has_started() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = order.clone();
        let (logged, log_done) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let trade = seen.clone();
            tokio::spawn(async move { trade.lock().unwrap().push("trade") });
            TRADE_QUEUED.set(true);
            let log = seen.clone();
            after_queued_trade(move || {
                log.lock().unwrap().push("log");
                let _ = logged.send(());
            });
            seen.lock().unwrap().push("feed reads on");
            let_queued_trades_go().await;
            assert!(!TRADE_QUEUED.get(), "the flag is taken");
        })
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), log_done)
            .await
            .expect("the after-work ran")
            .unwrap();
        let order = order.lock().unwrap();
        let at = |what| order.iter().position(|w| *w == what).unwrap();
        assert_eq!(order[0], "feed reads on", "{order:?}");
        assert!(at("trade") < at("log"), "{order:?}");
    }

    #[test]
    fn off_a_runtime_the_after_work_runs_at_once() {
        let ran = Arc::new(Mutex::new(false));
        let r = ran.clone();
        TRADE_QUEUED.set(true);
        after_queued_trade(move || *r.lock().unwrap() = true);
        TRADE_QUEUED.set(false);
        assert!(*ran.lock().unwrap());
    }
}
