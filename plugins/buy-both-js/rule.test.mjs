// Tests for the pure rule (rule.js): `node --test` from this directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_CONFIG,
  applyParams,
  ceilDiv,
  describe,
  evaluate,
  evaluateDirection,
  kalshiFee,
  polymarketFee,
} from './rule.js';

// A venue-quote shaped like the componentize-js bindings deliver it
// (u32 -> Number, u64 -> BigInt). No liquidity and no fees unless overridden.
function quote(over = {}) {
  return {
    yesAsk: 0,
    yesAskSize: 0n,
    noAsk: 0,
    noAskSize: 0n,
    yesBid: 0,
    noBid: 0,
    bookAgeUs: 0n,
    takerFeePpm: 0,
    feeExponent: 1,
    minSize: 1n,
    sizeStep: 1n,
    ...over,
  };
}

function view(kalshi, polymarket, market = 7) {
  return { market, nowUs: 1_700_000_000_000_000n, kalshi, polymarket, depth: 0, ladders: new Uint32Array(0) };
}

const cfg = (minProfit = 10000n, maxSize = 10000n) => ({ minProfit, maxSize });

// The worked example from the brief.
const exampleKalshi = () => quote({ yesAsk: 400000, yesAskSize: 10000n, takerFeePpm: 70000 });
const examplePoly = () => quote({ noAsk: 550000, noAskSize: 10000n, takerFeePpm: 40000, feeExponent: 1 });

test('worked example: Kalshi YES 0.40 + Polymarket NO 0.55, 100 contracts', () => {
  const d = evaluateDirection(exampleKalshi(), 'kalshi', examplePoly(), 'polymarket', cfg());
  assert.equal(d.size, 10000n);
  assert.equal(d.yesFee, 1680000n); // Kalshi fee
  assert.equal(d.noFee, 990000n); // Polymarket fee
  assert.equal(d.cost, 95000000n);
  assert.equal(d.payout, 100000000n);
  assert.equal(d.net, 2330000n);

  const ops = evaluate(view(exampleKalshi(), examplePoly()), cfg(10000n, 10000n));
  assert.deepEqual(ops, [
    {
      market: 7,
      buyYesOn: 'kalshi',
      buyNoOn: 'polymarket',
      yesLimit: 400000,
      noLimit: 550000,
      size: 10000n,
      expectedNetEdge: 2330000n,
    },
  ]);
  assert.equal(typeof ops[0].yesLimit, 'number'); // u32 -> Number
  assert.equal(typeof ops[0].size, 'bigint'); // u64 -> BigInt
  assert.equal(typeof ops[0].expectedNetEdge, 'bigint'); // s64 -> BigInt
});

test('no edge: empty books, zero prices, and a pair costing exactly $1', () => {
  assert.deepEqual(evaluate(view(quote(), quote()), cfg()), []);
  // YES offered but no NO on the other side (price 0): skipped.
  assert.deepEqual(evaluate(view(quote({ yesAsk: 100000, yesAskSize: 1000n }), quote()), cfg()), []);
  // 0.50 + 0.50 with no fees: net 0 at best, not > 0, even with min-profit 0;
  // skipped before any fee arithmetic.
  const k = quote({ yesAsk: 500000, yesAskSize: 1000n });
  const p = quote({ noAsk: 500000, noAskSize: 1000n });
  assert.equal(evaluateDirection(k, 'kalshi', p, 'polymarket', cfg()), null);
  assert.deepEqual(evaluate(view(k, p), cfg(0n)), []);
  // One micro-dollar less is worked out: 10 contracts, net 10 micro-dollars.
  const cheaper = quote({ noAsk: 499999, noAskSize: 1000n });
  assert.equal(evaluateDirection(k, 'kalshi', cheaper, 'polymarket', cfg()).net, 10n);
});

test('edge below the min-profit threshold, and exactly at it', () => {
  // 0.495 + 0.500, no fees, 100 contracts: net 500000 = 5000 per contract.
  const k = quote({ yesAsk: 495000, yesAskSize: 10000n });
  const p = quote({ noAsk: 500000, noAskSize: 10000n });
  assert.deepEqual(evaluate(view(k, p), cfg(10000n)), []); // 5000 < 10000 per contract
  assert.deepEqual(evaluate(view(k, p), cfg(5001n)), []);
  const ops = evaluate(view(k, p), cfg(5000n)); // net * 100 == min-profit * size: taken
  assert.equal(ops.length, 1);
  assert.equal(ops[0].expectedNetEdge, 500000n);
});

test('edge in each direction, and both directions in rule order', () => {
  // Direction 2 only: YES on Polymarket, NO on Kalshi.
  const k2 = quote({ noAsk: 450000, noAskSize: 2000n, takerFeePpm: 70000 });
  const p2 = quote({ yesAsk: 480000, yesAskSize: 3000n, takerFeePpm: 40000 });
  const ops2 = evaluate(view(k2, p2, 1), cfg());
  // size 2000: Kalshi NO fee ceil(70000*2000*450000*550000/1e18)=ceil(34.65)=35 -> 350000;
  // Polymarket YES fee ceil(2000*40000*(480000*520000)/1e16)=ceil(1996.8)=1997 -> 199700;
  // cost 9600000 + 9000000; payout 20000000; net 1400000 - 550000 = 850300.
  assert.deepEqual(ops2, [
    {
      market: 1,
      buyYesOn: 'polymarket',
      buyNoOn: 'kalshi',
      yesLimit: 480000,
      noLimit: 450000,
      size: 2000n,
      expectedNetEdge: 850300n,
    },
  ]);

  // Direction 1 only: YES on Kalshi, NO on Polymarket (the worked example).
  const ops1 = evaluate(view(exampleKalshi(), examplePoly()), cfg());
  assert.equal(ops1.length, 1);
  assert.equal(ops1[0].buyYesOn, 'kalshi');
  assert.equal(ops1[0].buyNoOn, 'polymarket');

  // Both at once (crossed books, no fees): Kalshi-YES direction comes first.
  const k = quote({ yesAsk: 300000, yesAskSize: 1000n, noAsk: 300000, noAskSize: 1000n });
  const p = quote({ yesAsk: 400000, yesAskSize: 1000n, noAsk: 400000, noAskSize: 1000n });
  const both = evaluate(view(k, p), cfg());
  assert.deepEqual(
    both.map((o) => [o.buyYesOn, o.buyNoOn, o.expectedNetEdge]),
    [
      ['kalshi', 'polymarket', 3000000n],
      ['polymarket', 'kalshi', 3000000n],
    ],
  );
});

test('fees eating the edge', () => {
  // Gross edge 5000000 on 100 contracts, but a 100% Kalshi rate costs 24000000.
  const k = quote({ yesAsk: 400000, yesAskSize: 10000n, takerFeePpm: 1000000 });
  const d = evaluateDirection(k, 'kalshi', examplePoly(), 'polymarket', cfg());
  assert.equal(d.yesFee, 24000000n);
  assert.ok(d.net < 0n);
  assert.deepEqual(evaluate(view(k, examplePoly()), cfg(0n)), []);

  // Gross edge 50000/contract passes min-profit 30000 before fees, net 23300 does not.
  assert.deepEqual(evaluate(view(exampleKalshi(), examplePoly()), cfg(30000n)), []);
  assert.equal(evaluate(view(exampleKalshi(), examplePoly()), cfg(23300n)).length, 1);
  assert.deepEqual(evaluate(view(exampleKalshi(), examplePoly()), cfg(23301n)), []);
});

test('thin depth and max-size cap the size', () => {
  // Only 2.50 contracts of Kalshi YES.
  const k = quote({ yesAsk: 400000, yesAskSize: 250n, takerFeePpm: 70000 });
  const d = evaluateDirection(k, 'kalshi', examplePoly(), 'polymarket', cfg());
  assert.equal(d.size, 250n);
  assert.equal(d.yesFee, 50000n); // ceil(4.2 cents) = 5 cents
  assert.equal(d.noFee, 24800n); // ceil(247.5) * 100
  assert.equal(d.cost, 2375000n);
  assert.equal(d.net, 50200n);
  assert.deepEqual(
    evaluate(view(k, examplePoly()), cfg()).map((o) => [o.size, o.expectedNetEdge]),
    [[250n, 50200n]],
  );

  // Thin Polymarket NO side.
  const p = quote({ noAsk: 550000, noAskSize: 120n, takerFeePpm: 40000 });
  assert.equal(evaluateDirection(exampleKalshi(), 'kalshi', p, 'polymarket', cfg()).size, 120n);

  // max-size below both depths.
  const capped = evaluate(view(exampleKalshi(), examplePoly()), cfg(10000n, 5000n));
  assert.deepEqual(
    capped.map((o) => [o.size, o.expectedNetEdge]),
    [[5000n, 1165000n]], // 2500000 - 840000 - 495000
  );
});

test('size rounds down to both steps, then min-size applies', () => {
  const k = quote({ yesAsk: 400000, yesAskSize: 1234n, sizeStep: 100n });
  const p = quote({ noAsk: 500000, noAskSize: 5000n, sizeStep: 500n });
  assert.equal(evaluateDirection(k, 'kalshi', p, 'polymarket', cfg()).size, 1000n); // 1234 -> 1200 -> 1000

  // Step 0 counts as 1.
  const k0 = quote({ yesAsk: 400000, yesAskSize: 1234n, sizeStep: 0n });
  const p0 = quote({ noAsk: 500000, noAskSize: 5000n, sizeStep: 0n });
  assert.equal(evaluateDirection(k0, 'kalshi', p0, 'polymarket', cfg()).size, 1234n);

  // Below the larger of the two min-sizes (Polymarket 5 shares): skipped.
  const pMin = quote({ noAsk: 500000, noAskSize: 5000n, minSize: 1500n, sizeStep: 500n });
  assert.equal(evaluateDirection(k, 'kalshi', pMin, 'polymarket', cfg()), null);
  assert.deepEqual(evaluate(view(k, pMin), cfg()), []);
  // Exactly at min-size: kept.
  const pAt = quote({ noAsk: 500000, noAskSize: 5000n, minSize: 1000n, sizeStep: 500n });
  assert.equal(evaluateDirection(k, 'kalshi', pAt, 'polymarket', cfg()).size, 1000n);

  // Rounding to zero is skipped even with min-size 0.
  const kSmall = quote({ yesAsk: 400000, yesAskSize: 99n, sizeStep: 100n, minSize: 0n });
  const pNoMin = quote({ noAsk: 500000, noAskSize: 5000n, minSize: 0n });
  assert.equal(evaluateDirection(kSmall, 'kalshi', pNoMin, 'polymarket', cfg()), null);
});

test('cost rounds each leg up separately', () => {
  // One hundredth of a contract at 0.400001 and 0.500001.
  const k = quote({ yesAsk: 400001, yesAskSize: 1n });
  const p = quote({ noAsk: 500001, noAskSize: 1n });
  const d = evaluateDirection(k, 'kalshi', p, 'polymarket', cfg());
  assert.equal(d.cost, 4001n + 5001n);
  assert.equal(d.net, 10000n - 9002n);
});

test('fee formulas: rounding and exactness beyond 2^53 and 2^64', () => {
  // Kalshi rounds up to a whole cent.
  assert.equal(kalshiFee(quote({ takerFeePpm: 70000 }), 500000n, 1n), 10000n);
  assert.equal(kalshiFee(quote({ takerFeePpm: 0 }), 500000n, 1n), 0n);
  // Polymarket rounds up to $0.0001.
  assert.equal(polymarketFee(quote({ takerFeePpm: 40000 }), 550000n, 1n), 100n);
  // Exponent 0 and 2.
  assert.equal(polymarketFee(quote({ takerFeePpm: 40000, feeExponent: 0 }), 550000n, 10000n), 4000000n);
  // 10000 * 40000 * (2.475e11)^2 / 1e28 = 2450.25 -> 2451 -> 245100
  assert.equal(polymarketFee(quote({ takerFeePpm: 40000, feeExponent: 2 }), 550000n, 10000n), 245100n);

  // Big size: products far beyond 2^64, compared with a direct BigInt evaluation.
  const size = (1n << 60n) + 12345n;
  const kq = quote({ takerFeePpm: 4000000000 });
  const kRaw = 4000000000n * size * 123457n * (1000000n - 123457n);
  assert.equal(kalshiFee(kq, 123457n, size), ((kRaw + 10n ** 18n - 1n) / 10n ** 18n) * 10000n);
  const pq = quote({ takerFeePpm: 4000000000, feeExponent: 3 });
  const pRaw = size * 4000000000n * (654321n * (1000000n - 654321n)) ** 3n;
  const pDiv = 10n ** (4n + 36n);
  assert.equal(polymarketFee(pq, 654321n, size), ((pRaw + pDiv - 1n) / pDiv) * 100n);

  // Huge exponents are exact (fee rounds up to one step) and fast.
  const e65 = quote({ takerFeePpm: 40000, feeExponent: 65 });
  const direct = ceilDiv(10000n * 40000n * (550000n * 450000n) ** 65n, 10n ** (4n + 12n * 65n)) * 100n;
  assert.equal(polymarketFee(e65, 550000n, 10000n), direct);
  assert.equal(polymarketFee(quote({ takerFeePpm: 40000, feeExponent: 4294967295 }), 550000n, 10000n), 100n);
  assert.equal(polymarketFee(quote({ takerFeePpm: 0, feeExponent: 4294967295 }), 550000n, 10000n), 0n);
});

test('ceilDiv rounds toward +infinity for both signs', () => {
  assert.equal(ceilDiv(7n, 2n), 4n);
  assert.equal(ceilDiv(8n, 2n), 4n);
  assert.equal(ceilDiv(0n, 2n), 0n);
  assert.equal(ceilDiv(-7n, 2n), -3n);
});

test('net edges that do not fit s64 are not emitted', () => {
  const huge = 1n << 62n; // payout = size * 10000 overflows s64
  const k = quote({ yesAsk: 1, yesAskSize: huge });
  const p = quote({ noAsk: 1, noAskSize: huge });
  assert.ok(evaluateDirection(k, 'kalshi', p, 'polymarket', cfg(0n, huge)).net > (1n << 63n) - 1n);
  assert.deepEqual(evaluate(view(k, p), cfg(0n, huge)), []);
});

test('configure: defaults, updates, and refusals naming the parameter', () => {
  assert.deepEqual({ ...DEFAULT_CONFIG }, { minProfit: 10000n, maxSize: 10000n });
  const start = cfg(10000n, 10000n);
  assert.deepEqual(
    applyParams(start, [
      { name: 'min-profit', value: 0n },
      { name: 'max-size', value: 1n },
    ]),
    { minProfit: 0n, maxSize: 1n },
  );
  assert.deepEqual(applyParams(start, []), start);

  assert.throws(() => applyParams(start, [{ name: 'min-profit', value: -1n }]), /min-profit/);
  assert.throws(() => applyParams(start, [{ name: 'max-size', value: 0n }]), /max-size/);
  assert.throws(() => applyParams(start, [{ name: 'max-size', value: -5n }]), /max-size/);
  assert.throws(() => applyParams(start, [{ name: 'max_size', value: 5n }]), /unknown parameter "max_size"/);
  // A refused list changes nothing, even if earlier entries were valid.
  assert.throws(() =>
    applyParams(start, [
      { name: 'min-profit', value: 5n },
      { name: 'bogus', value: 1n },
    ]),
  );
  assert.deepEqual(start, cfg(10000n, 10000n));
});

test('describe: name, and both params in order with units and defaults', () => {
  const info = describe();
  assert.equal(info.name, 'buy-both-js');
  assert.equal(typeof info.version, 'string');
  assert.ok(info.description.length > 0);
  assert.deepEqual(
    info.params.map((p) => [p.name, p.unit, p.defaultValue]),
    [
      ['min-profit', 'micro-dollars per contract', 10000n],
      ['max-size', 'hundredths of a contract', 10000n],
    ],
  );
});
