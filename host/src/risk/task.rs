//! The risk gate on the order path: checks each opportunity against the
//! pair's current books and what is at risk as it is published, and hands
//! approved trades to the executor.
//!
//! The check runs inline, on the thread that publishes the opportunity (the
//! strategy's), and an approval starts the executor's task directly: one
//! wake-up between the plugin's decision and the executor instead of three
//! (risk task, `executions` consumer, the executor's per-trade task). The
//! approval is still published on the lossless `executions` topic for anyone
//! else following it (and when no executor is registered).
//!
//! The state lives behind one short `std` mutex (never held across an await or
//! while publishing), shared by the task, the API and the executor through a
//! [`RiskHandle`]. In a dry run approvals are published all the same: the
//! executor is what decides not to send orders.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::broadcast;

use super::gate::{KillSwitchLatched, MarketFacts, PauseCause, Refusal, RiskGate, RiskState};
use super::limits::{BadLimit, RiskLimits};
use super::log::{RefusalLog, RefusalRecord};
use crate::books::BookStore;
use crate::bus::{Bus, InlineSubscription};
use crate::domain::events::{ArbitrageOpportunityFound, ExecuteTrade};
use crate::domain::{Opportunity, PairId, UnixMicros, Usd, Venue};
use crate::strategy::now_micros;

/// Decisions a lagging [`RiskHandle::decisions`] subscriber may fall behind.
const DECISION_CAPACITY: usize = 1024;

/// What the gate decided about one opportunity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum RiskDecision {
    Approved { trade_id: String, market: PairId },
    Refused(RefusalRecord),
}

/// Everything `GET /risk` shows.
#[derive(Debug, Clone, Serialize)]
pub struct RiskSnapshot {
    pub limits: RiskLimits,
    pub dry_run: bool,
    pub state: RiskState,
    pub total_exposure: Usd,
    pub approved: u64,
    pub refusals: std::collections::BTreeMap<&'static str, u64>,
    pub recent_refusals: Vec<RefusalRecord>,
}

/// Called by `kill`: the executor registers one that cancels every open order.
pub type CancelOpenOrdersHook = Arc<dyn Fn() + Send + Sync>;

/// Called with every approved trade: the executor registers one that starts it.
pub type ExecuteHook = Arc<dyn Fn(ExecuteTrade) + Send + Sync>;

struct Inner {
    gate: RiskGate,
    state: RiskState,
    log: RefusalLog,
    approved: u64,
    /// Microsecond stamp of the last trade id, so ids are unique and ordered
    /// even when the clock stands still or steps back.
    last_trade_micros: UnixMicros,
}

impl Inner {
    fn next_trade_id(&mut self, now: UnixMicros) -> String {
        self.last_trade_micros = now.max(self.last_trade_micros.saturating_add(1));
        format!("dt-{:017}", self.last_trade_micros)
    }
}

struct Shared {
    inner: Mutex<Inner>,
    decisions: broadcast::Sender<RiskDecision>,
    cancel_open_orders: Mutex<Vec<CancelOpenOrdersHook>>,
    /// The executor taking approvals, with its registration's id.
    execute: Mutex<Option<(u64, ExecuteHook)>>,
    registrations: AtomicU64,
    opportunities_seen: AtomicU64,
}

/// Keeps an executor registered with [`RiskHandle::execute_approvals_with`];
/// dropping it unregisters it.
pub struct ExecutorRegistration {
    shared: std::sync::Weak<Shared>,
    id: u64,
}

impl Drop for ExecutorRegistration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let mut execute = shared.execute.lock().unwrap_or_else(|e| e.into_inner());
            if execute.as_ref().is_some_and(|(id, _)| *id == self.id) {
                *execute = None;
            }
        }
    }
}

/// The gate's shared state, for the API (pause, kill, limits), the executor
/// (results, balances) and the tests.
#[derive(Clone)]
pub struct RiskHandle {
    shared: Arc<Shared>,
    /// The gate's subscription to `bus.opportunities` (see [`start_risk_gate`]).
    _gate: Option<Arc<InlineSubscription<PairId, ArbitrageOpportunityFound>>>,
}

impl RiskHandle {
    /// A gate with no task: decisions are made by calling [`RiskHandle::decide`].
    pub fn new(gate: RiskGate) -> Self {
        let (decisions, _) = broadcast::channel(DECISION_CAPACITY);
        RiskHandle {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    gate,
                    state: RiskState::default(),
                    log: RefusalLog::default(),
                    approved: 0,
                    last_trade_micros: 0,
                }),
                decisions,
                cancel_open_orders: Mutex::default(),
                execute: Mutex::default(),
                registrations: AtomicU64::new(0),
                opportunities_seen: AtomicU64::new(0),
            }),
            _gate: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under this lock is a few field writes that cannot panic
        // half-way, so a poisoned lock still guards a consistent state.
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks one opportunity against `books` now. An approval goes to the
    /// registered executor (if any) and then on `bus.executions` as an
    /// [`ExecuteTrade`]; a refusal is recorded.
    pub fn decide(&self, opp: Opportunity, books: &BookStore, bus: &Bus) -> RiskDecision {
        self.decide_at(opp, books, bus, now_micros())
    }

    fn decide_at(
        &self,
        opp: Opportunity,
        books: &BookStore,
        bus: &Bus,
        now: UnixMicros,
    ) -> RiskDecision {
        self.shared
            .opportunities_seen
            .fetch_add(1, Ordering::Relaxed);
        // Copy the facts and let go of the book lock before taking ours: the
        // feeds write under it.
        let facts = books.get(&opp.pair).map(|entry| {
            let state = entry.state();
            MarketFacts::of(&entry.pair, &state)
        });
        let mut inner = self.lock();
        let verdict = match &facts {
            None => Err(Refusal::UnknownMarket),
            Some(facts) => inner.gate.check(&opp, facts, &inner.state, now),
        };
        let decision = match verdict {
            Ok(approved) => {
                let trade_id = inner.next_trade_id(now);
                inner
                    .state
                    .begin_trade(opp.pair.clone(), trade_id.clone(), &approved, now);
                inner.approved += 1;
                drop(inner);
                let cmd = ExecuteTrade {
                    trade_id: trade_id.clone(),
                    opportunity: opp,
                };
                // The executor first; the log line and the other consumers after.
                let execute = self
                    .shared
                    .execute
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|(_, hook)| hook.clone());
                if let Some(execute) = execute {
                    execute(cmd.clone());
                }
                let opp = &cmd.opportunity;
                let (pair, plugin, size, net) = (
                    opp.pair.clone(),
                    opp.found_by.clone(),
                    opp.size,
                    opp.net_edge,
                );
                let (id, committed) = (trade_id.clone(), approved.committed);
                crate::execution::after_queued_trade(move || {
                    tracing::info!(
                        market = %pair, trade_id = id, plugin = %plugin, size = %size,
                        net = %net, committed = %committed, "trade approved"
                    )
                });
                let market = opp.pair.clone();
                bus.executions.publish(cmd);
                RiskDecision::Approved { trade_id, market }
            }
            Err(refusal) => {
                inner.state.note_refusal(&refusal);
                let record = RefusalRecord::new(now, opp.pair, opp.found_by, refusal);
                inner.log.record(record.clone());
                drop(inner);
                tracing::debug!(market = %record.market, reason = record.refusal.reason(), "opportunity refused: {}", record.message);
                RiskDecision::Refused(record)
            }
        };
        // Nobody listening is fine.
        let _ = self.shared.decisions.send(decision.clone());
        decision
    }

    /// Every decision from now on (a subscriber more than 1024 behind loses the oldest).
    pub fn decisions(&self) -> broadcast::Receiver<RiskDecision> {
        self.shared.decisions.subscribe()
    }

    pub fn snapshot(&self) -> RiskSnapshot {
        let inner = self.lock();
        RiskSnapshot {
            limits: inner.gate.limits.clone(),
            dry_run: inner.gate.dry_run,
            total_exposure: inner.state.total_exposure(),
            state: inner.state.clone(),
            approved: inner.approved,
            refusals: inner.log.counts().clone(),
            recent_refusals: inner.log.newest_first(),
        }
    }

    pub fn state(&self) -> RiskState {
        self.lock().state.clone()
    }

    pub fn limits(&self) -> RiskLimits {
        self.lock().gate.limits.clone()
    }

    /// Replaces the limits after validating them; the next opportunity uses them.
    pub fn set_limits(&self, limits: RiskLimits) -> Result<(), BadLimit> {
        limits.validate()?;
        tracing::info!(?limits, "risk limits replaced");
        self.lock().gate.limits = limits;
        Ok(())
    }

    /// Refusal counts by reason (every reason, zeros included) and approvals.
    pub fn counts(&self) -> (std::collections::BTreeMap<&'static str, u64>, u64) {
        let inner = self.lock();
        (inner.log.counts().clone(), inner.approved)
    }

    pub fn pause(&self) {
        self.lock().state.pause(PauseCause::Operator);
        tracing::warn!("trading paused by the operator");
    }

    pub fn resume(&self) -> Result<(), KillSwitchLatched> {
        self.lock().state.resume()?;
        tracing::warn!("trading resumed by the operator");
        Ok(())
    }

    /// Latches the kill switch, pauses, and runs every cancel-open-orders hook.
    pub fn kill(&self) {
        self.lock().state.kill();
        tracing::error!("kill switch latched: trading stopped, cancelling open orders");
        let hooks = self
            .shared
            .cancel_open_orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for cancel_open_orders in hooks {
            cancel_open_orders();
        }
    }

    /// Clears the kill switch; trading stays paused until resumed.
    pub fn reset_kill_switch(&self) {
        self.lock().state.reset_kill_switch();
        tracing::warn!("kill switch reset; trading stays paused until resumed");
    }

    /// The executor's hook to cancel every open order on both venues when the
    /// kill switch is thrown. Runs on the caller of [`RiskHandle::kill`] (an API
    /// request): it should hand the work to the executor and return.
    pub fn on_kill_cancel_open_orders(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.shared
            .cancel_open_orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(hook));
    }

    /// The executor's report on a trade of `market`: frees the in-flight slot,
    /// books `pnl` (realised, dollars) and, if a leg failed, starts the
    /// market's cooldown. A filled trade's cash stays counted as the market's
    /// exposure until [`RiskHandle::set_exposure`] says otherwise.
    pub fn trade_finished(&self, market: &PairId, pnl: Usd, leg_failed: bool) {
        let done = self
            .lock()
            .state
            .finish_trade(market, pnl, leg_failed, now_micros());
        let trade_id = done.map(|t| t.trade_id).unwrap_or_default();
        tracing::info!(%market, trade_id, %pnl, leg_failed, "trade finished");
    }

    /// The last balance a venue reported; one below the shutdown balance halts trading.
    pub fn set_balance(&self, venue: Venue, balance: Usd) {
        let mut inner = self.lock();
        let Inner { gate, state, .. } = &mut *inner;
        state.set_balance(venue, balance, &gate.limits);
    }

    /// Today's realised P&L from the trade store, at start-up (the daily loss limit survives a restart).
    pub fn restore_realised_pnl(&self, pnl_today: Usd) {
        self.lock()
            .state
            .restore_realised_pnl(pnl_today, now_micros());
    }

    /// Replaces a market's held exposure (after reconciliation or settlement).
    pub fn set_exposure(&self, market: PairId, held: Usd) {
        self.lock().state.set_exposure(market, held);
    }

    /// Hands every approval from now on to `execute`, on the thread that
    /// decided it, before the approval is logged or published: the executor
    /// registers one that starts the trade's task, so the approval reaches it
    /// without queueing on `bus.executions`. One executor takes approvals: a
    /// new registration replaces the previous one. The executor that
    /// registers must not also execute what it reads on `bus.executions`.
    pub fn execute_approvals_with(
        &self,
        execute: impl Fn(ExecuteTrade) + Send + Sync + 'static,
    ) -> ExecutorRegistration {
        let id = self.shared.registrations.fetch_add(1, Ordering::Relaxed);
        *self
            .shared
            .execute
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((id, Arc::new(execute)));
        ExecutorRegistration {
            shared: Arc::downgrade(&self.shared),
            id,
        }
    }

    /// Opportunities taken off the bus since start.
    pub fn opportunities_seen(&self) -> u64 {
        self.shared.opportunities_seen.load(Ordering::Relaxed)
    }
}

/// Starts the gate: subscribes it to `bus.opportunities` before returning
/// (nothing published afterwards is missed); it runs until the last
/// [`RiskHandle`] is dropped. The check runs inline, on the publisher's
/// thread (see the module's head): it takes the gate's short lock and the
/// pair's book lock for a copy of its facts, and never awaits.
pub fn start_risk_gate(gate: RiskGate, books: Arc<BookStore>, bus: &Arc<Bus>) -> RiskHandle {
    let handle = RiskHandle::new(gate);
    // The subscription lives in the bus, so it holds neither the bus (a
    // cycle) nor a handle keeping itself subscribed.
    let deciding = RiskHandle {
        shared: handle.shared.clone(),
        _gate: None,
    };
    let weak_bus = Arc::downgrade(bus);
    let subscription =
        bus.opportunities
            .subscribe_inline(move |_, found: ArbitrageOpportunityFound| {
                if let Some(bus) = weak_bus.upgrade() {
                    deciding.decide(found.opportunity, &books, &bus);
                }
            });
    RiskHandle {
        _gate: Some(Arc::new(subscription)),
        ..handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MarketPair, PairFees, Price, Side, Size, TokenId};

    fn pair(id: &str, rules_match: bool) -> MarketPair {
        MarketPair {
            id: PairId(id.into()),
            kalshi_ticker: "K".into(),
            polymarket_condition_id: "0x1".into(),
            polymarket_yes_token: TokenId::new("1").unwrap(),
            polymarket_no_token: TokenId::new("2").unwrap(),
            neg_risk: false,
            kalshi_rules: String::new(),
            polymarket_rules: String::new(),
            rules_match,
        }
    }

    fn setup(rules_match: bool) -> (RiskHandle, BookStore, Bus, Opportunity, UnixMicros) {
        setup_at(rules_match, 1_735_732_800_000_000)
    }

    fn setup_at(
        rules_match: bool,
        now: UnixMicros,
    ) -> (RiskHandle, BookStore, Bus, Opportunity, UnixMicros) {
        let books = BookStore::new();
        let entry = books.add(
            pair("fed", rules_match),
            PairFees::default(),
            Size::whole(5),
        );
        {
            let mut st = entry.state();
            st.kalshi
                .no
                .set_level(Side::Bid, Price::parse("0.60").unwrap(), Size::whole(100));
            st.kalshi.touch(now);
            st.polymarket.touch(now);
        }
        let opp = Opportunity::price(
            PairId("fed".into()),
            "buy-both",
            Venue::Kalshi,
            Price::parse("0.40").unwrap(),
            Price::parse("0.55").unwrap(),
            Size::whole(100),
            &PairFees::default(),
            now,
        );
        let handle = RiskHandle::new(RiskGate::new(RiskLimits::default(), true));
        (handle, books, Bus::default(), opp, now)
    }

    #[test]
    fn an_approval_publishes_execute_trade_and_marks_the_market_in_flight() {
        let (risk, books, bus, opp, now) = setup(true);
        let mut executions = bus.executions.subscribe();
        let decision = risk.decide_at(opp.clone(), &books, &bus, now);
        let RiskDecision::Approved { trade_id, .. } = decision else {
            panic!("refused: {decision:?}");
        };
        let sent = executions.try_recv().expect("an ExecuteTrade");
        assert_eq!(sent.trade_id, trade_id);
        assert_eq!(sent.opportunity, opp);
        assert!(risk.state().in_flight.contains_key(&opp.pair));
        let again = risk.decide_at(opp.clone(), &books, &bus, now);
        assert!(
            matches!(&again, RiskDecision::Refused(r) if r.refusal == Refusal::TradeInFlight),
            "{again:?}"
        );
        assert!(executions.try_recv().is_none());
        risk.trade_finished(&opp.pair, Usd::new(rust_decimal::Decimal::new(5, 0)), false);
        assert!(risk.state().in_flight.is_empty());
    }

    #[test]
    fn an_approval_starts_the_registered_executor_before_it_is_published() {
        let (risk, books, bus, opp, now) = setup(true);
        let mut executions = bus.executions.subscribe();
        let started = Arc::new(Mutex::new(Vec::new()));
        let log = started.clone();
        let registration = risk.execute_approvals_with(move |cmd: ExecuteTrade| {
            log.lock().unwrap().push(cmd.trade_id);
        });
        let RiskDecision::Approved { trade_id, .. } =
            risk.decide_at(opp.clone(), &books, &bus, now)
        else {
            panic!("refused");
        };
        assert_eq!(*started.lock().unwrap(), vec![trade_id.clone()]);
        assert_eq!(
            executions.try_recv().map(|c| c.trade_id),
            Some(trade_id),
            "still published for other consumers"
        );
        // Unregistered: the next approval is only published.
        drop(registration);
        risk.trade_finished(&opp.pair, Usd::ZERO, false);
        risk.set_exposure(opp.pair.clone(), Usd::ZERO);
        assert!(matches!(
            risk.decide_at(opp, &books, &bus, now),
            RiskDecision::Approved { .. }
        ));
        assert_eq!(started.lock().unwrap().len(), 1);
        assert!(executions.try_recv().is_some());
    }

    #[test]
    fn the_gate_decides_inside_the_publish_until_its_last_handle_goes() {
        let (_, books, _, opp, _) = setup_at(true, now_micros());
        let bus = Arc::new(Bus::default());
        let risk = start_risk_gate(
            RiskGate::new(RiskLimits::default(), true),
            Arc::new(books),
            &bus,
        );
        let found = ArbitrageOpportunityFound {
            opportunity: opp.clone(),
        };
        bus.opportunities.publish(opp.pair.clone(), found.clone());
        // No task to wait for: the publish returned with the decision made.
        assert_eq!(risk.opportunities_seen(), 1);
        assert!(
            risk.state().in_flight.contains_key(&opp.pair),
            "{:?}",
            risk.snapshot().recent_refusals
        );
        let kept = RiskHandle {
            shared: risk.shared.clone(),
            _gate: None,
        };
        drop(risk);
        bus.opportunities.publish(opp.pair.clone(), found);
        assert_eq!(
            kept.opportunities_seen(),
            1,
            "unsubscribed with its handles"
        );
    }

    #[test]
    fn trade_ids_are_unique_and_time_ordered_even_when_the_clock_stands_still() {
        let (risk, books, bus, opp, now) = setup(true);
        let mut ids = Vec::new();
        for _ in 0..3 {
            match risk.decide_at(opp.clone(), &books, &bus, now) {
                RiskDecision::Approved { trade_id, .. } => ids.push(trade_id),
                other => panic!("{other:?}"),
            }
            risk.trade_finished(&opp.pair, Usd::ZERO, false);
            risk.set_exposure(opp.pair.clone(), Usd::ZERO);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn a_refusal_is_counted_kept_and_announced() {
        let (risk, books, bus, opp, now) = setup(false);
        let mut decisions = risk.decisions();
        risk.decide_at(opp, &books, &bus, now);
        let Ok(RiskDecision::Refused(r)) = decisions.try_recv() else {
            panic!("no refusal announced");
        };
        assert_eq!(r.refusal, Refusal::RulesNotMatched);
        let snap = risk.snapshot();
        assert_eq!(snap.refusals["rules_not_matched"], 1);
        assert_eq!(snap.recent_refusals, vec![r]);
    }

    #[test]
    fn an_opportunity_on_an_unknown_market_is_refused() {
        let (risk, _, bus, mut opp, now) = setup(true);
        opp.pair = PairId("gone".into());
        let decision = risk.decide_at(opp, &BookStore::new(), &bus, now);
        assert!(
            matches!(&decision, RiskDecision::Refused(r) if r.refusal == Refusal::UnknownMarket),
            "{decision:?}"
        );
    }

    #[test]
    fn kill_runs_the_cancel_open_orders_hook_and_latches() {
        let (risk, _, _, _, _) = setup(true);
        let cancelled = Arc::new(AtomicU64::new(0));
        let count = cancelled.clone();
        risk.on_kill_cancel_open_orders(move || {
            count.fetch_add(1, Ordering::Relaxed);
        });
        risk.kill();
        assert_eq!(cancelled.load(Ordering::Relaxed), 1);
        assert_eq!(risk.resume(), Err(KillSwitchLatched));
        risk.reset_kill_switch();
        assert!(risk.state().paused.is_some());
        assert_eq!(risk.resume(), Ok(()));
    }

    #[test]
    fn invalid_limits_are_refused_and_the_old_ones_kept() {
        let (risk, ..) = setup(true);
        let bad = RiskLimits {
            max_book_age_ms: 0,
            ..RiskLimits::default()
        };
        assert!(risk.set_limits(bad).is_err());
        assert_eq!(risk.limits(), RiskLimits::default());
    }
}
