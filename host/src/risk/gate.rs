//! The gate itself: a pure decision on one opportunity, given the limits, the
//! facts about the pair's books and what is already at risk.
//!
//! No clock, no locks, no I/O: the caller passes `now` and a copy of the facts,
//! so every rule is tested with plain values. Rules run from the most general
//! (kill switch, pause) to the most specific (cash on each venue), and the first
//! one that fails names the refusal.

use std::collections::BTreeMap;

use serde::Serialize;

use super::limits::RiskLimits;
use crate::domain::{MarketPair, MarketState, Opportunity, PairId, UnixMicros, Usd, Venue};

const MICROS_PER_MS: u64 = 1_000;
const MICROS_PER_DAY: u64 = 86_400 * 1_000_000;

/// The UTC day `at` falls in (days since the Unix epoch): the daily loss limit
/// resets at 00:00 UTC, the day both venues' statements use.
pub fn utc_day(at: UnixMicros) -> u64 {
    at / MICROS_PER_DAY
}

/// Why an opportunity was not traded. `reason` in JSON is [`Refusal::reason`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    #[error("the kill switch is latched")]
    KillSwitch,
    #[error("trading is paused")]
    Paused,
    #[error("the {venue} balance is below the shutdown balance: trading halted")]
    BalanceBelowShutdown { venue: Venue },
    #[error("today's realised loss reached the daily loss limit")]
    DailyLossLimit,
    #[error("the market is not in the book store")]
    UnknownMarket,
    #[error("nobody confirmed both venues settle this market the same way")]
    RulesNotMatched,
    #[error("a trade on this market is still in flight")]
    TradeInFlight,
    #[error("a leg failed on this market recently: cooling down")]
    Cooldown,
    #[error("the {venue} book is stale or was never synchronised")]
    StaleBook { venue: Venue },
    #[error("the {venue} book is {age_ms} ms old")]
    BookTooOld { venue: Venue, age_ms: u64 },
    #[error("net profit per contract is below the minimum")]
    BelowMinProfitPerContract,
    #[error("net profit of the trade is below the minimum")]
    BelowMinProfitPerTrade,
    #[error("the size is above the most contracts per trade")]
    SizeAboveMax,
    #[error("the trade would take the market's exposure above its limit")]
    MarketExposure,
    #[error("the trade would take the total exposure above its limit")]
    TotalExposure,
    #[error("the {venue} balance is not known yet")]
    BalanceUnknown { venue: Venue },
    #[error("the {venue} balance is below the minimum balance to trade")]
    BalanceBelowMinimum { venue: Venue },
    #[error("not enough cash on {venue} for its leg and fee")]
    InsufficientCash { venue: Venue },
}

impl Refusal {
    /// Every reason code, in rule order (the metrics list each, even at 0).
    pub const REASONS: [&'static str; 18] = [
        "kill_switch",
        "paused",
        "balance_below_shutdown",
        "daily_loss_limit",
        "unknown_market",
        "rules_not_matched",
        "trade_in_flight",
        "cooldown",
        "stale_book",
        "book_too_old",
        "below_min_profit_per_contract",
        "below_min_profit_per_trade",
        "size_above_max",
        "market_exposure",
        "total_exposure",
        "balance_unknown",
        "balance_below_minimum",
        "insufficient_cash",
    ];

    /// The refusal's code, as in [`Refusal::REASONS`] and the JSON `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::KillSwitch => "kill_switch",
            Refusal::Paused => "paused",
            Refusal::BalanceBelowShutdown { .. } => "balance_below_shutdown",
            Refusal::DailyLossLimit => "daily_loss_limit",
            Refusal::UnknownMarket => "unknown_market",
            Refusal::RulesNotMatched => "rules_not_matched",
            Refusal::TradeInFlight => "trade_in_flight",
            Refusal::Cooldown => "cooldown",
            Refusal::StaleBook { .. } => "stale_book",
            Refusal::BookTooOld { .. } => "book_too_old",
            Refusal::BelowMinProfitPerContract => "below_min_profit_per_contract",
            Refusal::BelowMinProfitPerTrade => "below_min_profit_per_trade",
            Refusal::SizeAboveMax => "size_above_max",
            Refusal::MarketExposure => "market_exposure",
            Refusal::TotalExposure => "total_exposure",
            Refusal::BalanceUnknown { .. } => "balance_unknown",
            Refusal::BalanceBelowMinimum { .. } => "balance_below_minimum",
            Refusal::InsufficientCash { .. } => "insufficient_cash",
        }
    }
}

/// What the gate needs to know about one venue's books of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BookFacts {
    /// The feed flagged the books as untrustworthy (gap, disconnect).
    pub stale: bool,
    /// Last change applied; `None` before the first snapshot.
    pub updated_at: Option<UnixMicros>,
}

/// A copy of what the gate reads from a pair's books, taken under the book lock
/// and checked after it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MarketFacts {
    pub rules_match: bool,
    pub kalshi: BookFacts,
    pub polymarket: BookFacts,
}

impl MarketFacts {
    /// `pair` is the store's current pair (its `rules_match` is authoritative).
    pub fn of(pair: &MarketPair, state: &MarketState) -> Self {
        let book = |venue| {
            let v = state.venue(venue);
            BookFacts {
                stale: v.stale,
                updated_at: v.updated_at,
            }
        };
        MarketFacts {
            rules_match: pair.rules_match,
            kalshi: book(Venue::Kalshi),
            polymarket: book(Venue::Polymarket),
        }
    }

    pub fn venue(&self, venue: Venue) -> BookFacts {
        match venue {
            Venue::Kalshi => self.kalshi,
            Venue::Polymarket => self.polymarket,
        }
    }
}

/// An approval, with the cash the trade ties up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approved {
    /// Both legs' cost and worst-case fees: what the market's exposure grows by.
    pub committed: Usd,
    /// Cash each venue's leg needs (price × size + worst-case fee).
    pub cash: BTreeMap<Venue, Usd>,
}

/// A trade the gate approved whose result the executor has not reported yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InFlight {
    pub trade_id: String,
    pub committed: Usd,
    pub cash: BTreeMap<Venue, Usd>,
    pub since: UnixMicros,
}

/// Why trading is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum PauseCause {
    Operator,
    KillSwitch,
    BalanceBelowShutdown { venue: Venue },
}

/// The kill switch is latched: only an explicit reset clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the kill switch is latched: reset it first (POST /kill/reset)")]
pub struct KillSwitchLatched;

/// What is at risk right now, and the switches that stop trading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RiskState {
    /// `Some` while trading is paused.
    pub paused: Option<PauseCause>,
    /// Latched by `kill`, cleared only by `reset_kill_switch`.
    pub kill_switch: bool,
    pub in_flight: BTreeMap<PairId, InFlight>,
    /// Cash held in positions per market (filled trades awaiting settlement).
    pub exposure: BTreeMap<PairId, Usd>,
    /// Realised P&L on [`RiskState::pnl_day`] (UTC days since the epoch).
    pub realised_pnl_today: Usd,
    pub pnl_day: u64,
    pub last_leg_failure: BTreeMap<PairId, UnixMicros>,
    /// Last balance each venue reported.
    pub balances: BTreeMap<Venue, Usd>,
}

impl RiskState {
    /// Held plus in-flight cash on one market.
    pub fn market_exposure(&self, pair: &PairId) -> Usd {
        let held = self.exposure.get(pair).copied().unwrap_or_default();
        let flying = self.in_flight.get(pair).map(|f| f.committed);
        held + flying.unwrap_or_default()
    }

    /// Held plus in-flight cash across all markets.
    pub fn total_exposure(&self) -> Usd {
        let held: Usd = self.exposure.values().copied().sum();
        let flying: Usd = self.in_flight.values().map(|f| f.committed).sum();
        held + flying
    }

    /// Realised P&L of the UTC day `now` falls in (zero on a new day).
    pub fn realised_pnl_on(&self, now: UnixMicros) -> Usd {
        if utc_day(now) == self.pnl_day {
            self.realised_pnl_today
        } else {
            Usd::ZERO
        }
    }

    /// Cash on `venue` not already promised to a trade in flight; `None` if unknown.
    pub fn available_cash(&self, venue: Venue) -> Option<Usd> {
        let balance = *self.balances.get(&venue)?;
        let promised: Usd = self
            .in_flight
            .values()
            .filter_map(|f| f.cash.get(&venue).copied())
            .sum();
        Some(balance - promised)
    }

    pub fn pause(&mut self, cause: PauseCause) {
        // A kill or a shutdown keeps its cause when an operator also pauses.
        if self.paused.is_none() || cause != PauseCause::Operator {
            self.paused = Some(cause);
        }
    }

    pub fn resume(&mut self) -> Result<(), KillSwitchLatched> {
        if self.kill_switch {
            return Err(KillSwitchLatched);
        }
        self.paused = None;
        Ok(())
    }

    /// Latches the kill switch and pauses.
    pub fn kill(&mut self) {
        self.kill_switch = true;
        self.paused = Some(PauseCause::KillSwitch);
    }

    /// Clears the kill switch; trading stays paused until resumed.
    pub fn reset_kill_switch(&mut self) {
        self.kill_switch = false;
    }

    /// Records a venue balance; one below the shutdown balance halts trading.
    pub fn set_balance(&mut self, venue: Venue, balance: Usd, limits: &RiskLimits) {
        self.balances.insert(venue, balance);
        if balance < limits.shutdown_balance {
            self.pause(PauseCause::BalanceBelowShutdown { venue });
        }
    }

    /// What a refusal changes: a balance below shutdown halts trading.
    pub fn note_refusal(&mut self, refusal: &Refusal) {
        if let Refusal::BalanceBelowShutdown { venue } = *refusal {
            self.pause(PauseCause::BalanceBelowShutdown { venue });
        }
    }

    /// Marks `pair` in flight with the cash `approved` ties up.
    pub fn begin_trade(
        &mut self,
        pair: PairId,
        trade_id: String,
        approved: &Approved,
        now: UnixMicros,
    ) {
        self.in_flight.insert(
            pair,
            InFlight {
                trade_id,
                committed: approved.committed,
                cash: approved.cash.clone(),
                since: now,
            },
        );
    }

    /// The executor's report: frees the in-flight slot, books the P&L, and keeps
    /// the committed cash as held exposure unless a leg failed (the executor
    /// unwinds a lone leg, so nothing stays held). A failed leg starts the
    /// market's cooldown. Returns the trade that was in flight, if any.
    pub fn finish_trade(
        &mut self,
        pair: &PairId,
        pnl: Usd,
        leg_failed: bool,
        now: UnixMicros,
    ) -> Option<InFlight> {
        let done = self.in_flight.remove(pair);
        if let (Some(trade), false) = (&done, leg_failed) {
            let held = self.exposure.entry(pair.clone()).or_default();
            *held = *held + trade.committed;
        }
        if utc_day(now) != self.pnl_day {
            self.pnl_day = utc_day(now);
            self.realised_pnl_today = Usd::ZERO;
        }
        self.realised_pnl_today = self.realised_pnl_today + pnl;
        if leg_failed {
            self.last_leg_failure.insert(pair.clone(), now);
        }
        done
    }

    /// Today's realised P&L as the trade store has it, at start-up: a restart
    /// does not reset the daily loss limit.
    pub fn restore_realised_pnl(&mut self, pnl_today: Usd, now: UnixMicros) {
        self.pnl_day = utc_day(now);
        self.realised_pnl_today = pnl_today;
    }

    /// Replaces a market's held exposure (reconciliation, settlement).
    pub fn set_exposure(&mut self, pair: PairId, held: Usd) {
        if held.value().is_zero() {
            self.exposure.remove(&pair);
        } else {
            self.exposure.insert(pair, held);
        }
    }
}

/// The gate: limits plus whether orders really leave the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskGate {
    pub limits: RiskLimits,
    /// In a dry run no money moves, so a venue balance nobody reported yet is
    /// not a refusal; a reported one is still checked, so a dry run shows what
    /// live trading would refuse.
    pub dry_run: bool,
}

impl RiskGate {
    pub fn new(limits: RiskLimits, dry_run: bool) -> Self {
        RiskGate { limits, dry_run }
    }

    /// Approves `opp` or names the first rule it breaks.
    pub fn check(
        &self,
        opp: &Opportunity,
        market: &MarketFacts,
        state: &RiskState,
        now: UnixMicros,
    ) -> Result<Approved, Refusal> {
        let l = &self.limits;
        if state.kill_switch {
            return Err(Refusal::KillSwitch);
        }
        if state.paused.is_some() {
            return Err(Refusal::Paused);
        }
        for venue in Venue::ALL {
            if let Some(&balance) = state.balances.get(&venue)
                && balance < l.shutdown_balance
            {
                return Err(Refusal::BalanceBelowShutdown { venue });
            }
        }
        // A zero limit stops at the first realised loss; a flat day still trades.
        let loss_today = -state.realised_pnl_on(now);
        if loss_today.is_positive() && loss_today >= l.daily_loss_limit {
            return Err(Refusal::DailyLossLimit);
        }
        if !market.rules_match {
            return Err(Refusal::RulesNotMatched);
        }
        if state.in_flight.contains_key(&opp.pair) {
            return Err(Refusal::TradeInFlight);
        }
        if let Some(&failed_at) = state.last_leg_failure.get(&opp.pair)
            && now.saturating_sub(failed_at)
                < l.cooldown_after_leg_failure_ms
                    .saturating_mul(MICROS_PER_MS)
        {
            return Err(Refusal::Cooldown);
        }
        for venue in Venue::ALL {
            let book = market.venue(venue);
            let Some(updated_at) = book.updated_at.filter(|_| !book.stale) else {
                return Err(Refusal::StaleBook { venue });
            };
            let age_ms = now.saturating_sub(updated_at) / MICROS_PER_MS;
            if age_ms > l.max_book_age_ms {
                return Err(Refusal::BookTooOld { venue, age_ms });
            }
        }
        if opp.net_edge_per_contract < l.min_profit_per_contract {
            return Err(Refusal::BelowMinProfitPerContract);
        }
        if opp.net_edge < l.min_profit_per_trade || !opp.net_edge.is_positive() {
            return Err(Refusal::BelowMinProfitPerTrade);
        }
        if opp.size > l.max_contracts_per_trade {
            return Err(Refusal::SizeAboveMax);
        }
        let cash: BTreeMap<Venue, Usd> = Venue::ALL
            .into_iter()
            .map(|v| (v, opp.cash_needed(v)))
            .collect();
        let committed: Usd = cash.values().copied().sum();
        if state.market_exposure(&opp.pair) + committed > l.max_exposure_per_market {
            return Err(Refusal::MarketExposure);
        }
        if state.total_exposure() + committed > l.max_total_exposure {
            return Err(Refusal::TotalExposure);
        }
        for venue in Venue::ALL {
            let Some(balance) = state.balances.get(&venue).copied() else {
                if self.dry_run {
                    continue;
                }
                return Err(Refusal::BalanceUnknown { venue });
            };
            if balance < l.minimum_balance {
                return Err(Refusal::BalanceBelowMinimum { venue });
            }
            let available = state.available_cash(venue).unwrap_or(balance);
            if available < cash[&venue] {
                return Err(Refusal::InsufficientCash { venue });
            }
        }
        Ok(Approved { committed, cash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PairFees, PolymarketFees, Price, Size};
    use rust_decimal_macros::dec;

    /// 2025-01-01 12:00:00 UTC.
    const NOW: UnixMicros = 1_735_732_800_000_000;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn market(id: &str) -> PairId {
        PairId(id.into())
    }

    /// The worked example: Kalshi YES 0.40, Polymarket NO 0.55, Polymarket fee
    /// 0.04. Per 100 contracts: net $2.33 ($0.0233 each), Kalshi leg $41.68,
    /// Polymarket leg $55.99, committed $97.67.
    fn opp_on(id: &str, contracts: u64) -> Opportunity {
        let fees = PairFees {
            polymarket: PolymarketFees {
                rate: dec!(0.04),
                exponent: 1,
            },
            ..PairFees::default()
        };
        Opportunity::price(
            market(id),
            "buy-both",
            Venue::Kalshi,
            Price::parse("0.40").unwrap(),
            Price::parse("0.55").unwrap(),
            Size::whole(contracts),
            &fees,
            NOW,
        )
    }

    fn opp() -> Opportunity {
        opp_on("fed", 100)
    }

    fn fresh() -> MarketFacts {
        let book = BookFacts {
            stale: false,
            updated_at: Some(NOW - 100_000),
        };
        MarketFacts {
            rules_match: true,
            kalshi: book,
            polymarket: book,
        }
    }

    fn funded() -> RiskState {
        let mut s = RiskState::default();
        s.balances.insert(Venue::Kalshi, usd("1000"));
        s.balances.insert(Venue::Polymarket, usd("1000"));
        s
    }

    fn gate() -> RiskGate {
        RiskGate::new(RiskLimits::default(), false)
    }

    fn check(state: &RiskState) -> Result<Approved, Refusal> {
        gate().check(&opp(), &fresh(), state, NOW)
    }

    fn in_flight(state: &mut RiskState, id: &str, contracts: u64) {
        let approved = gate()
            .check(&opp_on(id, contracts), &fresh(), state, NOW)
            .unwrap();
        state.begin_trade(market(id), format!("t-{id}"), &approved, NOW);
    }

    #[test]
    fn a_fresh_profitable_funded_opportunity_is_approved_with_the_cash_it_ties_up() {
        let approved = check(&funded()).unwrap();
        assert_eq!(approved.committed, usd("97.67"));
        assert_eq!(approved.cash[&Venue::Kalshi], usd("41.68"));
        assert_eq!(approved.cash[&Venue::Polymarket], usd("55.99"));
    }

    #[test]
    fn the_kill_switch_refuses_before_anything_else() {
        let mut s = funded();
        s.kill();
        assert_eq!(check(&s), Err(Refusal::KillSwitch));
        s.reset_kill_switch();
        assert_eq!(
            check(&s),
            Err(Refusal::Paused),
            "a reset leaves trading paused"
        );
    }

    #[test]
    fn paused_trading_refuses_until_resumed() {
        let mut s = funded();
        s.pause(PauseCause::Operator);
        assert_eq!(check(&s), Err(Refusal::Paused));
        s.resume().unwrap();
        assert!(check(&s).is_ok());
    }

    #[test]
    fn resume_is_refused_while_the_kill_switch_is_latched() {
        let mut s = funded();
        s.kill();
        assert_eq!(s.resume(), Err(KillSwitchLatched));
        assert!(s.kill_switch && s.paused.is_some());
        s.reset_kill_switch();
        assert_eq!(s.resume(), Ok(()));
        assert_eq!(s.paused, None);
    }

    #[test]
    fn an_operator_pause_keeps_the_kill_switch_as_the_cause() {
        let mut s = funded();
        s.kill();
        s.pause(PauseCause::Operator);
        assert_eq!(s.paused, Some(PauseCause::KillSwitch));
    }

    #[test]
    fn a_balance_below_shutdown_refuses_and_halts_trading() {
        let limits = RiskLimits {
            shutdown_balance: usd("50"),
            minimum_balance: usd("100"),
            ..RiskLimits::default()
        };
        let g = RiskGate::new(limits.clone(), false);
        let mut s = funded();
        s.balances.insert(Venue::Polymarket, usd("49.99"));
        let refusal = g.check(&opp(), &fresh(), &s, NOW).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::BalanceBelowShutdown {
                venue: Venue::Polymarket
            }
        );
        s.note_refusal(&refusal);
        assert_eq!(
            s.paused,
            Some(PauseCause::BalanceBelowShutdown {
                venue: Venue::Polymarket
            })
        );
        let mut reported = funded();
        reported.set_balance(Venue::Kalshi, usd("10"), &limits);
        assert!(
            reported.paused.is_some(),
            "a reported low balance halts at once"
        );
    }

    #[test]
    fn the_daily_loss_limit_refuses_until_the_next_utc_day() {
        let mut s = funded();
        s.finish_trade(&market("x"), usd("-100"), true, NOW);
        assert_eq!(check(&s), Err(Refusal::DailyLossLimit));
        let tomorrow = NOW + MICROS_PER_DAY;
        let later = BookFacts {
            stale: false,
            updated_at: Some(tomorrow),
        };
        let facts = MarketFacts {
            kalshi: later,
            polymarket: later,
            ..fresh()
        };
        assert!(gate().check(&opp(), &facts, &s, tomorrow).is_ok());
        s.finish_trade(&market("x"), usd("-99.99"), false, NOW);
        assert_eq!(s.realised_pnl_on(NOW), usd("-199.99"));
    }

    #[test]
    fn a_loss_below_the_daily_limit_still_trades() {
        let mut s = funded();
        s.finish_trade(&market("x"), usd("-99.99"), false, NOW);
        assert!(check(&s).is_ok());
    }

    #[test]
    fn a_pair_whose_rules_do_not_match_is_refused() {
        let facts = MarketFacts {
            rules_match: false,
            ..fresh()
        };
        assert_eq!(
            gate().check(&opp(), &facts, &funded(), NOW),
            Err(Refusal::RulesNotMatched)
        );
    }

    #[test]
    fn a_second_trade_on_a_market_in_flight_is_refused() {
        let mut s = funded();
        in_flight(&mut s, "fed", 100);
        assert_eq!(check(&s), Err(Refusal::TradeInFlight));
        assert!(
            gate().check(&opp_on("cpi", 100), &fresh(), &s, NOW).is_ok(),
            "other markets still trade"
        );
    }

    #[test]
    fn a_leg_failure_cools_down_that_market_only() {
        let mut s = funded();
        in_flight(&mut s, "fed", 100);
        s.finish_trade(&market("fed"), usd("-0.40"), true, NOW - 59_999_000);
        assert_eq!(check(&s), Err(Refusal::Cooldown));
        assert!(gate().check(&opp_on("cpi", 100), &fresh(), &s, NOW).is_ok());
        s.last_leg_failure.insert(market("fed"), NOW - 60_000_000);
        assert!(check(&s).is_ok(), "the cooldown ends after 60 s");
    }

    #[test]
    fn a_stale_book_is_refused_naming_the_venue() {
        let mut facts = fresh();
        facts.polymarket.stale = true;
        assert_eq!(
            gate().check(&opp(), &facts, &funded(), NOW),
            Err(Refusal::StaleBook {
                venue: Venue::Polymarket
            })
        );
    }

    #[test]
    fn a_never_synchronised_book_counts_as_stale() {
        let mut facts = fresh();
        facts.kalshi.updated_at = None;
        assert_eq!(
            gate().check(&opp(), &facts, &funded(), NOW),
            Err(Refusal::StaleBook {
                venue: Venue::Kalshi
            })
        );
    }

    #[test]
    fn a_book_older_than_the_max_age_is_refused_with_its_age() {
        let mut facts = fresh();
        facts.kalshi.updated_at = Some(NOW - 5_001_000);
        assert_eq!(
            gate().check(&opp(), &facts, &funded(), NOW),
            Err(Refusal::BookTooOld {
                venue: Venue::Kalshi,
                age_ms: 5_001
            })
        );
        facts.kalshi.updated_at = Some(NOW - 5_000_000);
        assert!(gate().check(&opp(), &facts, &funded(), NOW).is_ok());
        facts.kalshi.updated_at = Some(NOW + 1_000_000);
        assert!(
            gate().check(&opp(), &facts, &funded(), NOW).is_ok(),
            "clock skew reads as age 0"
        );
    }

    #[test]
    fn an_edge_below_the_minimum_per_contract_is_refused() {
        let g = RiskGate::new(
            RiskLimits {
                min_profit_per_contract: usd("0.0234"),
                ..RiskLimits::default()
            },
            false,
        );
        assert_eq!(
            g.check(&opp(), &fresh(), &funded(), NOW),
            Err(Refusal::BelowMinProfitPerContract)
        );
    }

    #[test]
    fn an_edge_below_the_minimum_per_trade_is_refused() {
        // 20 contracts × $0.0233 = $0.466 < $0.50.
        assert_eq!(
            gate().check(&opp_on("fed", 20), &fresh(), &funded(), NOW),
            Err(Refusal::BelowMinProfitPerTrade)
        );
    }

    #[test]
    fn a_losing_trade_is_refused_even_with_zero_minimums() {
        let g = RiskGate::new(
            RiskLimits {
                min_profit_per_contract: Usd::ZERO,
                min_profit_per_trade: Usd::ZERO,
                ..RiskLimits::default()
            },
            false,
        );
        let mut losing = opp();
        losing.net_edge = Usd::ZERO;
        losing.net_edge_per_contract = Usd::ZERO;
        assert_eq!(
            g.check(&losing, &fresh(), &funded(), NOW),
            Err(Refusal::BelowMinProfitPerTrade)
        );
    }

    #[test]
    fn a_size_above_the_max_is_refused() {
        let g = RiskGate::new(
            RiskLimits {
                max_contracts_per_trade: Size::whole(99),
                ..RiskLimits::default()
            },
            false,
        );
        assert_eq!(
            g.check(&opp(), &fresh(), &funded(), NOW),
            Err(Refusal::SizeAboveMax)
        );
    }

    #[test]
    fn market_exposure_above_its_limit_is_refused() {
        let g = RiskGate::new(
            RiskLimits {
                max_exposure_per_market: usd("150"),
                ..RiskLimits::default()
            },
            false,
        );
        let mut s = funded();
        s.set_exposure(market("fed"), usd("52.33"));
        assert!(
            g.check(&opp(), &fresh(), &s, NOW).is_ok(),
            "exactly at the limit"
        );
        s.set_exposure(market("fed"), usd("52.34"));
        assert_eq!(
            g.check(&opp(), &fresh(), &s, NOW),
            Err(Refusal::MarketExposure)
        );
        s.set_exposure(market("cpi"), usd("400"));
        s.set_exposure(market("fed"), Usd::ZERO);
        assert!(
            g.check(&opp(), &fresh(), &s, NOW).is_ok(),
            "other markets do not count"
        );
    }

    #[test]
    fn total_exposure_counts_every_market_and_trades_in_flight() {
        let g = RiskGate::new(
            RiskLimits {
                max_total_exposure: usd("200"),
                ..RiskLimits::default()
            },
            false,
        );
        let mut s = funded();
        s.set_exposure(market("cpi"), usd("50"));
        assert!(g.check(&opp(), &fresh(), &s, NOW).is_ok());
        let approved = g.check(&opp_on("gdp", 100), &fresh(), &s, NOW).unwrap();
        s.begin_trade(market("gdp"), "t1".into(), &approved, NOW);
        assert_eq!(s.total_exposure(), usd("147.67"));
        assert_eq!(
            g.check(&opp(), &fresh(), &s, NOW),
            Err(Refusal::TotalExposure)
        );
    }

    #[test]
    fn a_balance_below_the_minimum_is_refused() {
        let g = RiskGate::new(
            RiskLimits {
                minimum_balance: usd("500"),
                ..RiskLimits::default()
            },
            false,
        );
        let mut s = funded();
        s.balances.insert(Venue::Kalshi, usd("499.99"));
        assert_eq!(
            g.check(&opp(), &fresh(), &s, NOW),
            Err(Refusal::BalanceBelowMinimum {
                venue: Venue::Kalshi
            })
        );
    }

    #[test]
    fn an_unknown_balance_is_refused_live_but_not_in_a_dry_run() {
        let mut s = funded();
        s.balances.remove(&Venue::Polymarket);
        assert_eq!(
            check(&s),
            Err(Refusal::BalanceUnknown {
                venue: Venue::Polymarket
            })
        );
        let dry = RiskGate::new(RiskLimits::default(), true);
        assert!(dry.check(&opp(), &fresh(), &s, NOW).is_ok());
        s.balances.insert(Venue::Kalshi, usd("1"));
        assert_eq!(
            dry.check(&opp(), &fresh(), &s, NOW),
            Err(Refusal::InsufficientCash {
                venue: Venue::Kalshi
            }),
            "a dry run still checks a balance it knows"
        );
    }

    #[test]
    fn insufficient_cash_is_checked_on_both_venues_including_the_fee() {
        let mut s = funded();
        s.balances.insert(Venue::Kalshi, usd("41.68"));
        assert!(check(&s).is_ok(), "exactly the Kalshi leg and its fee");
        s.balances.insert(Venue::Polymarket, usd("55.98"));
        assert_eq!(
            check(&s),
            Err(Refusal::InsufficientCash {
                venue: Venue::Polymarket
            }),
            "one cent short of the Polymarket leg's $55 plus $0.99 fee"
        );
    }

    #[test]
    fn cash_promised_to_a_trade_in_flight_is_not_available_twice() {
        let mut s = funded();
        s.balances.insert(Venue::Kalshi, usd("80"));
        in_flight(&mut s, "cpi", 100);
        assert_eq!(s.available_cash(Venue::Kalshi), Some(usd("38.32")));
        assert_eq!(
            check(&s),
            Err(Refusal::InsufficientCash {
                venue: Venue::Kalshi
            })
        );
    }

    #[test]
    fn a_finished_trade_frees_its_slot_and_keeps_its_cash_as_exposure() {
        let mut s = funded();
        in_flight(&mut s, "fed", 100);
        assert_eq!(s.market_exposure(&market("fed")), usd("97.67"));
        let done = s.finish_trade(&market("fed"), usd("2.33"), false, NOW);
        assert_eq!(done.map(|t| t.trade_id), Some("t-fed".to_string()));
        assert!(s.in_flight.is_empty());
        assert_eq!(s.exposure[&market("fed")], usd("97.67"));
        assert_eq!(s.realised_pnl_on(NOW), usd("2.33"));
        assert!(!s.last_leg_failure.contains_key(&market("fed")));
    }

    #[test]
    fn a_failed_leg_frees_its_slot_holds_nothing_and_records_the_failure() {
        let mut s = funded();
        in_flight(&mut s, "fed", 100);
        s.finish_trade(&market("fed"), usd("-0.75"), true, NOW);
        assert!(s.in_flight.is_empty());
        assert_eq!(s.market_exposure(&market("fed")), Usd::ZERO);
        assert_eq!(s.realised_pnl_on(NOW), usd("-0.75"));
        assert_eq!(s.last_leg_failure[&market("fed")], NOW);
    }

    #[test]
    fn every_refusal_has_a_listed_reason_code_matching_its_json() {
        let all = [
            Refusal::KillSwitch,
            Refusal::Paused,
            Refusal::BalanceBelowShutdown {
                venue: Venue::Kalshi,
            },
            Refusal::DailyLossLimit,
            Refusal::UnknownMarket,
            Refusal::RulesNotMatched,
            Refusal::TradeInFlight,
            Refusal::Cooldown,
            Refusal::StaleBook {
                venue: Venue::Kalshi,
            },
            Refusal::BookTooOld {
                venue: Venue::Kalshi,
                age_ms: 1,
            },
            Refusal::BelowMinProfitPerContract,
            Refusal::BelowMinProfitPerTrade,
            Refusal::SizeAboveMax,
            Refusal::MarketExposure,
            Refusal::TotalExposure,
            Refusal::BalanceUnknown {
                venue: Venue::Kalshi,
            },
            Refusal::BalanceBelowMinimum {
                venue: Venue::Kalshi,
            },
            Refusal::InsufficientCash {
                venue: Venue::Kalshi,
            },
        ];
        let codes: Vec<_> = all.iter().map(Refusal::reason).collect();
        assert_eq!(codes, Refusal::REASONS);
        for r in &all {
            assert_eq!(serde_json::to_value(r).unwrap()["reason"], r.reason());
        }
    }
}
