//! The simulated trading accounts: one cash balance, positions, orders and
//! fills per venue, and the taker-side matching both venues' order endpoints
//! share (walk the opposite side of a book best-first, take what the limit
//! allows, remove it from the book and put the change on the feed).
//!
//! Money is exact: cash and positions are `Decimal`s, fees come from the
//! domain fee models (Kalshi ceil-to-cent per fill, §1.8; Polymarket on top of
//! the collateral, ceil to $0.0001, §2.9). Orders only ever *take*: a
//! good-till-cancelled remainder is recorded as resting (listed, cancellable)
//! but is not shown in the simulated book and never matched later.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rust_decimal::Decimal;

use super::market::{BookDiff, LevelDiff};
use super::{FeedEvent, Shared, SimHandle, SimState, read};
use crate::domain::{KalshiFees, Level, OrderBook, PolymarketFees, Price, Side, Size, Venue};
use crate::venues::polymarket::ApiCreds;

/// Starting cash of each simulated account, in dollars.
pub const DEFAULT_BALANCE: i64 = 1_000;

/// Where an order stands once the endpoint has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOrderStatus {
    /// Nothing left: filled, or the unfilled rest was cancelled (FOK/IOC/FAK).
    Executed,
    /// A good-till-cancelled remainder.
    Resting,
    Canceled,
}

/// One order as the simulator remembers it, in the venue's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOrder {
    pub order_id: String,
    /// Kalshi's `client_order_id`; empty on Polymarket.
    pub client_order_id: String,
    /// Kalshi ticker or Polymarket token id.
    pub market: String,
    /// Kalshi `bid`/`ask` (YES leg), Polymarket `BUY`/`SELL`.
    pub side: String,
    /// Kalshi: the YES price; Polymarket: the implied limit price.
    pub price: Decimal,
    pub count: Size,
    pub filled: Size,
    pub fees: Decimal,
    pub time_in_force: String,
    pub status: SimOrderStatus,
    pub ts_ms: u64,
}

impl SimOrder {
    pub fn remaining(&self) -> Size {
        self.count.checked_sub(self.filled).unwrap_or(Size::ZERO)
    }
}

/// One execution against one book level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFill {
    pub fill_id: String,
    pub order_id: String,
    pub market: String,
    /// Kalshi `bid`/`ask`, Polymarket `BUY`/`SELL`.
    pub side: String,
    /// Kalshi: the YES price; Polymarket: the token price.
    pub price: Price,
    pub size: Size,
    pub fee: Decimal,
    /// Kalshi: the position (+YES/−NO) before this fill, to name buy/sell.
    pub position_before: Decimal,
    pub ts_ms: u64,
}

/// How the simulated chain ends a Polymarket trade (PROTOCOLS.md §2.4: a
/// matched trade is final only at `CONFIRMED`; `FAILED` means it did not happen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TradeOutcome {
    #[default]
    Confirm,
    /// `RETRYING` then `FAILED`; the fill is taken back from the account.
    Fail,
    /// The first `n` trades of every match confirm, the rest fail: one order
    /// matched against several resting orders, partly undone on-chain.
    FailAfterFirst(usize),
}

impl TradeOutcome {
    /// Whether the `index`-th trade (0-based) of a match ends `FAILED`.
    pub fn fails(self, index: usize) -> bool {
        match self {
            TradeOutcome::Confirm => false,
            TradeOutcome::Fail => true,
            TradeOutcome::FailAfterFirst(n) => index >= n,
        }
    }
}

/// The settlement knob: how trades end, and the wait between two statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub outcome: TradeOutcome,
    pub step: std::time::Duration,
}

impl Default for Settlement {
    fn default() -> Self {
        Settlement {
            outcome: TradeOutcome::Confirm,
            step: std::time::Duration::from_millis(20),
        }
    }
}

/// Where a simulated Polymarket trade stands (the venue's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimTradeStatus {
    Matched,
    Mined,
    Retrying,
    Confirmed,
    Failed,
}

impl SimTradeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SimTradeStatus::Matched => "MATCHED",
            SimTradeStatus::Mined => "MINED",
            SimTradeStatus::Retrying => "RETRYING",
            SimTradeStatus::Confirmed => "CONFIRMED",
            SimTradeStatus::Failed => "FAILED",
        }
    }
}

/// One Polymarket trade: our taker order against one resting maker order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTrade {
    /// Also the fill id of the account's fill.
    pub trade_id: String,
    pub taker_order_id: String,
    pub maker_order_id: String,
    /// Condition id.
    pub market: String,
    pub asset_id: String,
    /// "Yes" / "No".
    pub outcome: &'static str,
    /// "BUY" / "SELL" (the taker's side).
    pub side: String,
    pub price: Price,
    pub size: Size,
    pub fee: Decimal,
    pub status: SimTradeStatus,
    pub match_time_s: u64,
    pub last_update_s: u64,
    pub transaction_hash: Option<String>,
    /// What the fill did to the account, to take it back if the trade fails.
    pub cash_delta: Decimal,
    pub position_delta: Decimal,
}

/// A scheduled Kalshi series fee change (`GET /series/fee_changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFeeChange {
    pub id: String,
    pub series_ticker: String,
    /// `quadratic`, `quadratic_with_maker_fees`, `flat`.
    pub fee_type: String,
    pub fee_multiplier: Decimal,
    /// RFC 3339.
    pub scheduled_ts: String,
}

/// One venue's account.
#[derive(Debug, Clone)]
pub struct Account {
    pub cash: Decimal,
    /// Kalshi: contracts per ticker, +YES/−NO. Polymarket: shares per token.
    pub positions: BTreeMap<String, Decimal>,
    pub fees_paid: BTreeMap<String, Decimal>,
    /// Dollars traded per market (price × size, both directions).
    pub traded: BTreeMap<String, Decimal>,
    pub orders: Vec<SimOrder>,
    /// Kalshi client order ids / Polymarket order hashes already used.
    pub used_ids: HashSet<String>,
    pub fills: Vec<SimFill>,
    /// Good-till-date orders: when each stops resting (Unix seconds).
    pub expiries: BTreeMap<String, u64>,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            cash: Decimal::from(DEFAULT_BALANCE),
            positions: BTreeMap::new(),
            fees_paid: BTreeMap::new(),
            traded: BTreeMap::new(),
            expiries: BTreeMap::new(),
            orders: Vec::new(),
            used_ids: HashSet::new(),
            fills: Vec::new(),
        }
    }
}

impl Account {
    pub fn position(&self, market: &str) -> Decimal {
        self.positions.get(market).copied().unwrap_or_default()
    }

    pub fn order_mut(&mut self, order_id: &str) -> Option<&mut SimOrder> {
        self.orders.iter_mut().find(|o| o.order_id == order_id)
    }

    /// Books one fill: cash, position, fees and volume.
    pub fn book_fill(&mut self, fill: SimFill, cash_delta: Decimal, position_delta: Decimal) {
        self.cash += cash_delta - fill.fee;
        *self.positions.entry(fill.market.clone()).or_default() += position_delta;
        *self.fees_paid.entry(fill.market.clone()).or_default() += fill.fee;
        *self.traded.entry(fill.market.clone()).or_default() +=
            fill.price.value() * fill.size.value();
        self.fills.push(fill);
    }
}

/// Both simulated accounts and what the order endpoints check against.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub kalshi: Account,
    pub polymarket: Account,
    /// `None` accepts any (or no) L2 headers, like `kalshi_auth: None`
    /// (unless keys were created through `POST /auth/api-key`).
    pub polymarket_creds: Option<ApiCreds>,
    /// Keys created over L1 auth: (signer address, nonce, credentials).
    pub polymarket_api_keys: Vec<(ethers_core::types::Address, u64, ApiCreds)>,
    /// Polymarket trades, oldest first, with their settlement status.
    pub polymarket_trades: Vec<SimTrade>,
    pub polymarket_settlement: Settlement,
    /// What `GET /version` says and which EIP-712 domain orders must use.
    pub polymarket_version: u32,
    pub kalshi_fees: KalshiFees,
    pub kalshi_fee_changes: Vec<SimFeeChange>,
    pub polymarket_fees: PolymarketFees,
    next_id: u64,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            kalshi: Account::default(),
            polymarket: Account::default(),
            polymarket_creds: None,
            polymarket_api_keys: Vec::new(),
            polymarket_trades: Vec::new(),
            polymarket_settlement: Settlement::default(),
            polymarket_version: 2,
            kalshi_fees: KalshiFees::default(),
            kalshi_fee_changes: Vec::new(),
            // Politics/finance category rate of the current fee table (§2.9).
            polymarket_fees: PolymarketFees {
                rate: Decimal::new(4, 2),
                exponent: 1,
            },
            next_id: 0,
        }
    }
}

impl Accounts {
    /// Every L2 credential the CLOB accepts; empty = accept any headers.
    pub fn polymarket_accepted(&self) -> Vec<ApiCreds> {
        self.polymarket_creds
            .iter()
            .cloned()
            .chain(self.polymarket_api_keys.iter().map(|(_, _, c)| c.clone()))
            .collect()
    }

    pub fn account_mut(&mut self, venue: Venue) -> &mut Account {
        match venue {
            Venue::Kalshi => &mut self.kalshi,
            Venue::Polymarket => &mut self.polymarket,
        }
    }

    pub fn account(&self, venue: Venue) -> &Account {
        match venue {
            Venue::Kalshi => &self.kalshi,
            Venue::Polymarket => &self.polymarket,
        }
    }

    /// A fresh, unguessable-enough id: a random UUID-v4-shaped string.
    pub fn new_uuid(&mut self) -> String {
        use rand::Rng;
        self.next_id += 1;
        let mut rng = rand::thread_rng();
        let a: u32 = rng.r#gen();
        let b: u16 = rng.r#gen();
        let c: u16 = rng.r#gen::<u16>() & 0x0fff;
        let d: u16 = (rng.r#gen::<u16>() & 0x3fff) | 0x8000;
        let e: u64 = rng.r#gen::<u64>() & 0xffff_ffff_ffff;
        format!("{a:08x}-{b:04x}-4{c:03x}-{d:04x}-{e:012x}")
    }
}

pub fn write(s: &Shared) -> std::sync::RwLockWriteGuard<'_, SimState> {
    s.write().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    crate::strategy::now_micros() / 1_000
}

/// What a taker gets from `levels` (best first) for up to `want`, stopping at
/// the first level `acceptable` refuses.
pub fn walk(
    levels: impl Iterator<Item = Level>,
    want: Size,
    acceptable: impl Fn(Price) -> bool,
) -> Vec<Level> {
    let mut left = want;
    let mut out = Vec::new();
    for l in levels {
        if left.is_zero() || !acceptable(l.price) {
            break;
        }
        let take = l.size.min(left);
        if take.is_zero() {
            continue;
        }
        left = left.checked_sub(take).unwrap_or(Size::ZERO);
        out.push(Level::new(l.price, take));
    }
    out
}

pub fn total(levels: &[Level]) -> Size {
    let sum: Decimal = levels.iter().map(|l| l.size.value()).sum();
    Size::new(sum).unwrap_or(Size::ZERO)
}

/// Takes `size` at `price` off `side` of `book` (at most what is there) and
/// records the change; an absent level is left alone.
pub fn take(
    book: &mut OrderBook,
    side: Side,
    price: Price,
    size: Size,
    diffs: &mut Vec<LevelDiff>,
) {
    let have = match side {
        Side::Bid => book.bids().find(|l| l.price == price),
        Side::Ask => book.asks().find(|l| l.price == price),
    };
    let Some(have) = have else { return };
    let taken = have.size.min(size);
    let left = have.size.checked_sub(taken).unwrap_or(Size::ZERO);
    book.set_level(side, price, left);
    diffs.push(LevelDiff {
        side,
        price,
        new_size: left,
        delta: -taken.value(),
    });
}

/// Puts a book change on the feed; called under the write lock, like the driver.
pub fn broadcast(st: &SimState, pair: usize, diff: BookDiff) {
    if diff.is_empty() {
        return;
    }
    let at_ms = st.started.elapsed().as_millis() as u64;
    let _ = st.feed.send(FeedEvent::Book {
        pair,
        diff: Arc::new(diff),
        at_ms,
    });
}

/// Cancels the good-till-date orders whose time has come (the venues do it
/// themselves; the simulator does it whenever an order endpoint is used).
pub fn expire_due(st: &mut SimState) {
    let now_s = now_ms() / 1_000;
    for venue in [Venue::Kalshi, Venue::Polymarket] {
        let due: Vec<String> = st
            .accounts
            .account(venue)
            .expiries
            .iter()
            .filter(|(_, until)| **until <= now_s)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let account = st.accounts.account_mut(venue);
            account.expiries.remove(&id);
            let Some(o) = account
                .order_mut(&id)
                .filter(|o| o.status == SimOrderStatus::Resting)
            else {
                continue;
            };
            o.status = SimOrderStatus::Canceled;
            let o = o.clone();
            if venue == Venue::Polymarket {
                super::polymarket_user::push_order(st, &o, "CANCELLATION");
            }
            lift(st, &id);
        }
    }
}

/// Takes a cancelled order out of whichever book shows it, and says so on the feed.
pub fn lift(st: &mut SimState, order_id: &str) {
    for i in 0..st.markets.len() {
        let diff = st.markets[i].unrest(order_id);
        broadcast(st, i, diff);
    }
}

/// Test and demo controls for the simulated accounts.
impl SimHandle {
    /// Sets a venue account's cash, in dollars.
    pub fn set_balance(&self, venue: Venue, dollars: Decimal) {
        write(&self.state).accounts.account_mut(venue).cash = dollars;
    }

    /// A venue account's cash, in dollars.
    pub fn balance(&self, venue: Venue) -> Decimal {
        read(&self.state).accounts.account(venue).cash
    }

    /// Kalshi: contracts on a ticker (+YES/−NO); Polymarket: shares of a token.
    pub fn position(&self, venue: Venue, market: &str) -> Decimal {
        read(&self.state).accounts.account(venue).position(market)
    }

    /// The L2 credentials `POST /order` and the other private endpoints accept.
    pub fn set_polymarket_creds(&self, creds: ApiCreds) {
        write(&self.state).accounts.polymarket_creds = Some(creds);
    }

    pub fn set_polymarket_fees(&self, fees: PolymarketFees) {
        write(&self.state).accounts.polymarket_fees = fees;
    }

    /// How Polymarket trades settle from now on (confirm or fail, and how fast).
    pub fn set_polymarket_settlement(&self, settlement: Settlement) {
        write(&self.state).accounts.polymarket_settlement = settlement;
    }

    /// The order version `GET /version` announces and `POST /order` requires.
    pub fn set_polymarket_version(&self, version: u32) {
        write(&self.state).accounts.polymarket_version = version;
    }

    /// The simulated Polymarket trades, oldest first.
    pub fn polymarket_trades(&self) -> Vec<SimTrade> {
        read(&self.state).accounts.polymarket_trades.clone()
    }

    /// Announces a Kalshi series fee change on `GET /series/fee_changes`.
    pub fn add_kalshi_fee_change(&self, change: SimFeeChange) {
        write(&self.state).accounts.kalshi_fee_changes.push(change);
    }

    pub fn set_kalshi_fees(&self, fees: KalshiFees) {
        write(&self.state).accounts.kalshi_fees = fees;
    }

    /// Replaces a pair's books with exact levels once the driver has built
    /// the first ones (so its first tick cannot overwrite them), and broadcasts
    /// the change so connected feeds follow.
    pub async fn replace_books(&self, pair: usize, books: super::VenueBooks) {
        let mut feed = {
            let st = read(&self.state);
            let built = st
                .markets
                .get(pair)
                .is_some_and(|m| !m.books().kalshi_yes.is_empty());
            if built {
                None
            } else {
                Some(st.feed.subscribe())
            }
        };
        while let Some(rx) = feed.as_mut() {
            match rx.recv().await {
                Ok(FeedEvent::Book { pair: p, .. }) if p == pair => feed = None,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
        let mut st = write(&self.state);
        let Some(m) = st.markets.get_mut(pair) else {
            return;
        };
        let diff = m.replace_books(books);
        broadcast(&st, pair, diff);
    }

    /// The fills recorded on a venue, oldest first.
    /// Every order a venue account received, oldest first, as it stands now.
    pub fn orders(&self, venue: Venue) -> Vec<SimOrder> {
        read(&self.state).accounts.account(venue).orders.clone()
    }

    pub fn fills(&self, venue: Venue) -> Vec<SimFill> {
        read(&self.state).accounts.account(venue).fills.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    #[test]
    fn walk_stops_at_the_limit_and_the_wanted_size() {
        let mut b = OrderBook::new();
        b.set_level(Side::Ask, p("0.40"), Size::whole(10));
        b.set_level(Side::Ask, p("0.41"), Size::whole(10));
        b.set_level(Side::Ask, p("0.45"), Size::whole(10));
        let got = walk(b.asks(), Size::whole(15), |x| x <= p("0.41"));
        assert_eq!(
            got,
            vec![
                Level::new(p("0.40"), Size::whole(10)),
                Level::new(p("0.41"), Size::whole(5))
            ]
        );
        let got = walk(b.asks(), Size::whole(100), |x| x <= p("0.41"));
        assert_eq!(total(&got), Size::whole(20));
        let mut diffs = Vec::new();
        take(&mut b, Side::Ask, p("0.41"), Size::whole(5), &mut diffs);
        take(&mut b, Side::Ask, p("0.99"), Size::whole(5), &mut diffs);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].new_size, Size::whole(5));
    }
}
