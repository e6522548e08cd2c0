// The buy-both rule (see ../RULE.md), as a pure ES module with no WIT imports so
// that it can be tested under plain node and bundled into the component.
//
// All money/size/fee arithmetic is BigInt: products such as
// taker-fee-ppm * size * p * (1000000 - p) exceed 2^53 (and 2^64).
//
// Input shapes follow the componentize-js bindings for wit/strategy.wit:
// records are plain objects with camelCase fields, u32 fields are Numbers,
// u64/s64 fields are BigInts, enums are their lowercase case-name strings.
// Every numeric input is passed through BigInt(), so tests may use either.

export const PLUGIN_NAME = 'buy-both-js';
export const PLUGIN_VERSION = '1.0.0';

export const DEFAULT_CONFIG = Object.freeze({ minProfit: 10000n, maxSize: 10000n });

export const PARAM_SPECS = Object.freeze([
  Object.freeze({
    name: 'min-profit',
    description: 'Minimum net edge per contract after both venues\u2019 fees.',
    unit: 'micro-dollars per contract',
    defaultValue: DEFAULT_CONFIG.minProfit,
  }),
  Object.freeze({
    name: 'max-size',
    description: 'Largest trade size on each venue.',
    unit: 'hundredths of a contract',
    defaultValue: DEFAULT_CONFIG.maxSize,
  }),
]);

const ONE_DOLLAR = 1000000n; // micro-dollars
const S64_MAX = (1n << 63n) - 1n;
// Polymarket fee: exponents above this are evaluated with an exact shortcut
// (see polymarketFee) instead of a huge BigInt power.
const MAX_DIRECT_EXPONENT = 64n;

/** describe(): plugin-info as the bindings expect it. */
export function describe() {
  return {
    name: PLUGIN_NAME,
    version: PLUGIN_VERSION,
    description:
      'Buys YES on one venue and NO on the other when the pair costs less than $1 after both venues\u2019 taker fees.',
    params: PARAM_SPECS.map((p) => ({ ...p })),
  };
}

/**
 * Validates a `list<param>` and returns the new config (a new object; `current`
 * is not modified). Parameters not present keep their value from `current`.
 * Throws a ConfigError with a readable message naming the parameter on refusal.
 */
export function applyParams(current, params) {
  const next = { minProfit: current.minProfit, maxSize: current.maxSize };
  for (const p of params) {
    const value = BigInt(p.value);
    switch (p.name) {
      case 'min-profit':
        if (value < 0n) throw new ConfigError(`min-profit must be >= 0, got ${value}`);
        next.minProfit = value;
        break;
      case 'max-size':
        if (value <= 0n) throw new ConfigError(`max-size must be > 0, got ${value}`);
        next.maxSize = value;
        break;
      default:
        throw new ConfigError(
          `unknown parameter ${JSON.stringify(String(p.name))} (expected min-profit or max-size)`,
        );
    }
  }
  return next;
}

export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** ceil(a / b) for b > 0, any sign of a (BigInt `/` truncates toward zero). */
export function ceilDiv(a, b) {
  const q = a / b;
  return a % b > 0n ? q + 1n : q;
}

/** Kalshi taker fee (micro-dollars) for `size` hundredths at price `p`. */
export function kalshiFee(quote, p, size) {
  const ppm = BigInt(quote.takerFeePpm);
  const price = BigInt(p);
  // units of 1e-20 dollars; round UP to a whole cent (1e18 units = 10000 micro-dollars)
  const raw = ppm * size * price * (ONE_DOLLAR - price);
  return ceilDiv(raw, 10n ** 18n) * 10000n;
}

/** Polymarket taker fee (micro-dollars) for `size` hundredths at price `p`. */
export function polymarketFee(quote, p, size) {
  const ppm = BigInt(quote.takerFeePpm);
  const e = BigInt(quote.feeExponent);
  const price = BigInt(p);
  const x = price * (ONE_DOLLAR - price);
  const n = size * ppm;
  if (e <= MAX_DIRECT_EXPONENT) {
    // units 10^-(8 + 12e) dollars; round UP to $0.0001 = 100 micro-dollars
    const raw = n * x ** e;
    return ceilDiv(raw, 10n ** (4n + 12n * e)) * 100n;
  }
  // Huge exponent (never seen on real markets: the exponent is 1). For a price
  // strictly inside (0, 1000000), 0 < x <= 2.5e11 < 1e12, so the exact quotient
  // n * (x / 1e12)^e / 1e4 decreases strictly with e. Once it is <= 1 at
  // MAX_DIRECT_EXPONENT it lies in (0, 1) for every larger e and its ceiling is
  // exactly 1 (or 0 when n == 0), so the result is exact without the power.
  if (x > 0n && x < 10n ** 12n) {
    if (n === 0n) return 0n;
    const rawAtCap = n * x ** MAX_DIRECT_EXPONENT;
    if (rawAtCap <= 10n ** (4n + 12n * MAX_DIRECT_EXPONENT)) return 100n;
  }
  if (x === 0n) return 0n; // p == 1000000: raw == 0
  // Out-of-range price with an absurd exponent: not computable in bounded
  // time/memory. Signal "no fee can be determined"; the caller skips the direction.
  return null;
}

function fee(venue, quote, p, size) {
  return venue === 'kalshi' ? kalshiFee(quote, p, size) : polymarketFee(quote, p, size);
}

/** Net edge and size of one direction, or null when the direction is skipped. */
export function evaluateDirection(a, aVenue, b, bVenue, config) {
  const yes = BigInt(a.yesAsk);
  const no = BigInt(b.noAsk);
  if (yes === 0n || no === 0n || yes >= 1000000n || no >= 1000000n) return null;
  // The asks alone cost the $1 payout or more; fees are never negative.
  if (yes + no >= 1000000n) return null;

  let size = BigInt(a.yesAskSize);
  const bSize = BigInt(b.noAskSize);
  if (bSize < size) size = bSize;
  if (config.maxSize < size) size = config.maxSize;
  let aStep = BigInt(a.sizeStep);
  let bStep = BigInt(b.sizeStep);
  if (aStep === 0n) aStep = 1n;
  if (bStep === 0n) bStep = 1n;
  size -= size % aStep;
  size -= size % bStep;
  const aMin = BigInt(a.minSize);
  const bMin = BigInt(b.minSize);
  const minSize = aMin > bMin ? aMin : bMin;
  if (size < minSize || size === 0n) return null;

  const yesFee = fee(aVenue, a, yes, size);
  const noFee = fee(bVenue, b, no, size);
  if (yesFee === null || noFee === null) return null;

  const cost = ceilDiv(yes * size, 100n) + ceilDiv(no * size, 100n);
  const payout = size * 10000n;
  const net = payout - cost - yesFee - noFee;
  return { size, yes, no, cost, payout, yesFee, noFee, net };
}

/** evaluate(view): list<opportunity> for one market view. */
export function evaluate(view, config) {
  const out = [];
  const directions = [
    [view.kalshi, 'kalshi', view.polymarket, 'polymarket'],
    [view.polymarket, 'polymarket', view.kalshi, 'kalshi'],
  ];
  for (const [a, aVenue, b, bVenue] of directions) {
    const d = evaluateDirection(a, aVenue, b, bVenue, config);
    if (d === null) continue;
    if (d.net > 0n && d.net * 100n >= config.minProfit * d.size && d.net <= S64_MAX) {
      out.push({
        market: view.market,
        buyYesOn: aVenue,
        buyNoOn: bVenue,
        yesLimit: Number(d.yes),
        noLimit: Number(d.no),
        size: d.size,
        expectedNetEdge: d.net,
      });
    }
  }
  return out;
}
