"""The buy-both rule (plugins/RULE.md), in plain Python with no WIT imports.

Inputs are duck-typed: `evaluate` reads the attribute names of the bindings that
componentize-py generates for wit/strategy.wit (snake_case: `view.market`,
`view.kalshi.yes_ask`, ...), so the generated dataclasses and any test stand-ins
both work. All arithmetic is on Python ints (arbitrary precision), so the
products that exceed 64 bits are exact.
"""

from typing import Iterable, List, NamedTuple, Tuple

# Venue codes, equal to the WIT enum discriminants (kalshi = 0, polymarket = 1).
KALSHI = 0
POLYMARKET = 1

NAME = "buy-both-py"
VERSION = "1.0.0"
DESCRIPTION = (
    "Buys YES on one venue and NO on the other when the pair costs less than "
    "the $1 payout by at least min-profit per contract after both venues' fees."
)

DEFAULT_MIN_PROFIT = 10000
DEFAULT_MAX_SIZE = 10000

# (name, description, unit, default), in the order RULE.md lists them.
PARAMS: List[Tuple[str, str, str, int]] = [
    ("min-profit",
     "minimum net edge per contract after fees",
     "micro-dollars per contract",
     DEFAULT_MIN_PROFIT),
    ("max-size",
     "largest trade (100 contracts)",
     "hundredths of a contract",
     DEFAULT_MAX_SIZE),
]


class ConfigError(ValueError):
    """A refused parameter set; str(err) is the readable message."""


class Config(NamedTuple):
    min_profit: int = DEFAULT_MIN_PROFIT
    max_size: int = DEFAULT_MAX_SIZE


class Opp(NamedTuple):
    """One opportunity; venues are KALSHI / POLYMARKET."""
    market: int
    buy_yes_on: int
    buy_no_on: int
    yes_limit: int
    no_limit: int
    size: int
    expected_net_edge: int


def configure(params: Iterable[Tuple[str, int]], current: Config = Config()) -> Config:
    """Return the new Config, starting from `current`, or raise ConfigError.

    `params` is (name, value) pairs. Nothing is applied unless all are valid.
    """
    min_profit, max_size = current
    for name, value in params:
        if name == "min-profit":
            if value < 0:
                raise ConfigError("min-profit must be >= 0 (got %d)" % value)
            min_profit = value
        elif name == "max-size":
            if value <= 0:
                raise ConfigError("max-size must be > 0 (got %d)" % value)
            max_size = value
        else:
            raise ConfigError("unknown parameter %r (accepted: min-profit, max-size)" % name)
    return Config(min_profit, max_size)


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def kalshi_fee(ppm: int, size: int, p: int) -> int:
    """Micro-dollars: ceil(ppm * size * p * (1e6 - p) / 1e18) cents."""
    raw = ppm * size * p * (1000000 - p)
    return _ceil_div(raw, 10 ** 18) * 10000


def polymarket_fee(ppm: int, size: int, p: int, e: int) -> int:
    """Micro-dollars: size * ppm * (p * (1e6 - p))^e rounded up to $0.0001."""
    raw = size * ppm * (p * (1000000 - p)) ** e
    return _ceil_div(raw, 10 ** (4 + 12 * e)) * 100


def fee(venue: int, q, size: int, p: int) -> int:
    """Fee for buying `size` at `p` on `venue`, whose quote is `q`."""
    if venue == KALSHI:
        return kalshi_fee(q.taker_fee_ppm, size, p)
    return polymarket_fee(q.taker_fee_ppm, size, p, q.fee_exponent)


def evaluate(view, cfg: Config) -> List[Opp]:
    """The buy-both rule for one market view; directions in RULE.md order."""
    out: List[Opp] = []
    k = view.kalshi
    pm = view.polymarket
    for va, a, vb, b in ((KALSHI, k, POLYMARKET, pm), (POLYMARKET, pm, KALSHI, k)):
        yes = a.yes_ask
        no = b.no_ask
        if yes == 0 or no == 0 or yes >= 1_000_000 or no >= 1_000_000:
            continue
        # The asks alone cost the $1 payout or more; fees are never negative.
        if yes + no >= 1_000_000:
            continue
        size = min(a.yes_ask_size, b.no_ask_size, cfg.max_size)
        step = a.size_step or 1
        size -= size % step
        step = b.size_step or 1
        size -= size % step
        if size == 0 or size < max(a.min_size, b.min_size):
            continue
        cost = _ceil_div(yes * size, 100) + _ceil_div(no * size, 100)
        payout = size * 10000
        net = payout - cost - fee(va, a, size, yes) - fee(vb, b, size, no)
        if net > 0 and net * 100 >= cfg.min_profit * size and net < 2**63:
            out.append(Opp(view.market, va, vb, yes, no, size, net))
    return out
