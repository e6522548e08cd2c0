"""buy-both-py: the buy-both rule (plugins/RULE.md) as a `strategy` component.

Built with componentize-py 0.25.1 (see build.sh); the rule itself is in rule.py.
"""

from typing import List

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

import rule

_VENUES = (types.Venue.KALSHI, types.Venue.POLYMARKET)  # indexed by rule.KALSHI / rule.POLYMARKET
_cfg = rule.Config()


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=rule.NAME,
            version=rule.VERSION,
            description=rule.DESCRIPTION,
            params=[types.ParamSpec(n, d, u, v) for (n, d, u, v) in rule.PARAMS],
        )

    def configure(self, params: List[types.Param]) -> None:
        # result<_, string>: return None for ok, raise Err(str) for err.
        global _cfg
        try:
            new = rule.configure([(p.name, p.value) for p in params], _cfg)
        except rule.ConfigError as e:
            raise Err(str(e))
        _cfg = new
        host.log(types.LogLevel.INFO,
                 "configured min-profit=%d max-size=%d" % (new.min_profit, new.max_size))

    def register_markets(self, markets: List[types.MarketInfo]) -> None:
        pass  # the rule needs no per-market state

    def evaluate(self, view: types.MarketView) -> List[types.Opportunity]:
        opps = rule.evaluate(view, _cfg)
        if not opps:
            return []
        return [
            types.Opportunity(o.market, _VENUES[o.buy_yes_on], _VENUES[o.buy_no_on],
                              o.yes_limit, o.no_limit, o.size, o.expected_net_edge)
            for o in opps
        ]
