//! Domain orders → signed Polymarket CLOB orders (PROTOCOLS.md §2.6, vectors §3.3,
//! §3.4, §3.6).
//!
//! Since the 2026-04-28 cut-over the signed struct is the V2 `Order` (no fee,
//! nonce, taker or expiration in it); the exchange domain version is "2", or "3"
//! once the server's `GET /version` says so (§0, §2.1) — [`ExchangeVersion`] is
//! therefore a parameter, never a constant. Amounts are 6-dp integer base units
//! computed with exact decimals; a BUY's share amount is never rounded up (§2.6,
//! §5 item 7: that silently raises the implied price and FAK/FOK orders stop
//! filling). The salt source is injectable so tests reproduce the vectors.

use std::str::FromStr;

use ethers_core::types::{Address, H256, U256};
use ethers_core::utils::{keccak256, to_checksum};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::auth::{PolySigner, eip712_digest, hash_words, word_address, word_u256};
use crate::domain::{Action, Order, Price, Size, TimeInForce, TokenId};

pub const POLYGON: u64 = 137;
pub const AMOY: u64 = 80002;

/// Contracts from clob-client-v2 `src/config.ts` (§2.1 table).
pub const CTF_EXCHANGE_V2: &str = "0xE111180000d2663C0091e4f400237545B87B996B";
pub const NEG_RISK_CTF_EXCHANGE_V2: &str = "0xe2222d279d744050d28e00520010520000310F59";
pub const CTF_EXCHANGE_V3_POLYGON: &str = "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa";
pub const CTF_EXCHANGE_V3_AMOY: &str = "0x9fE6e61422AdB6F610d8597F9684b16912D50C3D";

/// `keccak256` of the V2/V3 type string; pinned by a test against §3.3.
pub const ORDER_TYPE: &str = "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,bytes32 builder)";

/// Base units per dollar / share: collateral (pUSD) and outcome tokens both have
/// 6 decimals (§2.1).
const UNITS: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Why an order could not be built or signed locally (nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("exchange version {0} is not supported (expected 2 or 3)")]
    UnsupportedVersion(u32),
    #[error("no Polymarket exchange contract is known for chain {0}")]
    UnknownChain(u64),
    #[error("tick size {0} is not one Polymarket uses")]
    UnknownTick(String),
    #[error("price {price} is not on the {tick} tick or outside [{tick}, 1 - {tick}]")]
    PriceOffTick { price: Decimal, tick: Decimal },
    #[error("size {0} has more than 2 decimals (Polymarket lot size is 0.01)")]
    SizeTooPrecise(Decimal),
    #[error("size must be positive, got {0}")]
    NonPositiveSize(Decimal),
    #[error(
        "a FOK/FAK buy of {size} at {price} costs {cost}, more than 2 decimals; the largest exact size is {max_size}"
    )]
    MarketablePrecision {
        size: Decimal,
        price: Decimal,
        cost: Decimal,
        max_size: Decimal,
    },
    #[error("amount {0} does not fit the order's integer range")]
    AmountOverflow(Decimal),
    #[error("token id {0} does not fit in 256 bits")]
    TokenIdOverflow(String),
    #[error(
        "signature type POLY_1271 needs an ERC-7739 wrapped signature, which is not implemented"
    )]
    UnsupportedSignatureType,
    #[error("postOnly is only allowed with GTC/GTD orders")]
    PostOnlyNotResting,
    #[error("signing failed")]
    Signing,
}

/// The exchange domain version the server asks for in `GET /version` (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeVersion {
    V2,
    /// One contract for normal and neg-risk markets, same struct as V2
    /// (clob-client-v2 commit d28dacd, 2026-06-05).
    V3,
}

impl ExchangeVersion {
    pub fn from_server(version: u32) -> Result<Self, OrderError> {
        match version {
            2 => Ok(ExchangeVersion::V2),
            3 => Ok(ExchangeVersion::V3),
            v => Err(OrderError::UnsupportedVersion(v)),
        }
    }

    pub fn domain_version(self) -> &'static str {
        match self {
            ExchangeVersion::V2 => "2",
            ExchangeVersion::V3 => "3",
        }
    }
}

fn addr(s: &str) -> Address {
    // Only called on the compile-time constants above, pinned by tests.
    Address::from_str(s).unwrap_or_default()
}

/// `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`
/// with name "Polymarket CTF Exchange" (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeDomain {
    pub version: ExchangeVersion,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

impl ExchangeDomain {
    pub const NAME: &'static str = "Polymarket CTF Exchange";

    /// The contract for a market: V2 has a separate neg-risk exchange (a wrong
    /// contract means "invalid signature", §5 item 8); V3 is one contract.
    pub fn for_market(
        version: ExchangeVersion,
        chain_id: u64,
        neg_risk: bool,
    ) -> Result<Self, OrderError> {
        let contract = match (version, chain_id, neg_risk) {
            (ExchangeVersion::V2, POLYGON | AMOY, false) => CTF_EXCHANGE_V2,
            (ExchangeVersion::V2, POLYGON | AMOY, true) => NEG_RISK_CTF_EXCHANGE_V2,
            (ExchangeVersion::V3, POLYGON, _) => CTF_EXCHANGE_V3_POLYGON,
            (ExchangeVersion::V3, AMOY, _) => CTF_EXCHANGE_V3_AMOY,
            (_, chain, _) => return Err(OrderError::UnknownChain(chain)),
        };
        Ok(ExchangeDomain {
            version,
            chain_id,
            verifying_contract: addr(contract),
        })
    }

    pub fn separator(&self) -> H256 {
        hash_words(&[
            keccak256(
                "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
            ),
            keccak256(Self::NAME),
            keccak256(self.version.domain_version()),
            word_u256(U256::from(self.chain_id)),
            word_address(self.verifying_contract),
        ])
    }
}

/// BUY = 0, SELL = 1 in the signed struct; `"BUY"`/`"SELL"` in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderSide {
    Buy,
    Sell,
}

impl OrderSide {
    fn code(self) -> u8 {
        match self {
            OrderSide::Buy => 0,
            OrderSide::Sell => 1,
        }
    }
}

impl From<Action> for OrderSide {
    fn from(a: Action) -> Self {
        match a {
            Action::Buy => OrderSide::Buy,
            Action::Sell => OrderSide::Sell,
        }
    }
}

/// Who holds the funds and how the signature is checked (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureType {
    /// The signing EOA holds the funds.
    Eoa,
    /// Polymarket proxy wallet (Magic/email accounts).
    PolyProxy,
    /// Gnosis Safe (browser-wallet accounts).
    PolyGnosisSafe,
    /// ERC-1271 deposit wallet; needs an ERC-7739 wrapped signature.
    Poly1271,
}

impl SignatureType {
    pub fn code(self) -> u8 {
        match self {
            SignatureType::Eoa => 0,
            SignatureType::PolyProxy => 1,
            SignatureType::PolyGnosisSafe => 2,
            SignatureType::Poly1271 => 3,
        }
    }
}

impl Serialize for SignatureType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

/// `orderType` in `POST /order` (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderType {
    /// Rests until cancelled.
    Gtc,
    /// Rests until `expiration` (server adds a 60 s security threshold).
    Gtd,
    /// Fill the whole size now or nothing (HTTP 400 when killed, §2.6).
    Fok,
    /// Fill what is there now, cancel the rest.
    Fak,
}

impl OrderType {
    pub fn is_marketable(self) -> bool {
        matches!(self, OrderType::Fok | OrderType::Fak)
    }
}

impl From<TimeInForce> for OrderType {
    fn from(t: TimeInForce) -> Self {
        match t {
            TimeInForce::FillOrKill => OrderType::Fok,
            TimeInForce::ImmediateOrCancel => OrderType::Fak,
            TimeInForce::GoodTillCancelled => OrderType::Gtc,
            TimeInForce::GoodTillDate { .. } => OrderType::Gtd,
        }
    }
}

/// The tick sizes of clob-client-v2 `ROUNDING_CONFIG` (§2.6 table). A market's
/// tick changes at runtime (`tick_size_change`, §2.4), so it is passed per order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickSize {
    Tenth,
    Hundredth,
    HalfCent,
    QuarterCent,
    Thousandth,
    TenThousandth,
}

/// Decimals for (price, size, amount) at one tick (§2.6 `ROUNDING_CONFIG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundConfig {
    pub price: u32,
    pub size: u32,
    pub amount: u32,
}

impl TickSize {
    pub const ALL: [TickSize; 6] = [
        TickSize::Tenth,
        TickSize::Hundredth,
        TickSize::HalfCent,
        TickSize::QuarterCent,
        TickSize::Thousandth,
        TickSize::TenThousandth,
    ];

    pub fn value(self) -> Decimal {
        match self {
            TickSize::Tenth => Decimal::new(1, 1),
            TickSize::Hundredth => Decimal::new(1, 2),
            TickSize::HalfCent => Decimal::new(5, 3),
            TickSize::QuarterCent => Decimal::new(25, 4),
            TickSize::Thousandth => Decimal::new(1, 3),
            TickSize::TenThousandth => Decimal::new(1, 4),
        }
    }

    pub fn rounding(self) -> RoundConfig {
        let (price, amount) = match self {
            TickSize::Tenth => (1, 3),
            TickSize::Hundredth => (2, 4),
            TickSize::HalfCent => (3, 5),
            TickSize::QuarterCent => (4, 6),
            TickSize::Thousandth => (3, 5),
            TickSize::TenThousandth => (4, 6),
        };
        RoundConfig {
            price,
            size: 2,
            amount,
        }
    }

    pub fn from_decimal(d: Decimal) -> Result<Self, OrderError> {
        let n = d.normalize();
        TickSize::ALL
            .into_iter()
            .find(|t| t.value() == n)
            .ok_or_else(|| OrderError::UnknownTick(d.to_string()))
    }

    /// From the venue's string ("0.01", "0.001"), as in `tick_size_change`.
    pub fn parse(s: &str) -> Result<Self, OrderError> {
        let d = parse_plain_decimal(s).ok_or_else(|| OrderError::UnknownTick(clip(s)))?;
        Self::from_decimal(d)
    }
}

impl std::fmt::Display for TickSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.value())
    }
}

/// Plain decimal strings only (digits, one point, optional sign); the venue
/// also sends prices without a leading zero (".48", §2.4).
pub(crate) fn parse_plain_decimal(s: &str) -> Option<Decimal> {
    let t = s.trim();
    if t.is_empty()
        || t.len() > 40
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
    {
        return None;
    }
    let padded;
    let t = if let Some(rest) = t.strip_prefix('.') {
        padded = format!("0.{rest}");
        padded.as_str()
    } else {
        t
    };
    Decimal::from_str(t).ok()
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// makerAmount / takerAmount in 6-dp base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    pub maker: u64,
    pub taker: u64,
}

fn to_units(d: Decimal) -> Result<u64, OrderError> {
    let units = d * UNITS;
    if units.fract() != Decimal::ZERO {
        // Amounts are rounded to ≤ 6 dp before this point; anything else is a bug.
        return Err(OrderError::AmountOverflow(d));
    }
    units.to_u64().ok_or(OrderError::AmountOverflow(d))
}

fn check_price(price: Decimal, tick: TickSize) -> Result<Decimal, OrderError> {
    let t = tick.value();
    // The clients' `priceValid`: tick ≤ price ≤ 1 − tick, and on the tick grid
    // (the server rejects "breaks minimum tick size rule", §2.6).
    if price < t || price > Decimal::ONE - t || (price % t) != Decimal::ZERO {
        return Err(OrderError::PriceOffTick { price, tick: t });
    }
    Ok(price.normalize())
}

fn check_size(size: Decimal) -> Result<Decimal, OrderError> {
    if size <= Decimal::ZERO {
        return Err(OrderError::NonPositiveSize(size));
    }
    // rs-clob-client refuses ("Size 12.8205 has 4 decimal places. Maximum lot
    // size is 2", §3.4) where the TS client rounds down; refusing keeps both arb
    // legs at the same share count instead of shrinking one silently.
    let n = size.normalize();
    if n.scale() > 2 {
        return Err(OrderError::SizeTooPrecise(size));
    }
    Ok(n)
}

/// `roundUp(x, dp + 4)` then `roundDown(x, dp)`, as clob-client-v2's helpers do
/// when an amount has more than `dp` decimals. The first step exists there to
/// absorb float noise; with exact decimals it only matters for true repeating
/// fractions (market BUY: dollars / price), where it is kept for parity.
fn fit_amount(x: Decimal, dp: u32) -> Decimal {
    if x.normalize().scale() <= dp {
        return x.normalize();
    }
    let up = x.round_dp_with_strategy(dp + 4, RoundingStrategy::AwayFromZero);
    up.round_dp_with_strategy(dp, RoundingStrategy::ToZero)
        .normalize()
}

/// Limit-order amounts (`getOrderRawAmounts`, §2.6; vectors §3.4): BUY pays
/// `size × price` dollars for `size` shares, SELL mirrors it.
pub fn limit_amounts(
    side: OrderSide,
    price: Decimal,
    size: Decimal,
    tick: TickSize,
) -> Result<Amounts, OrderError> {
    let price = check_price(price, tick)?;
    let shares = check_size(size)?;
    let collateral = fit_amount(shares * price, tick.rounding().amount);
    Ok(match side {
        OrderSide::Buy => Amounts {
            maker: to_units(collateral)?,
            taker: to_units(shares)?,
        },
        OrderSide::Sell => Amounts {
            maker: to_units(shares)?,
            taker: to_units(collateral)?,
        },
    })
}

/// The official clients' market-order amounts (`getMarketOrderRawAmounts`,
/// §2.6; vectors §3.4): a BUY `amount` is *dollars to spend* and the share
/// amount is `amount / price` rounded down; a SELL `amount` is shares. Kept for
/// parity and for a "spend $X" order; arbitrage legs trade an exact share count
/// and use [`marketable_amounts`].
pub fn market_amounts(
    side: OrderSide,
    amount: Decimal,
    price: Decimal,
    tick: TickSize,
) -> Result<Amounts, OrderError> {
    let price = check_price(price, tick)?;
    if amount <= Decimal::ZERO {
        return Err(OrderError::NonPositiveSize(amount));
    }
    let rc = tick.rounding();
    let maker = amount.round_dp_with_strategy(rc.size, RoundingStrategy::ToZero);
    let taker = match side {
        OrderSide::Buy => fit_amount(maker / price, rc.amount),
        OrderSide::Sell => fit_amount(maker * price, rc.amount),
    };
    Ok(Amounts {
        maker: to_units(maker)?,
        taker: to_units(taker)?,
    })
}

/// FOK/FAK amounts for an exact share count at a worst price (§2.6 "practical
/// rule for an arb leg"). The server checks marketable BUYs for maker (dollars)
/// ≤ 2 decimals and taker (shares) ≤ 4; we never round to get there — rounding
/// the dollars down or the shares up lowers the implied price below the ask and
/// the order never fills (py-clob-client-v2 #291) — so an inexact size is an
/// error naming the largest exact size. SELL: shares given, `shares × price`
/// dollars asked, exact (≤ 2 + price dp decimals, which fits the tick's amount dp).
pub fn marketable_amounts(
    side: OrderSide,
    price: Decimal,
    size: Decimal,
    tick: TickSize,
) -> Result<Amounts, OrderError> {
    let price = check_price(price, tick)?;
    let shares = check_size(size)?;
    let collateral = (shares * price).normalize();
    match side {
        OrderSide::Buy => {
            if collateral.scale() > 2 {
                return Err(OrderError::MarketablePrecision {
                    size: shares,
                    price,
                    cost: collateral,
                    max_size: max_marketable_buy_size(price, shares),
                });
            }
            Ok(Amounts {
                maker: to_units(collateral)?,
                taker: to_units(shares)?,
            })
        }
        OrderSide::Sell => Ok(Amounts {
            maker: to_units(shares)?,
            taker: to_units(collateral)?,
        }),
    }
}

/// The largest size ≤ `size` (in 0.01 lots) whose cost at `price` has at most
/// 2 decimals, i.e. a FOK/FAK BUY the server accepts at exactly `price`. With
/// a 0.01 tick any whole number works; with 0.001 multiples of 10 shares always
/// do (§2.6). Returns 0 if none does.
pub fn max_marketable_buy_size(price: Decimal, size: Decimal) -> Decimal {
    // size = k/100, price = a/10^d: cost has ≤ 2 dp iff 10^d divides k·a, so k
    // must be a multiple of 10^d / gcd(a, 10^d).
    let p = price.normalize();
    let d = p.scale();
    let a = p.mantissa().unsigned_abs();
    let pow = 10u128.pow(d);
    let step = pow / gcd(a, pow);
    let k = (size * Decimal::ONE_HUNDRED).floor().to_u128().unwrap_or(0);
    let k = k - k % step.max(1);
    Decimal::from_i128_with_scale(i128::try_from(k).unwrap_or(0), 2).normalize()
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// The amounts for an order of this type: FOK/FAK exact-share rules or the
/// limit-order rules.
pub fn order_amounts(
    side: OrderSide,
    price: Decimal,
    size: Decimal,
    order_type: OrderType,
    tick: TickSize,
) -> Result<Amounts, OrderError> {
    if order_type.is_marketable() {
        marketable_amounts(side, price, size, tick)
    } else {
        limit_amounts(side, price, size, tick)
    }
}

/// Polymarket's GTD security threshold: an order lives until `expiration − 60 s` (§2.6).
pub const GTD_THRESHOLD_S: u64 = 60;

/// What to trade, in the venue's terms but before amounts and signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderArgs {
    pub token_id: TokenId,
    pub side: OrderSide,
    /// Worst price accepted.
    pub price: Price,
    /// Shares.
    pub size: Size,
    pub order_type: OrderType,
    /// The token's current tick (from the market metadata or `tick_size_change`).
    pub tick: TickSize,
    /// Unix seconds, GTD only; 0 = none. Sent in the body, not signed (§2.6).
    pub expiration: u64,
}

impl OrderArgs {
    /// A domain order on the token of its outcome (the caller resolves the token
    /// from the pair; YES/NO token ids are per market, §2.2).
    pub fn from_domain(order: &Order, token_id: TokenId, tick: TickSize) -> Self {
        OrderArgs {
            token_id,
            side: order.action.into(),
            price: order.limit,
            size: order.size,
            order_type: order.time_in_force.into(),
            tick,
            expiration: match order.time_in_force {
                // The venue cancels a GTD a minute before its `expiration`
                // (its security threshold, §2.6): ask for a minute more.
                TimeInForce::GoodTillDate { until } => until.saturating_add(GTD_THRESHOLD_S),
                _ => 0,
            },
        }
    }
}

/// Where salts come from. Clients use a random integer that fits in a JS
/// number (≤ 2^53) because the body sends it as a JSON number (§2.6).
pub trait SaltSource {
    fn next_salt(&mut self) -> u64;
}

/// Random salts below 2^53.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSalt;

impl SaltSource for RandomSalt {
    fn next_salt(&mut self) -> u64 {
        rand::random::<u64>() & ((1u64 << 53) - 1)
    }
}

impl<F: FnMut() -> u64> SaltSource for F {
    fn next_salt(&mut self) -> u64 {
        self()
    }
}

/// The V2/V3 `Order` struct as signed, plus `expiration` which only the body carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeOrder {
    pub salt: u64,
    pub maker: Address,
    pub signer: Address,
    pub token_id: TokenId,
    pub maker_amount: u64,
    pub taker_amount: u64,
    pub side: OrderSide,
    pub signature_type: SignatureType,
    /// Creation time in milliseconds (§2.6).
    pub timestamp_ms: u64,
    pub metadata: H256,
    pub builder: H256,
    pub expiration: u64,
}

impl ExchangeOrder {
    pub fn struct_hash(&self) -> Result<H256, OrderError> {
        let token = U256::from_dec_str(self.token_id.as_str())
            .map_err(|_| OrderError::TokenIdOverflow(self.token_id.to_string()))?;
        Ok(hash_words(&[
            keccak256(ORDER_TYPE),
            word_u256(U256::from(self.salt)),
            word_address(self.maker),
            word_address(self.signer),
            word_u256(token),
            word_u256(U256::from(self.maker_amount)),
            word_u256(U256::from(self.taker_amount)),
            word_u256(U256::from(self.side.code())),
            word_u256(U256::from(self.signature_type.code())),
            word_u256(U256::from(self.timestamp_ms)),
            self.metadata.0,
            self.builder.0,
        ]))
    }

    /// The order hash: the EIP-712 digest (§3.3).
    pub fn hash(&self, domain: &ExchangeDomain) -> Result<H256, OrderError> {
        Ok(eip712_digest(domain.separator(), self.struct_hash()?))
    }

    pub fn sign(
        self,
        signer: &PolySigner,
        domain: &ExchangeDomain,
    ) -> Result<SignedOrder, OrderError> {
        if self.signature_type == SignatureType::Poly1271 {
            return Err(OrderError::UnsupportedSignatureType);
        }
        let hash = self.hash(domain)?;
        let signature = signer
            .sign_order_digest(hash)
            .map_err(|_| OrderError::Signing)?;
        Ok(SignedOrder {
            order: self,
            hash,
            signature,
        })
    }
}

/// Builds [`ExchangeOrder`]s for one account.
#[derive(Debug, Clone)]
pub struct OrderBuilder<S = RandomSalt> {
    maker: Address,
    signer: Address,
    signature_type: SignatureType,
    salts: S,
}

impl OrderBuilder<RandomSalt> {
    /// An EOA account: the signer holds the funds.
    pub fn eoa(signer: Address) -> Self {
        OrderBuilder {
            maker: signer,
            signer,
            signature_type: SignatureType::Eoa,
            salts: RandomSalt,
        }
    }

    /// A proxy / Safe account: `funder` holds the funds, `signer` signs.
    pub fn with_funder(signer: Address, funder: Address, signature_type: SignatureType) -> Self {
        OrderBuilder {
            maker: funder,
            signer,
            signature_type,
            salts: RandomSalt,
        }
    }
}

impl<S: SaltSource> OrderBuilder<S> {
    pub fn with_salts<T: SaltSource>(self, salts: T) -> OrderBuilder<T> {
        OrderBuilder {
            maker: self.maker,
            signer: self.signer,
            signature_type: self.signature_type,
            salts,
        }
    }

    pub fn build(
        &mut self,
        args: &OrderArgs,
        timestamp_ms: u64,
    ) -> Result<ExchangeOrder, OrderError> {
        let amounts = order_amounts(
            args.side,
            args.price.value(),
            args.size.value(),
            args.order_type,
            args.tick,
        )?;
        Ok(ExchangeOrder {
            salt: self.salts.next_salt(),
            maker: self.maker,
            signer: self.signer,
            token_id: args.token_id.clone(),
            maker_amount: amounts.maker,
            taker_amount: amounts.taker,
            side: args.side,
            signature_type: self.signature_type,
            timestamp_ms,
            metadata: H256::zero(),
            builder: H256::zero(),
            expiration: if args.order_type == OrderType::Gtd {
                args.expiration
            } else {
                0
            },
        })
    }
}

/// A signed order and its EIP-712 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOrder {
    pub order: ExchangeOrder,
    pub hash: H256,
    /// `0x` + 65 bytes hex.
    pub signature: String,
}

/// `order` in the `POST /order` body (§2.6, §3.6): salt and signatureType are
/// JSON numbers, amounts/tokenId/timestamp/expiration strings, side a word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireOrder {
    pub salt: u64,
    pub maker: String,
    pub signer: String,
    pub token_id: String,
    pub maker_amount: String,
    pub taker_amount: String,
    pub side: OrderSide,
    pub expiration: String,
    pub signature_type: SignatureType,
    pub timestamp: String,
    pub metadata: String,
    pub builder: String,
    pub signature: String,
}

/// The whole `POST /order` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostOrderBody {
    pub order: WireOrder,
    /// The API key (uuid) that owns the order.
    pub owner: String,
    pub order_type: OrderType,
    pub defer_exec: bool,
    pub post_only: bool,
}

impl PostOrderBody {
    /// Compact JSON: serialise once, HMAC this string, send this string (§2.5).
    pub fn to_json(&self) -> String {
        // Serialising plain strings, integers and bools cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn hex32(h: H256) -> String {
    format!("0x{}", hex::encode(h.as_bytes()))
}

impl SignedOrder {
    pub fn wire(&self) -> WireOrder {
        let o = &self.order;
        WireOrder {
            salt: o.salt,
            maker: to_checksum(&o.maker, None),
            signer: to_checksum(&o.signer, None),
            token_id: o.token_id.to_string(),
            maker_amount: o.maker_amount.to_string(),
            taker_amount: o.taker_amount.to_string(),
            side: o.side,
            expiration: o.expiration.to_string(),
            signature_type: o.signature_type,
            timestamp: o.timestamp_ms.to_string(),
            metadata: hex32(o.metadata),
            builder: hex32(o.builder),
            signature: self.signature.clone(),
        }
    }

    pub fn post_body(
        &self,
        owner: &str,
        order_type: OrderType,
        post_only: bool,
    ) -> Result<PostOrderBody, OrderError> {
        if post_only && !matches!(order_type, OrderType::Gtc | OrderType::Gtd) {
            return Err(OrderError::PostOnlyNotResting);
        }
        Ok(PostOrderBody {
            order: self.wire(),
            owner: owner.to_string(),
            order_type,
            defer_exec: false,
            post_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PairId, Venue};
    use crate::venues::polymarket::auth::tests::{TEST_ADDRESS, test_signer};
    use rust_decimal_macros::dec;

    fn hx(h: H256) -> String {
        format!("{h:#x}")
    }

    fn vector_c_order(maker: Address) -> ExchangeOrder {
        ExchangeOrder {
            salt: 479_249_096_354,
            maker,
            signer: maker,
            token_id: TokenId::new("1234").unwrap(),
            maker_amount: 100_000_000,
            taker_amount: 50_000_000,
            side: OrderSide::Buy,
            signature_type: SignatureType::Eoa,
            timestamp_ms: 1_710_000_000_000,
            metadata: H256::zero(),
            builder: H256::zero(),
            expiration: 0,
        }
    }

    fn zero_order() -> ExchangeOrder {
        ExchangeOrder {
            salt: 0,
            maker: Address::zero(),
            signer: Address::zero(),
            token_id: TokenId::new("0").unwrap(),
            maker_amount: 0,
            taker_amount: 0,
            side: OrderSide::Buy,
            signature_type: SignatureType::Eoa,
            timestamp_ms: 0,
            metadata: H256::zero(),
            builder: H256::zero(),
            expiration: 0,
        }
    }

    #[test]
    fn order_typehash_is_the_v2_one() {
        assert_eq!(
            hx(H256(keccak256(ORDER_TYPE))),
            "0xbb86318a2138f5fa8ae32fbe8e659f8fcf13cc6ae4014a707893055433818589"
        );
    }

    #[test]
    fn contract_constants_parse_to_themselves() {
        for c in [
            CTF_EXCHANGE_V2,
            NEG_RISK_CTF_EXCHANGE_V2,
            CTF_EXCHANGE_V3_POLYGON,
            CTF_EXCHANGE_V3_AMOY,
        ] {
            assert_eq!(to_checksum(&addr(c), None), c);
        }
    }

    #[test]
    fn v2_polygon_domain_separator() {
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, false).unwrap();
        assert_eq!(
            hx(d.separator()),
            "0x3264e159346253e26a64e00b69032db0e7d32f94628de3e6eecb50304d7af3d2"
        );
    }

    #[test]
    fn all_zero_order_vectors_3_3_b() {
        let s = test_signer();
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, false).unwrap();
        let signed = zero_order().sign(&s, &d).unwrap();
        assert_eq!(
            hx(signed.hash),
            "0xd07306d5c36c7023456b3218dafb72d322ca92d67353d6e10be3be3c991ca2e5"
        );
        assert_eq!(
            signed.signature,
            "0x8a6edfe94a2169c3d05673521b53b7aee2205288f1363f1c9e24716317eebe6a17ca4bc397b85a5f39be21f32d0d8b38e0fd6de6af091dc0f4ba1f667d1883981c"
        );
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, true).unwrap();
        let signed = zero_order().sign(&s, &d).unwrap();
        assert_eq!(
            hx(signed.hash),
            "0x23218c4a6a816be79e2f31b3b0fd2ba2538aba77c6252825bbbd86fa78e13c88"
        );
        assert_eq!(
            signed.signature,
            "0x75a6b017773e1afd1ea606f92cd59dd90ecd4de97d23ceb4450234cde113e34117c2e820e6ea952948f3a9ec8a0852035ca1c250be6d004839ee964e432b3bab1b"
        );
    }

    #[test]
    fn eoa_order_vectors_3_3_c() {
        let s = test_signer();
        let cases = [
            (
                ExchangeVersion::V2,
                POLYGON,
                false,
                "0x10124949f84e9f7438c88d02bfd546ceb27ed6eb1fdb0175137af535b6e2513d",
                "0x42c7b4857d51e344045fcfde17b37cf1290d784471ffe618c22aa56ea5ddcf0009015b87ffb299813f5597e86d4ad56f40d634558d915edb719e6fc71dbc0d891c",
            ),
            (
                ExchangeVersion::V2,
                POLYGON,
                true,
                "0x9c2976657c4b229cc8e467a32ce9e3281ef40a70aee31cdc4619ebf51e4a7274",
                "0x79d82a92bd020329c6b9afad40b742c8cfaebdd992219b57e4282b6cfd53a66f2c97471d3297fa001f3eac2ead5f709c6e266893f19cef37633511420542a63b1b",
            ),
            (
                ExchangeVersion::V2,
                AMOY,
                false,
                "0x962c97b18bea292cc94b9479272aa74fb59a905e84a621a40eb339131e9fb6ba",
                "0x518472f1b081f6bd713d638bb11d1bf0720ed577e93c52eb00ec9f5f325f7d510c65cbfdfe9130de2602185f4a500863d777d8b838cb28abc75ecc1b5330315d1c",
            ),
            (
                ExchangeVersion::V3,
                POLYGON,
                false,
                "0x0d34966f6a42e3b8bec3d0d0dcca74d762695a3bd4cdf1d6a1fc2201bf9daa87",
                "0x22a4e68028c7984ff9b19217dee3a8491614e97a84ca42d53fe73e7a50745fd66706b966fa16ce911a3217958a5471343c47f2fd56ea9392522a4c1c156eac701c",
            ),
        ];
        for (version, chain, neg_risk, hash, sig) in cases {
            let d = ExchangeDomain::for_market(version, chain, neg_risk).unwrap();
            let signed = vector_c_order(s.address()).sign(&s, &d).unwrap();
            assert_eq!(
                hx(signed.hash),
                hash,
                "{version:?} {chain} neg_risk={neg_risk}"
            );
            assert_eq!(
                signed.signature, sig,
                "{version:?} {chain} neg_risk={neg_risk}"
            );
        }
    }

    #[test]
    fn v3_uses_one_contract_for_neg_risk_too() {
        let a = ExchangeDomain::for_market(ExchangeVersion::V3, POLYGON, false).unwrap();
        let b = ExchangeDomain::for_market(ExchangeVersion::V3, POLYGON, true).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            ExchangeVersion::from_server(4),
            Err(OrderError::UnsupportedVersion(4))
        );
        assert!(ExchangeDomain::for_market(ExchangeVersion::V2, 1, false).is_err());
    }

    #[test]
    fn poly_1271_is_refused_rather_than_signed_wrongly() {
        let mut o = zero_order();
        o.signature_type = SignatureType::Poly1271;
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, AMOY, false).unwrap();
        assert_eq!(
            o.sign(&test_signer(), &d),
            Err(OrderError::UnsupportedSignatureType)
        );
    }

    fn body_json(signed: &SignedOrder, owner: &str, t: OrderType) -> serde_json::Value {
        serde_json::from_str(&signed.post_body(owner, t, false).unwrap().to_json()).unwrap()
    }

    #[test]
    fn post_body_matches_the_fixture_of_2_6() {
        // The §2.6 example body is the §3.3(c) order on V2 Polygon; its
        // abbreviated signature "0x42c7...0d891c" is that vector's.
        let s = test_signer();
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, false).unwrap();
        let signed = vector_c_order(s.address()).sign(&s, &d).unwrap();
        let fixture: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/polymarket/post_order_body.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            body_json(&signed, "<api key uuid>", OrderType::Fok),
            fixture
        );
        assert_eq!(signed.wire().maker, TEST_ADDRESS);
    }

    #[test]
    fn all_zero_post_body_vector_3_6() {
        let s = test_signer();
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, false).unwrap();
        let signed = zero_order().sign(&s, &d).unwrap();
        let v = body_json(
            &signed,
            "00000000-0000-0000-0000-000000000000",
            OrderType::Fok,
        );
        let mut keys: Vec<_> = v["order"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut want = vec![
            "salt",
            "maker",
            "signer",
            "tokenId",
            "makerAmount",
            "takerAmount",
            "side",
            "signatureType",
            "timestamp",
            "expiration",
            "metadata",
            "builder",
            "signature",
        ];
        want.sort();
        assert_eq!(keys, want);
        let mut top: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        top.sort();
        assert_eq!(
            top,
            ["deferExec", "order", "orderType", "owner", "postOnly"]
        );
        assert_eq!(v["order"]["side"], "BUY");
        assert_eq!(v["order"]["timestamp"], "0");
        assert_eq!(v["order"]["expiration"], "0");
        assert_eq!(v["order"]["salt"], 0);
        assert_eq!(v["order"]["signatureType"], 0);
        assert_eq!(
            v["order"]["maker"],
            "0x0000000000000000000000000000000000000000"
        );
        assert_eq!(
            v["order"]["signature"],
            "0x8a6edfe94a2169c3d05673521b53b7aee2205288f1363f1c9e24716317eebe6a17ca4bc397b85a5f39be21f32d0d8b38e0fd6de6af091dc0f4ba1f667d1883981c"
        );
        assert!(
            signed.post_body("k", OrderType::Fok, true).is_err(),
            "postOnly only with GTC/GTD"
        );
    }

    fn tick(s: &str) -> TickSize {
        TickSize::parse(s).unwrap()
    }

    #[test]
    fn limit_amount_vectors_3_4() {
        use OrderSide::*;
        let size = dec!(21.04);
        let cases = [
            (Buy, dec!(0.5), "0.1", 10_520_000, 21_040_000),
            (Buy, dec!(0.56), "0.01", 11_782_400, 21_040_000),
            (Buy, dec!(0.056), "0.001", 1_178_240, 21_040_000),
            (Buy, dec!(0.0056), "0.0001", 117_824, 21_040_000),
            (Sell, dec!(0.5), "0.1", 21_040_000, 10_520_000),
            (Sell, dec!(0.56), "0.01", 21_040_000, 11_782_400),
            (Sell, dec!(0.056), "0.001", 21_040_000, 1_178_240),
            (Sell, dec!(0.0056), "0.0001", 21_040_000, 117_824),
        ];
        for (side, price, t, maker, taker) in cases {
            assert_eq!(
                limit_amounts(side, price, size, tick(t)).unwrap(),
                Amounts { maker, taker },
                "{side:?} {price}"
            );
        }
        let more = [
            (Buy, dec!(0.24), dec!(15), "0.01", 3_600_000, 15_000_000),
            (Buy, dec!(0.82), dec!(101), "0.01", 82_820_000, 101_000_000),
            (
                Buy,
                dec!(0.58),
                dec!(18233.33),
                "0.01",
                10_575_331_400,
                18_233_330_000,
            ),
            (
                Buy,
                dec!(0.512),
                dec!(100),
                "0.001",
                51_200_000,
                100_000_000,
            ),
            (Buy, dec!(0.78), dec!(12.82), "0.01", 9_999_600, 12_820_000),
            (Sell, dec!(0.24), dec!(15), "0.01", 15_000_000, 3_600_000),
            (Sell, dec!(0.82), dec!(101), "0.01", 101_000_000, 82_820_000),
            (
                Sell,
                dec!(0.39),
                dec!(2435.89),
                "0.01",
                2_435_890_000,
                949_997_100,
            ),
            (Sell, dec!(0.43), dec!(19.1), "0.01", 19_100_000, 8_213_000),
        ];
        for (side, price, size, t, maker, taker) in more {
            assert_eq!(
                limit_amounts(side, price, size, tick(t)).unwrap(),
                Amounts { maker, taker },
                "{side:?} {price} {size}"
            );
        }
        assert_eq!(
            limit_amounts(Sell, dec!(0.78), dec!(12.8205), tick("0.01")),
            Err(OrderError::SizeTooPrecise(dec!(12.8205)))
        );
        assert!(matches!(
            limit_amounts(Buy, dec!(0.005), size, tick("0.01")),
            Err(OrderError::PriceOffTick { .. })
        ));
    }

    #[test]
    fn market_amount_vectors_3_4() {
        use OrderSide::*;
        let cases = [
            (Buy, dec!(0.5), "0.1", 100_000_000, 200_000_000),
            (Buy, dec!(0.56), "0.01", 100_000_000, 178_571_400),
            (Buy, dec!(0.056), "0.001", 100_000_000, 1_785_714_280),
            (Buy, dec!(0.0056), "0.0001", 100_000_000, 17_857_142_857),
            (Sell, dec!(0.5), "0.1", 100_000_000, 50_000_000),
            (Sell, dec!(0.56), "0.01", 100_000_000, 56_000_000),
            (Sell, dec!(0.056), "0.001", 100_000_000, 5_600_000),
            (Sell, dec!(0.0056), "0.0001", 100_000_000, 560_000),
        ];
        for (side, price, t, maker, taker) in cases {
            assert_eq!(
                market_amounts(side, dec!(100), price, tick(t)).unwrap(),
                Amounts { maker, taker },
                "{side:?} {price}"
            );
        }
    }

    #[test]
    fn fok_buy_keeps_the_exact_price_or_refuses() {
        let t = tick("0.01");
        // 12.82 × 0.78 = 9.9996: fine for a limit order, not for FOK (≤ 2 dp).
        let err = marketable_amounts(OrderSide::Buy, dec!(0.78), dec!(12.82), t).unwrap_err();
        assert_eq!(
            err,
            OrderError::MarketablePrecision {
                size: dec!(12.82),
                price: dec!(0.78),
                cost: dec!(9.9996),
                max_size: dec!(12.5),
            }
        );
        let ok = marketable_amounts(OrderSide::Buy, dec!(0.78), dec!(12.5), t).unwrap();
        assert_eq!(
            ok,
            Amounts {
                maker: 9_750_000,
                taker: 12_500_000
            }
        );
        // 0.001 tick: multiples of 10 shares always work.
        let t = tick("0.001");
        assert_eq!(max_marketable_buy_size(dec!(0.567), dec!(15)), dec!(10));
        let ok = marketable_amounts(OrderSide::Buy, dec!(0.567), dec!(10), t).unwrap();
        assert_eq!(
            ok,
            Amounts {
                maker: 5_670_000,
                taker: 10_000_000
            }
        );
        assert_eq!(max_marketable_buy_size(dec!(0.5), dec!(0.01)), dec!(0));
        assert_eq!(max_marketable_buy_size(dec!(0.25), dec!(7.99)), dec!(7.96));
    }

    #[test]
    fn domain_order_becomes_a_signed_fok_body() {
        let s = test_signer();
        let order = Order {
            client_order_id: "t1-polymarket".into(),
            venue: Venue::Polymarket,
            pair: PairId("p".into()),
            outcome: crate::domain::Outcome::No,
            action: Action::Buy,
            limit: Price::parse("0.55").unwrap(),
            size: Size::whole(10),
            time_in_force: TimeInForce::FillOrKill,
        };
        let args = OrderArgs::from_domain(&order, TokenId::new("1234").unwrap(), tick("0.01"));
        let mut b = OrderBuilder::eoa(s.address()).with_salts(|| 42);
        let o = b.build(&args, 1_710_000_000_000).unwrap();
        assert_eq!((o.maker_amount, o.taker_amount), (5_500_000, 10_000_000));
        assert_eq!(o.salt, 42);
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, false).unwrap();
        let signed = o.sign(&s, &d).unwrap();
        let body = signed.post_body("owner", args.order_type, false).unwrap();
        assert_eq!(body.order_type, OrderType::Fok);
        let json = body.to_json();
        assert!(
            json.starts_with(r#"{"order":{"salt":42,"maker":"0xf39F"#),
            "{json}"
        );
        assert!(json.contains(r#""orderType":"FOK""#));
    }

    #[test]
    fn resting_orders_use_limit_amounts_and_gtd_asks_for_the_threshold_minute() {
        let s = test_signer();
        let order = |tif| Order {
            client_order_id: "by-hand".into(),
            venue: Venue::Polymarket,
            pair: PairId("p".into()),
            outcome: crate::domain::Outcome::Yes,
            action: Action::Buy,
            limit: Price::parse("0.02").unwrap(),
            size: Size::whole(10),
            time_in_force: tif,
        };
        let d = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, false).unwrap();
        let token = TokenId::new("1234").unwrap();
        let gtc = OrderArgs::from_domain(
            &order(TimeInForce::GoodTillCancelled),
            token.clone(),
            tick("0.01"),
        );
        assert_eq!((gtc.order_type, gtc.expiration), (OrderType::Gtc, 0));
        let until = 1_790_000_000;
        let gtd = OrderArgs::from_domain(
            &order(TimeInForce::GoodTillDate { until }),
            token,
            tick("0.01"),
        );
        assert_eq!(gtd.order_type, OrderType::Gtd);
        // The venue drops a GTD a minute before `expiration` (§2.6).
        assert_eq!(gtd.expiration, until + 60);
        let o = OrderBuilder::eoa(s.address())
            .with_salts(|| 7)
            .build(&gtd, 1_710_000_000_000)
            .unwrap();
        assert_eq!((o.maker_amount, o.taker_amount), (200_000, 10_000_000));
        let json = o
            .sign(&s, &d)
            .unwrap()
            .post_body("owner", gtd.order_type, false)
            .unwrap()
            .to_json();
        assert!(json.contains(r#""orderType":"GTD""#), "{json}");
        assert!(json.contains(r#""expiration":"1790000060""#), "{json}");
    }

    #[test]
    fn random_salts_fit_a_js_number() {
        let mut r = RandomSalt;
        for _ in 0..1000 {
            assert!(r.next_salt() < (1 << 53));
        }
    }

    fn on_tick() -> impl proptest::strategy::Strategy<Value = (TickSize, Decimal)> {
        use proptest::prelude::*;
        (0..TickSize::ALL.len(), 1i64..10_000).prop_map(|(i, n)| {
            let t = TickSize::ALL[i];
            let steps = (Decimal::ONE / t.value()).to_i64().unwrap_or(10);
            // A price on the tick strictly inside (0, 1).
            (t, t.value() * Decimal::from(1 + n % (steps - 1)))
        })
    }

    proptest::proptest! {
        #[test]
        fn limit_amounts_keep_the_exact_price_and_size(
            (t, price) in on_tick(),
            hundredths in 1u64..100_000_000,
            buy in proptest::bool::ANY,
        ) {
            let size = Decimal::new(hundredths as i64, 2);
            let side = if buy { OrderSide::Buy } else { OrderSide::Sell };
            let a = limit_amounts(side, price, size, t).unwrap();
            let (shares, dollars) = match side {
                OrderSide::Buy => (a.taker, a.maker),
                OrderSide::Sell => (a.maker, a.taker),
            };
            // Shares are never rounded (in particular never up on a BUY).
            proptest::prop_assert_eq!(Decimal::from(shares), size * UNITS);
            // On-tick prices and 2-dp sizes need no rounding at all: implied
            // price == limit price.
            proptest::prop_assert_eq!(Decimal::from(dollars), size * price * UNITS);
        }

        #[test]
        fn marketable_buys_are_exact_or_name_a_size_that_is(
            (t, price) in on_tick(),
            hundredths in 1u64..10_000_000,
        ) {
            let size = Decimal::new(hundredths as i64, 2);
            match marketable_amounts(OrderSide::Buy, price, size, t) {
                Ok(a) => {
                    proptest::prop_assert_eq!(Decimal::from(a.taker), size * UNITS);
                    proptest::prop_assert_eq!(a.maker % 10_000, 0, "dollars have ≤ 2 dp");
                }
                Err(OrderError::MarketablePrecision { max_size, .. }) => {
                    proptest::prop_assert!(max_size < size);
                    if !max_size.is_zero() {
                        let a = marketable_amounts(OrderSide::Buy, price, max_size, t).unwrap();
                        proptest::prop_assert_eq!(a.maker % 10_000, 0);
                    }
                }
                Err(e) => proptest::prop_assert!(false, "{e}"),
            }
        }
    }

    #[test]
    fn tick_sizes_parse_from_the_wire() {
        assert_eq!(tick("0.01"), TickSize::Hundredth);
        assert_eq!(tick("0.0010"), TickSize::Thousandth);
        assert_eq!(tick(".001"), TickSize::Thousandth);
        assert!(TickSize::parse("0.02").is_err());
        assert!(TickSize::parse("1e-2").is_err());
    }
}
