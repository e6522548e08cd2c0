//! The buy-both rule on plain integers (see plugins/RULE.md).

/// A venue as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Venue {
    Kalshi,
    Polymarket,
}

/// One venue's top of book and fees (units as in wit/strategy.wit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quote {
    pub yes_ask: u32,
    pub yes_ask_size: u64,
    pub no_ask: u32,
    pub no_ask_size: u64,
    pub taker_fee_ppm: u32,
    pub fee_exponent: u32,
    pub min_size: u64,
    pub size_step: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub buy_yes_on: Venue,
    pub buy_no_on: Venue,
    pub yes_limit: u32,
    pub no_limit: u32,
    pub size: u64,
    pub net: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Micro-dollars per contract.
    pub min_profit: i64,
    /// Hundredths of a contract.
    pub max_size: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params::DEFAULT
    }
}

impl Params {
    /// The defaults, usable in a `const` (a plugin's thread-local starts
    /// with them and needs no lazy initialisation on every read).
    pub const DEFAULT: Params = Params {
        min_profit: 10_000,
        max_size: 10_000,
    };

    /// Applies `name = value`; the error names the parameter.
    pub fn set(&mut self, name: &str, value: i64) -> Result<(), String> {
        match name {
            "min-profit" if value < 0 => Err(format!("min-profit must be >= 0, got {value}")),
            "min-profit" => {
                self.min_profit = value;
                Ok(())
            }
            "max-size" if value <= 0 => Err(format!("max-size must be > 0, got {value}")),
            "max-size" => {
                self.max_size = value;
                Ok(())
            }
            other => Err(format!("unknown parameter '{other}'")),
        }
    }
}

const CENT_RAW: u128 = 1_000_000_000_000_000_000; // 10^18: raw Kalshi units per cent

fn ceil_div(a: u128, b: u128) -> u128 {
    a.div_ceil(b)
}

/// `ceil(a × s / 10^(2k))` for `a < 2^58` and `s ≤ 2^32` with u64 arithmetic only,
/// where `half = 10^k`: 128-bit division is a software routine (slow natively,
/// slower still in wasm), and this is the rule's hot spot.
#[allow(
    clippy::manual_div_ceil,
    reason = "div_ceil is two `div`s in wasm, this is one"
)]
fn ceil_mul_div(a: u64, s: u64, half: u64) -> u64 {
    // a × s = (q·half + r)·s = A·half + B, and A = A1·half + A0, so
    // a × s / half² = A1 + (A0·half + B) / half², every term within u64
    // (A0·half + B + half² < 2^63 for half ≤ 10^9 and s ≤ 2^32).
    // Remainders by multiplication and a rounded-up quotient by an added
    // half² − 1: wasm has no wide multiply, so each `/` or `%` by a
    // constant stays a `div` instruction there, and these are three.
    let q = a / half;
    let r = a - q * half;
    let (big, small) = (q * s, r * s);
    let a1 = big / half;
    let a0 = big - a1 * half;
    let whole = half * half;
    a1 + (a0 * half + small + (whole - 1)) / whole
}

/// Fee in micro-dollars for buying `size` hundredths at `p` micro-dollars on `venue`.
/// `None` if the numbers overflow (treated as "no trade").
pub fn fee(venue: Venue, q: &Quote, p: u32, size: u64) -> Option<u128> {
    fee_narrow(venue, q, p, size)
        .map(u128::from)
        .or_else(|| fee_wide(venue, q, p, size))
}

/// The fee in 64-bit arithmetic, for realistic inputs (a rate up to 100 %,
/// up to 42.9M contracts, Polymarket's exponent 1); `None` for the rest,
/// which [`fee_wide`] takes. At most about 1.1 × 10^13: it fits with room.
fn fee_narrow(venue: Venue, q: &Quote, p: u32, size: u64) -> Option<u64> {
    if q.taker_fee_ppm > 1_000_000 || size > u64::from(u32::MAX) {
        return None;
    }
    let p64 = u64::from(p);
    let a = u64::from(q.taker_fee_ppm) * (p64 * (1_000_000 - p64));
    match venue {
        Venue::Kalshi => Some(ceil_mul_div(a, size, 1_000_000_000) * 10_000),
        Venue::Polymarket if q.fee_exponent == 1 => Some(ceil_mul_div(a, size, 100_000_000) * 100),
        Venue::Polymarket => None,
    }
}

/// The same fee in 128-bit arithmetic, for any inputs.
pub fn fee_wide(venue: Venue, q: &Quote, p: u32, size: u64) -> Option<u128> {
    let p = u128::from(p);
    let curve = p * (1_000_000 - p);
    match venue {
        Venue::Kalshi => {
            let raw = u128::from(q.taker_fee_ppm)
                .checked_mul(u128::from(size))?
                .checked_mul(curve)?;
            Some(ceil_div(raw, CENT_RAW) * 10_000)
        }
        Venue::Polymarket => {
            let mut raw = u128::from(size).checked_mul(u128::from(q.taker_fee_ppm))?;
            let mut denom: u128 = 10_000;
            for _ in 0..q.fee_exponent {
                raw = raw.checked_mul(curve)?;
                denom = denom.checked_mul(1_000_000_000_000)?;
            }
            Some(ceil_div(raw, denom) * 100)
        }
    }
}

fn floor_to(size: u64, step: u64) -> u64 {
    // Most books trade in steps of one: no `div` for those (see `ceil_mul_div`).
    if step <= 1 {
        return size;
    }
    size - size % step
}

/// The prices and size one direction would trade (YES on `a`, NO on `b`),
/// before costs: `None` if there is nothing to trade.
fn open(a: &Quote, b: &Quote, params: &Params) -> Option<(u32, u32, u64)> {
    let (yes, no) = (a.yes_ask, b.no_ask);
    if yes == 0 || no == 0 || yes >= 1_000_000 || no >= 1_000_000 {
        return None;
    }
    // The asks alone cost the $1 payout or more, and fees are never
    // negative: no trade, whatever the size. Most book changes end here.
    if yes + no >= 1_000_000 {
        return None;
    }
    let max = u64::try_from(params.max_size).ok()?;
    let mut size = a.yes_ask_size.min(b.no_ask_size).min(max);
    size = floor_to(floor_to(size, a.size_step), b.size_step);
    if size == 0 || size < a.min_size.max(b.min_size) {
        return None;
    }
    Some((yes, no, size))
}

/// One direction: YES on `a`, NO on `b`.
pub fn direction(av: Venue, a: &Quote, bv: Venue, b: &Quote, params: &Params) -> Option<Found> {
    let trade = open(a, b, params)?;
    let net = match net_narrow(av, a, bv, b, trade, params.min_profit) {
        Some(decided) => decided?,
        None => net_wide(av, a, bv, b, trade, params.min_profit)?,
    };
    Some(found(av, bv, trade, net))
}

/// One direction in 128-bit arithmetic only: the reference the 64-bit path
/// is checked against.
#[cfg(test)]
fn direction_wide(av: Venue, a: &Quote, bv: Venue, b: &Quote, params: &Params) -> Option<Found> {
    let trade = open(a, b, params)?;
    let net = net_wide(av, a, bv, b, trade, params.min_profit)?;
    Some(found(av, bv, trade, net))
}

fn found(av: Venue, bv: Venue, (yes, no, size): (u32, u32, u64), net: i64) -> Found {
    Found {
        buy_yes_on: av,
        buy_no_on: bv,
        yes_limit: yes,
        no_limit: no,
        size,
        net,
    }
}

/// The net edge in 64-bit integers, `Some(None)` if it is too thin, for every
/// realistic trade; `None` when the inputs need [`net_wide`]. In wasm a
/// 128-bit multiplication is a library call, and this is the hot call's body.
/// Bounds for a size up to 2^32: size × 10^4 < 2^46, cost < 2^47, each fee
/// about 2^43, and net × 100 < 2^53.
#[allow(
    clippy::manual_div_ceil,
    reason = "div_ceil is two `div`s in wasm, this is one"
)]
fn net_narrow(
    av: Venue,
    a: &Quote,
    bv: Venue,
    b: &Quote,
    (yes, no, size): (u32, u32, u64),
    min_profit: i64,
) -> Option<Option<i64>> {
    if size > u64::from(u32::MAX) {
        return None;
    }
    // Rounded up by adding 99: one `div` each in wasm, where `div_ceil` is two.
    let cost = (u64::from(yes) * size + 99) / 100 + (u64::from(no) * size + 99) / 100;
    let fees = fee_narrow(av, a, yes, size)? + fee_narrow(bv, b, no, size)?;
    let threshold = min_profit.checked_mul(i64::try_from(size).ok()?)?;
    let net = i64::try_from(size * 10_000).ok()? - i64::try_from(cost + fees).ok()?;
    Some((net > 0 && net * 100 >= threshold).then_some(net))
}

/// The net edge in 128-bit arithmetic, for any inputs: `None` if too thin
/// (or out of range).
fn net_wide(
    av: Venue,
    a: &Quote,
    bv: Venue,
    b: &Quote,
    (yes, no, size): (u32, u32, u64),
    min_profit: i64,
) -> Option<i64> {
    let s = u128::from(size);
    // Costs fit in u64 for any u32-sized trade; keep 128-bit division off the hot path.
    let cost = if size <= u64::from(u32::MAX) {
        u128::from((u64::from(yes) * size).div_ceil(100) + (u64::from(no) * size).div_ceil(100))
    } else {
        ceil_div(u128::from(yes) * s, 100) + ceil_div(u128::from(no) * s, 100)
    };
    let fees = fee(av, a, yes, size)? + fee(bv, b, no, size)?;
    let net = i128::try_from(s * 10_000).ok()? - i128::try_from(cost + fees).ok()?;
    let threshold = i128::from(min_profit) * i128::try_from(s).ok()?;
    if net <= 0 || net * 100 < threshold {
        return None;
    }
    i64::try_from(net).ok()
}

/// Both directions, Kalshi-YES first.
pub fn evaluate(kalshi: &Quote, polymarket: &Quote, params: &Params, out: &mut Vec<Found>) {
    out.extend(direction(
        Venue::Kalshi,
        kalshi,
        Venue::Polymarket,
        polymarket,
        params,
    ));
    out.extend(direction(
        Venue::Polymarket,
        polymarket,
        Venue::Kalshi,
        kalshi,
        params,
    ));
}

/// The more profitable of the two directions, as the host would pick from
/// [`evaluate`]'s list (the first on a tie): what `evaluate-top` returns.
pub fn best(kalshi: &Quote, polymarket: &Quote, params: &Params) -> Option<Found> {
    let a = direction(Venue::Kalshi, kalshi, Venue::Polymarket, polymarket, params);
    let b = direction(Venue::Polymarket, polymarket, Venue::Kalshi, kalshi, params);
    match (a, b) {
        (Some(a), Some(b)) if b.net > a.net => Some(b),
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(yes: u32, no: u32, size: u64, ppm: u32) -> Quote {
        Quote {
            yes_ask: yes,
            yes_ask_size: size,
            no_ask: no,
            no_ask_size: size,
            taker_fee_ppm: ppm,
            fee_exponent: 1,
            min_size: 1,
            size_step: 1,
        }
    }

    #[test]
    fn worked_example() {
        let k = quote(400_000, 0, 10_000, 70_000);
        let p = quote(0, 550_000, 10_000, 40_000);
        assert_eq!(fee(Venue::Kalshi, &k, 400_000, 10_000), Some(1_680_000));
        assert_eq!(fee(Venue::Polymarket, &p, 550_000, 10_000), Some(990_000));
        let mut out = Vec::new();
        evaluate(&k, &p, &Params::default(), &mut out);
        assert_eq!(
            out,
            vec![Found {
                buy_yes_on: Venue::Kalshi,
                buy_no_on: Venue::Polymarket,
                yes_limit: 400_000,
                no_limit: 550_000,
                size: 10_000,
                net: 2_330_000
            }]
        );
    }

    #[test]
    fn the_64_bit_fee_path_matches_the_128_bit_one() {
        // A deterministic sweep of prices, sizes and rates, edges included.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..200_000u64 {
            let p = match i % 5 {
                0 => 1,
                1 => 999_999,
                _ => (next() % 999_999 + 1) as u32,
            };
            let size = match i % 7 {
                0 => u64::from(u32::MAX),
                1 => 1,
                _ => next() % 100_000_000,
            };
            let ppm = match i % 3 {
                0 => 1_000_000,
                _ => (next() % 1_000_001) as u32,
            };
            let q = Quote {
                taker_fee_ppm: ppm,
                fee_exponent: 1,
                ..Quote::default()
            };
            for v in [Venue::Kalshi, Venue::Polymarket] {
                assert_eq!(
                    fee(v, &q, p, size),
                    fee_wide(v, &q, p, size),
                    "{v:?} p={p} size={size} ppm={ppm}"
                );
            }
        }
    }

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// A quote for the sweep below: edge prices, sizes and rates included.
    fn sweep_quote(x: &mut u64, i: u64, yes: u32, no: u32) -> Quote {
        Quote {
            yes_ask: yes,
            yes_ask_size: match i % 11 {
                0 => u64::MAX,
                1 => u64::from(u32::MAX) + 1,
                _ => xorshift(x) % 1_000_000,
            },
            no_ask: no,
            no_ask_size: xorshift(x) % 1_000_000,
            taker_fee_ppm: match i % 13 {
                0 => 1_000_001,
                _ => (xorshift(x) % 100_001) as u32,
            },
            fee_exponent: (i % 3) as u32,
            min_size: xorshift(x) % 200,
            size_step: xorshift(x) % 3,
        }
    }

    fn sweep_price(x: &mut u64, pick: u64) -> u32 {
        match pick % 9 {
            0 => 0,
            1 => 1,
            2 => 999_999,
            3 => 1_000_000,
            _ => (xorshift(x) % 600_000 + 200_000) as u32,
        }
    }

    #[test]
    fn the_64_bit_direction_decides_what_the_128_bit_one_does() {
        let mut x: u64 = 0xD1B5_4A32_D192_ED03;
        let mut traded = 0;
        for i in 0..200_000u64 {
            let (y, n) = (sweep_price(&mut x, i), sweep_price(&mut x, i / 9));
            let (ky_no, py_yes) = (sweep_price(&mut x, i / 3), sweep_price(&mut x, i / 5));
            let k = sweep_quote(&mut x, i, y, ky_no);
            let p = sweep_quote(&mut x, i, py_yes, n);
            let params = Params {
                min_profit: match i % 17 {
                    0 => i64::MAX,
                    _ => (xorshift(&mut x) % 50_000) as i64,
                },
                max_size: match i % 19 {
                    0 => i64::MAX,
                    _ => (xorshift(&mut x) % 2_000_000) as i64,
                },
            };
            for (av, a, bv, b) in [
                (Venue::Kalshi, &k, Venue::Polymarket, &p),
                (Venue::Polymarket, &p, Venue::Kalshi, &k),
            ] {
                let narrow = direction(av, a, bv, b, &params);
                assert_eq!(
                    narrow,
                    direction_wide(av, a, bv, b, &params),
                    "{a:?} {b:?} {params:?}"
                );
                traded += usize::from(narrow.is_some());
            }
        }
        assert!(traded > 10_000, "the sweep must trade often: {traded}");
    }

    /// `open`'s shortcut loses no trade: at asks summing to $1 or more the
    /// full arithmetic, with no fees and no minimum profit, finds no edge.
    #[test]
    fn asks_summing_to_a_dollar_never_trade() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let free = Params {
            min_profit: 0,
            max_size: i64::MAX,
        };
        for i in 0..100_000u64 {
            let yes = (xorshift(&mut x) % 999_999 + 1) as u32;
            let least_no = 1_000_000 - yes;
            let no = least_no + (xorshift(&mut x) % u64::from(yes.min(1_000))) as u32;
            let no = no.min(999_999);
            let mut a = sweep_quote(&mut x, i, yes, 0);
            let mut b = sweep_quote(&mut x, i, 0, no);
            a.taker_fee_ppm = (i % 2) as u32;
            b.taker_fee_ppm = 0;
            let size = 1 + xorshift(&mut x) % 5_000_000;
            let trade = (yes, no, size);
            for (av, bv) in [
                (Venue::Kalshi, Venue::Polymarket),
                (Venue::Polymarket, Venue::Kalshi),
            ] {
                assert_eq!(net_wide(av, &a, bv, &b, trade, 0), None, "{trade:?}");
                assert_eq!(direction(av, &a, bv, &b, &free), None, "{trade:?}");
            }
        }
        // One micro-dollar under a dollar still trades when nothing else costs.
        let a = quote(400_000, 0, 10_000, 0);
        let b = quote(0, 599_999, 10_000, 0);
        assert!(direction(Venue::Kalshi, &a, Venue::Polymarket, &b, &free).is_some());
    }

    #[test]
    fn best_is_the_more_profitable_direction_of_evaluate() {
        let params = Params::default();
        // Both directions open, the second (YES on Polymarket) wider.
        let k = quote(400_000, 300_000, 10_000, 70_000);
        let p = quote(450_000, 550_000, 10_000, 40_000);
        let mut out = Vec::new();
        evaluate(&k, &p, &params, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].net > out[0].net);
        assert_eq!(best(&k, &p, &params), Some(out[1]));
        // Only the first open.
        let p = quote(0, 550_000, 10_000, 40_000);
        out.clear();
        evaluate(&k, &p, &params, &mut out);
        assert_eq!(best(&k, &p, &params), out.first().copied());
        assert!(best(&k, &p, &params).is_some());
        // Neither.
        let k = quote(600_000, 600_000, 10_000, 70_000);
        assert_eq!(best(&k, &p, &params), None);
    }

    #[test]
    fn params_are_checked() {
        let mut p = Params::default();
        assert!(p.set("min-profit", -1).is_err());
        assert!(p.set("max-size", 0).is_err());
        assert!(p.set("nope", 1).unwrap_err().contains("nope"));
        p.set("max-size", 5).unwrap();
        assert_eq!(p.max_size, 5);
    }
}
