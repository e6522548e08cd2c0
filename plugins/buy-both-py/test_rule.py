"""Unit tests of rule.py (plain Python). Run: python3 -m unittest (from this folder)."""

import unittest
from dataclasses import dataclass, field, replace
from typing import List

import rule
from rule import KALSHI, POLYMARKET, Config, ConfigError, Opp


@dataclass
class Quote:
    """Stand-in for the generated `VenueQuote` (same snake_case attribute names)."""
    yes_ask: int = 0
    yes_ask_size: int = 0
    no_ask: int = 0
    no_ask_size: int = 0
    yes_bid: int = 0
    no_bid: int = 0
    book_age_us: int = 0
    taker_fee_ppm: int = 0
    fee_exponent: int = 1
    min_size: int = 1
    size_step: int = 1


@dataclass
class View:
    """Stand-in for the generated `MarketView`."""
    market: int = 7
    now_us: int = 0
    kalshi: Quote = field(default_factory=Quote)
    polymarket: Quote = field(default_factory=Quote)
    depth: int = 0
    ladders: List[int] = field(default_factory=list)


def worked_example() -> View:
    """RULE.md worked example: Kalshi YES 0.40 vs Polymarket NO 0.55."""
    return View(
        kalshi=Quote(yes_ask=400000, yes_ask_size=10000, taker_fee_ppm=70000),
        polymarket=Quote(no_ask=550000, no_ask_size=10000, taker_fee_ppm=40000,
                         fee_exponent=1),
    )


class FeeTests(unittest.TestCase):
    def test_kalshi_fee_worked_example(self):
        self.assertEqual(rule.kalshi_fee(70000, 10000, 400000), 1680000)

    def test_polymarket_fee_worked_example(self):
        self.assertEqual(rule.polymarket_fee(40000, 10000, 550000, 1), 990000)

    def test_kalshi_fee_rounds_up_to_cent(self):
        # 1 contract at 0.50, 7%: 0.0175 dollars -> 0.02 dollars.
        self.assertEqual(rule.kalshi_fee(70000, 100, 500000), 20000)
        # 0.01 contract at 0.50, 7%: 0.000175 -> one cent.
        self.assertEqual(rule.kalshi_fee(70000, 1, 500000), 10000)
        self.assertEqual(rule.kalshi_fee(0, 100, 500000), 0)

    def test_polymarket_fee_rounds_up_to_hundredth_cent(self):
        # 1 share at 0.50, 4%, e=1: 0.01 dollars exactly.
        self.assertEqual(rule.polymarket_fee(40000, 100, 500000, 1), 10000)
        # 0.01 share: 0.0001 dollars exactly; at 0.51: 0.00009996 -> 0.0001.
        self.assertEqual(rule.polymarket_fee(40000, 1, 500000, 1), 100)
        self.assertEqual(rule.polymarket_fee(40000, 1, 510000, 1), 100)
        # e=2: 1 share at 0.50, 4%: 0.04 * 0.0625 = 0.0025 dollars.
        self.assertEqual(rule.polymarket_fee(40000, 100, 500000, 2), 2500)
        self.assertEqual(rule.polymarket_fee(0, 100, 500000, 1), 0)

    def test_big_products_are_exact(self):
        # Beyond 64 bits: max u64 size, max-ish rate.
        size = 2 ** 64 - 1
        raw = 1000000 * size * 500000 * 500000
        self.assertGreater(raw, 2 ** 64)
        self.assertEqual(rule.kalshi_fee(1000000, size, 500000),
                         -(-raw // 10 ** 18) * 10000)


class EvaluateTests(unittest.TestCase):
    def test_worked_example(self):
        opps = rule.evaluate(worked_example(), Config(min_profit=10000, max_size=10000))
        self.assertEqual(opps, [Opp(market=7, buy_yes_on=KALSHI, buy_no_on=POLYMARKET,
                                    yes_limit=400000, no_limit=550000, size=10000,
                                    expected_net_edge=2330000)])
        # cost 95000000, payout 100000000, fees 1680000 + 990000.
        self.assertEqual(100000000 - 95000000 - 1680000 - 990000, 2330000)

    def test_no_edge(self):
        # YES 0.50 + NO 0.50 = 1.00: nothing left even before fees.
        v = View(kalshi=Quote(yes_ask=500000, yes_ask_size=1000),
                 polymarket=Quote(no_ask=500000, no_ask_size=1000))
        self.assertEqual(rule.evaluate(v, Config()), [])

    def test_empty_books(self):
        self.assertEqual(rule.evaluate(View(), Config()), [])
        # Price present but the other leg missing (price 0).
        v = View(kalshi=Quote(yes_ask=100000, yes_ask_size=1000),
                 polymarket=Quote(no_ask=0, no_ask_size=1000))
        self.assertEqual(rule.evaluate(v, Config()), [])

    def test_edge_below_threshold(self):
        # No fees, 0.49 + 0.50: net 0.01 per contract = 10000 per contract.
        v = View(kalshi=Quote(yes_ask=490000, yes_ask_size=1000),
                 polymarket=Quote(no_ask=500000, no_ask_size=1000))
        self.assertEqual(len(rule.evaluate(v, Config(min_profit=10000))), 1)  # equal: taken
        self.assertEqual(rule.evaluate(v, Config(min_profit=10001)), [])
        # Positive but tiny edge with min-profit 0 is still taken; zero edge never is.
        v0 = View(kalshi=Quote(yes_ask=500000, yes_ask_size=1000),
                  polymarket=Quote(no_ask=500000, no_ask_size=1000))
        self.assertEqual(rule.evaluate(v0, Config(min_profit=0)), [])

    def test_edge_kalshi_yes_polymarket_no(self):
        v = View(market=3,
                 kalshi=Quote(yes_ask=300000, yes_ask_size=500, no_ask=800000, no_ask_size=500),
                 polymarket=Quote(yes_ask=250000, yes_ask_size=500, no_ask=600000, no_ask_size=500))
        # Direction 1: 0.30 + 0.60 = 0.90; direction 2: 0.25 + 0.80 = 1.05.
        self.assertEqual(rule.evaluate(v, Config()),
                         [Opp(3, KALSHI, POLYMARKET, 300000, 600000, 500, 500000)])

    def test_edge_polymarket_yes_kalshi_no(self):
        v = View(market=4,
                 kalshi=Quote(yes_ask=700000, yes_ask_size=500, no_ask=400000, no_ask_size=300),
                 polymarket=Quote(yes_ask=450000, yes_ask_size=800, no_ask=350000, no_ask_size=500))
        # Direction 1: 0.70 + 0.35 = 1.05; direction 2: 0.45 + 0.40 = 0.85 on 3 contracts.
        self.assertEqual(rule.evaluate(v, Config()),
                         [Opp(4, POLYMARKET, KALSHI, 450000, 400000, 300, 450000)])

    def test_both_directions_in_order(self):
        v = View(kalshi=Quote(yes_ask=400000, yes_ask_size=100, no_ask=400000, no_ask_size=100),
                 polymarket=Quote(yes_ask=400000, yes_ask_size=100, no_ask=400000, no_ask_size=100))
        opps = rule.evaluate(v, Config())
        self.assertEqual([(o.buy_yes_on, o.buy_no_on) for o in opps],
                         [(KALSHI, POLYMARKET), (POLYMARKET, KALSHI)])
        self.assertEqual([o.expected_net_edge for o in opps], [200000, 200000])

    def test_fees_eat_the_edge(self):
        # Worked example gross edge is 5000000 (0.05 x 100); fees 2670000 leave 2330000.
        # With min-profit 23300 per contract it still passes, 23301 it fails.
        v = worked_example()
        self.assertEqual(len(rule.evaluate(v, Config(min_profit=23300))), 1)
        self.assertEqual(rule.evaluate(v, Config(min_profit=23301)), [])
        # Raise the fees so the gross 0.05 edge goes negative: Kalshi 25% -> 6000000 fee.
        v2 = replace(v, kalshi=replace(v.kalshi, taker_fee_ppm=250000))
        self.assertEqual(rule.evaluate(v2, Config(min_profit=0)), [])
        # Same book with no fees: the whole 0.05 edge.
        v3 = replace(v, kalshi=replace(v.kalshi, taker_fee_ppm=0),
                     polymarket=replace(v.polymarket, taker_fee_ppm=0))
        self.assertEqual(rule.evaluate(v3, Config())[0].expected_net_edge, 5000000)

    def test_cost_rounds_each_leg_up(self):
        # size 1 (0.01 contract): 0.333333*0.01 = 3333.33 -> 3334 micro-dollars per leg.
        v = View(kalshi=Quote(yes_ask=333333, yes_ask_size=1),
                 polymarket=Quote(no_ask=333333, no_ask_size=1))
        opps = rule.evaluate(v, Config(min_profit=0))
        self.assertEqual(opps[0].expected_net_edge, 10000 - 3334 - 3334)

    def test_thin_depth_caps_size(self):
        v = worked_example()
        v.kalshi.yes_ask_size = 1234
        opps = rule.evaluate(v, Config(max_size=10000))
        self.assertEqual(opps[0].size, 1234)
        v.kalshi.yes_ask_size = 10000
        v.polymarket.no_ask_size = 777
        self.assertEqual(rule.evaluate(v, Config(max_size=10000))[0].size, 777)
        # max-size caps too.
        v.polymarket.no_ask_size = 10000
        self.assertEqual(rule.evaluate(v, Config(max_size=250))[0].size, 250)

    def test_size_rounds_down_to_steps(self):
        v = worked_example()
        v.kalshi.yes_ask_size = 1234
        v.kalshi.size_step = 100
        self.assertEqual(rule.evaluate(v, Config())[0].size, 1200)
        # Then the other venue's step: 1200 -> multiple of 500 = 1000.
        v.polymarket.size_step = 500
        self.assertEqual(rule.evaluate(v, Config())[0].size, 1000)
        # A step of 0 counts as 1.
        v.kalshi.size_step = 0
        v.polymarket.size_step = 0
        self.assertEqual(rule.evaluate(v, Config())[0].size, 1234)

    def test_rounding_to_zero_skips(self):
        v = worked_example()
        v.kalshi.yes_ask_size = 99
        v.kalshi.size_step = 100
        v.kalshi.min_size = 0
        v.polymarket.min_size = 0
        self.assertEqual(rule.evaluate(v, Config()), [])

    def test_min_size(self):
        v = worked_example()
        v.polymarket.no_ask_size = 499
        v.polymarket.min_size = 500  # Polymarket 5-share minimum
        self.assertEqual(rule.evaluate(v, Config()), [])
        v.polymarket.no_ask_size = 500
        self.assertEqual(rule.evaluate(v, Config())[0].size, 500)
        # The larger of the two minimums applies, whichever leg it belongs to.
        v.kalshi.min_size = 600
        self.assertEqual(rule.evaluate(v, Config()), [])


class ConfigureTests(unittest.TestCase):
    def test_defaults(self):
        self.assertEqual(Config(), Config(min_profit=10000, max_size=10000))
        self.assertEqual([(n, u, d) for n, _, u, d in rule.PARAMS],
                         [("min-profit", "micro-dollars per contract", 10000),
                          ("max-size", "hundredths of a contract", 10000)])

    def test_accepts(self):
        self.assertEqual(rule.configure([("min-profit", 0), ("max-size", 1)]), Config(0, 1))
        self.assertEqual(rule.configure([("max-size", 500)], Config(3, 4)), Config(3, 500))

    def test_unknown_name(self):
        with self.assertRaises(ConfigError) as cm:
            rule.configure([("min-profit", 5), ("max-sise", 5)])
        self.assertIn("max-sise", str(cm.exception))

    def test_negative_min_profit(self):
        with self.assertRaises(ConfigError) as cm:
            rule.configure([("min-profit", -1)])
        self.assertIn("min-profit", str(cm.exception))

    def test_non_positive_max_size(self):
        for bad in (0, -5):
            with self.assertRaises(ConfigError) as cm:
                rule.configure([("max-size", bad)])
            self.assertIn("max-size", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
