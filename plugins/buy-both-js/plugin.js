// Component entry for the `strategy` world (doubletime:strategy@1.1.0), built with
// componentize-js: world-level exports are ES exports named in camelCase
// (register-markets -> registerMarkets); the host interface is imported from
// 'doubletime:strategy/host@1.1.0'. The rule itself lives in ./rule.js.
import { log } from 'doubletime:strategy/host@1.1.0';
import {
  DEFAULT_CONFIG,
  applyParams,
  describe as describeRule,
  evaluate as evaluateRule,
} from './rule.js';

let config = { ...DEFAULT_CONFIG };

export function describe() {
  return describeRule();
}

// result<_, string>: return { tag: 'ok' } / { tag: 'err', val: message } explicitly.
// (A thrown Error instance would be re-thrown by the bindings and trap.)
export function configure(params) {
  try {
    config = applyParams(config, params);
  } catch (e) {
    const message = e && e.message ? e.message : String(e);
    log('warn', `configure refused: ${message}`);
    return { tag: 'err', val: message };
  }
  log('info', `configured min-profit=${config.minProfit} max-size=${config.maxSize}`);
  return { tag: 'ok', val: undefined };
}

// The rule does not need market names.
export function registerMarkets(_markets) {}

export function evaluate(view) {
  return evaluateRule(view, config);
}
