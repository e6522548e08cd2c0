//! Buy-both sized by depth: walks the YES ladder of one venue and the NO ladder
//! of the other together, level by level, and picks the size with the largest
//! total net edge after fees (each level's fill is charged its own rounded-up
//! fee, as the venues charge per fill).

use crate::buy_both::{self as rule, Found, Params, Quote, Venue};

/// One ask ladder: (price micro-dollars, size hundredths), best first.
pub type Ladder<'a> = &'a [(u32, u64)];

/// Best size for YES on `av` (ladder `a`) and NO on `bv` (ladder `b`).
pub fn best_walk(
    av: Venue,
    aq: &Quote,
    a: Ladder,
    bv: Venue,
    bq: &Quote,
    b: Ladder,
    params: &Params,
) -> Option<Found> {
    let max = u64::try_from(params.max_size).ok()?;
    let step = aq.size_step.max(1).max(bq.size_step.max(1));
    let min = aq.min_size.max(bq.min_size).max(1);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut left_a, mut left_b) = (a.first()?.1, b.first()?.1);
    // Running totals of what has been bought, level by level.
    let (mut size, mut cost, mut fees) = (0u64, 0u128, 0u128);
    let mut best: Option<Found> = None;
    while i < a.len() && j < b.len() && size < max {
        let (pa, pb) = (a[i].0, b[j].0);
        if pa == 0 || pb == 0 || u64::from(pa) + u64::from(pb) >= 1_000_000 {
            break; // sorted best first: nothing further can be cheaper
        }
        let take = left_a.min(left_b).min(max - size);
        if take == 0 {
            break;
        }
        let t = u128::from(take);
        cost += (u128::from(pa) * t).div_ceil(100) + (u128::from(pb) * t).div_ceil(100);
        fees += rule::fee(av, aq, pa, take)? + rule::fee(bv, bq, pb, take)?;
        size += take;
        left_a -= take;
        left_b -= take;
        let sized = size - size % step;
        if sized == size && size >= min {
            let net = i128::try_from(u128::from(size) * 10_000).ok()?
                - i128::try_from(cost + fees).ok()?;
            let ok = net > 0 && net * 100 >= i128::from(params.min_profit) * i128::from(size);
            if ok && best.is_none_or(|f| i128::from(f.net) < net) {
                best = Some(Found {
                    buy_yes_on: av,
                    buy_no_on: bv,
                    yes_limit: pa,
                    no_limit: pb,
                    size,
                    net: i64::try_from(net).ok()?,
                });
            }
        }
        if left_a == 0 {
            i += 1;
            left_a = a.get(i).map_or(0, |l| l.1);
        }
        if left_b == 0 {
            j += 1;
            left_b = b.get(j).map_or(0, |l| l.1);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(ppm: u32) -> Quote {
        Quote {
            taker_fee_ppm: ppm,
            fee_exponent: 1,
            min_size: 1,
            size_step: 1,
            ..Quote::default()
        }
    }

    #[test]
    fn stops_where_the_next_level_costs_more_than_it_earns() {
        // YES: 10 @0.40, 10 @0.49; NO: 20 @0.50. Without fees, level 2 (0.99) still
        // earns 1c a contract; with Kalshi's fee (0.18 on those 10) it loses, so 10 is best.
        let a = [(400_000, 1_000), (490_000, 1_000)];
        let b = [(500_000, 2_000)];
        let f = best_walk(
            Venue::Kalshi,
            &q(70_000),
            &a,
            Venue::Polymarket,
            &q(0),
            &b,
            &Params::default(),
        )
        .unwrap();
        assert_eq!((f.size, f.yes_limit, f.no_limit), (1_000, 400_000, 500_000));
        // Fee-free, the deeper level is worth taking.
        let f = best_walk(
            Venue::Kalshi,
            &q(0),
            &a,
            Venue::Polymarket,
            &q(0),
            &b,
            &Params::default(),
        )
        .unwrap();
        assert_eq!((f.size, f.yes_limit), (2_000, 490_000));
        assert_eq!(
            f.net,
            2_000 * 10_000 - (400_000 * 10 + 490_000 * 10 + 500_000 * 20)
        );
    }

    #[test]
    fn no_edge_no_trade() {
        let a = [(500_000, 1_000)];
        let b = [(500_000, 1_000)];
        assert_eq!(
            best_walk(
                Venue::Kalshi,
                &q(0),
                &a,
                Venue::Polymarket,
                &q(0),
                &b,
                &Params::default()
            ),
            None
        );
        assert_eq!(
            best_walk(
                Venue::Kalshi,
                &q(0),
                &[],
                Venue::Polymarket,
                &q(0),
                &b,
                &Params::default()
            ),
            None
        );
    }
}
