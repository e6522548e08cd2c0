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

mod ledger;

pub use ledger::{Ledger, Position, TradeOutcome, TradeRecord};

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::books::{BookStore, PairEntry};
use crate::bus::{Bus, TradeEvent};
use crate::domain::events::{ExecuteTrade, LegFailed, TradeExecuted};
use crate::domain::{
    Action, Fill, Leg, LegStatus, Order, Outcome, Price, Size, TimeInForce, Trade, Usd, Venue,
};
use crate::risk::RiskHandle;
use crate::strategy::now_micros;
use crate::venues::kalshi::rest::KalshiRest;
use crate::venues::polymarket::TickSize;
use crate::venues::polymarket::orders::max_marketable_buy_size;
use crate::venues::polymarket::rest::PolymarketRest;

/// How the executor handles leg risk.
#[derive(Debug, Clone)]
pub struct ExecutionPolicy {
    pub dry_run: bool,
    /// How far past its planned price the missing leg may be retried.
    pub retry_tolerance: Decimal,
    pub retry_attempts: u32,
    pub retry_window: Duration,
}

impl Default for ExecutionPolicy {
    fn default() -> Self {
        ExecutionPolicy {
            dry_run: true,
            retry_tolerance: Decimal::new(1, 2),
            retry_attempts: 2,
            retry_window: Duration::from_millis(500),
        }
    }
}

/// The venues' order endpoints.
pub struct VenueClients {
    pub kalshi: KalshiRest,
    pub polymarket: PolymarketRest,
}

pub struct Executor {
    clients: Arc<VenueClients>,
    books: Arc<BookStore>,
    bus: Arc<Bus>,
    risk: RiskHandle,
    policy: ExecutionPolicy,
    pub ledger: Arc<Ledger>,
}

/// What one leg did.
#[derive(Debug, Clone)]
struct LegResult {
    order: Order,
    fill: Option<Fill>,
    error: Option<String>,
}

impl Executor {
    pub fn new(
        clients: Arc<VenueClients>,
        books: Arc<BookStore>,
        bus: Arc<Bus>,
        risk: RiskHandle,
        policy: ExecutionPolicy,
    ) -> Arc<Self> {
        Self::with_ledger(clients, books, bus, risk, policy, Arc::default())
    }

    /// An executor that records into `ledger` (the host's, so the API sees it).
    pub fn with_ledger(
        clients: Arc<VenueClients>,
        books: Arc<BookStore>,
        bus: Arc<Bus>,
        risk: RiskHandle,
        policy: ExecutionPolicy,
        ledger: Arc<Ledger>,
    ) -> Arc<Self> {
        Arc::new(Executor {
            clients,
            books,
            bus,
            risk,
            policy,
            ledger,
        })
    }

    /// Consumes `ExecuteTrade` from the bus (lossless) until the bus goes away.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut rx = self.bus.executions.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                // One trade per market at a time is the risk gate's rule; markets run in parallel.
                let me = me.clone();
                tokio::spawn(async move { me.execute(cmd).await });
            }
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
            time_in_force: TimeInForce::FillOrKill,
        };
        Some((
            order(o.buy_yes_on, Outcome::Yes, o.yes_price, "yes"),
            order(o.buy_no_on, Outcome::No, o.no_price, "no"),
        ))
    }

    async fn balance(&self, venue: Venue) -> Result<Usd, String> {
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
        Ok(b)
    }

    async fn place(&self, entry: &PairEntry, order: Order) -> LegResult {
        let at = now_micros();
        let outcome = match order.venue {
            Venue::Kalshi => match self
                .clients
                .kalshi
                .create_order(&order, &entry.pair.kalshi_ticker)
                .await
            {
                Ok(r) => Ok(r.to_fill(&order, at)),
                Err(e) => Err(e.to_string()),
            },
            Venue::Polymarket => {
                let token = match order.outcome {
                    Outcome::Yes => &entry.pair.polymarket_yes_token,
                    Outcome::No => &entry.pair.polymarket_no_token,
                };
                let tick = TickSize::parse("0.01").expect("a valid tick");
                match self
                    .clients
                    .polymarket
                    .post_order(&order, token, tick, entry.pair.neg_risk)
                    .await
                {
                    Ok(r) => Ok(r.to_fill(&order, &entry.fees.polymarket, at)),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match outcome {
            Ok(fill) => LegResult {
                order,
                fill,
                error: None,
            },
            Err(e) => LegResult {
                order,
                fill: None,
                error: Some(e),
            },
        }
    }

    fn filled(leg: &LegResult) -> Size {
        leg.fill.as_ref().map_or(Size::ZERO, |f| f.size)
    }

    pub async fn execute(&self, cmd: ExecuteTrade) {
        let pair = cmd.opportunity.pair.clone();
        let Some(entry) = self.books.get(&pair) else {
            self.risk.trade_finished(&pair, Usd::ZERO, false);
            return;
        };
        let Some((yes, no)) = self.legs(&cmd) else {
            self.finish(
                &cmd,
                TradeOutcome::Refused("no size fits both venues' grids".into()),
                Usd::ZERO,
                false,
                None,
            );
            return;
        };
        if self.policy.dry_run {
            tracing::info!(trade = %cmd.trade_id, %pair, size = %yes.size, "dry run: would buy YES on {} and NO on {}", yes.venue, no.venue);
            self.finish(&cmd, TradeOutcome::DryRun, Usd::ZERO, false, None);
            self.risk.set_exposure(pair, Usd::ZERO);
            return;
        }
        // Fresh balances on both venues before the first leg: a shortfall refuses.
        let (kb, pb) = tokio::join!(self.balance(Venue::Kalshi), self.balance(Venue::Polymarket));
        for (venue, balance) in [(Venue::Kalshi, kb), (Venue::Polymarket, pb)] {
            let needed = cmd.opportunity.cash_needed(venue);
            match balance {
                Ok(b) if b >= needed => {}
                Ok(b) => {
                    return self.finish(
                        &cmd,
                        TradeOutcome::Refused(format!(
                            "{venue} balance {b} below the {needed} needed"
                        )),
                        Usd::ZERO,
                        false,
                        None,
                    );
                }
                Err(e) => {
                    return self.finish(
                        &cmd,
                        TradeOutcome::Refused(format!("{venue} balance unknown: {e}")),
                        Usd::ZERO,
                        false,
                        None,
                    );
                }
            }
        }
        let (mut y, mut n) = tokio::join!(self.place(&entry, yes), self.place(&entry, no));
        let (ys, ns) = (Self::filled(&y), Self::filled(&n));
        if ys.is_zero() && ns.is_zero() {
            let why = format!(
                "neither leg filled: yes {}, no {}",
                y.error.clone().unwrap_or_default(),
                n.error.clone().unwrap_or_default()
            );
            return self.finish(
                &cmd,
                TradeOutcome::NotFilled(why),
                Usd::ZERO,
                false,
                Some((y, n)),
            );
        }
        // Leg risk: retry the missing (or short) leg within the tolerance, then unwind the excess.
        if ys != ns {
            let (short, long) = if ys < ns { (&mut y, &n) } else { (&mut n, &y) };
            self.retry_missing(&entry, short, Self::filled(long)).await;
        }
        let (ys, ns) = (Self::filled(&y), Self::filled(&n));
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
            (unwind_pnl, unwind_fill) = self.unwind(&entry, &cmd, excess_leg, excess).await;
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
        let trade = trade(&cmd, &y, &n);
        let pnl = trade.locked_pnl() + unwind_pnl;
        // A leg failed whether or not the unwind sold anything; what is still
        // held shows in the positions.
        let outcome = if legs_differ {
            TradeOutcome::Unwound
        } else {
            TradeOutcome::Hedged
        };
        tracing::info!(
            trade = %cmd.trade_id, %pair, hedged = %trade.hedged_size(), pnl = %pnl, ?outcome,
            total_pnl = %(self.ledger.pnl() + pnl), "trade done"
        );
        let leg_failed = outcome == TradeOutcome::Unwound;
        self.bus
            .trades
            .publish(TradeEvent::Executed(Box::new(TradeExecuted {
                trade: trade.clone(),
            })));
        self.finish_with(&cmd, outcome, pnl, leg_failed, Some((y, n)), unwind_fill);
    }

    async fn retry_missing(&self, entry: &PairEntry, short: &mut LegResult, target: Size) {
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
            let r = self.place(entry, order).await;
            if let Some(f) = r.fill {
                let prior = short.fill.take();
                short.fill = Some(merge(prior, f));
            }
        }
    }

    /// Sells `size` of the leg's outcome at the best bid (IOC); returns the realised P&L of the unwind.
    async fn unwind(
        &self,
        entry: &PairEntry,
        cmd: &ExecuteTrade,
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
        let r = self.place(entry, order).await;
        let sold = r.fill.as_ref().map_or(Size::ZERO, |f| f.size);
        let proceeds = r
            .fill
            .as_ref()
            .map_or(Usd::ZERO, |f| f.price * f.size - f.fee);
        let cost = bought.price * sold + bought.fee.per(bought.size).times(sold);
        tracing::warn!(trade = %cmd.trade_id, venue = %leg.order.venue, %sold, %proceeds, "leg risk: unwound the filled leg");
        (proceeds - cost, r.fill)
    }

    fn finish(
        &self,
        cmd: &ExecuteTrade,
        outcome: TradeOutcome,
        pnl: Usd,
        leg_failed: bool,
        legs: Option<(LegResult, LegResult)>,
    ) {
        self.finish_with(cmd, outcome, pnl, leg_failed, legs, None);
    }

    fn finish_with(
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
        self.ledger.record(TradeRecord {
            trade_id: cmd.trade_id.clone(),
            opportunity: cmd.opportunity.clone(),
            outcome,
            yes_fill,
            no_fill,
            unwind_fill,
            pnl,
            at: now_micros(),
        });
        self.risk
            .trade_finished(&cmd.opportunity.pair, pnl, leg_failed);
    }
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
        fills: r.fill.iter().cloned().collect(),
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
