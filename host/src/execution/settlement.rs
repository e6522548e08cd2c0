//! Polymarket trade settlement as the user channel reports it: a matched
//! order is only a done leg once its trades are final on-chain. One order
//! matched against several resting orders makes several trades, and each
//! ends on its own: `CONFIRMED` trades are the leg's fill, a `FAILED` one is
//! quantity the venue takes back (the leg is short by its size, §2.4).
//!
//! Statuses (and each trade's price and size) are kept by trade id. A waiter
//! that does not hear the final word in time asks `GET /data/trades` (the
//! channel replays nothing after a drop).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use crate::domain::{Price, Size};
use crate::venues::polymarket::messages::TradeStatus;
use crate::venues::polymarket::user::UserEvent;

/// Trade statuses remembered (the oldest are forgotten first).
const REMEMBERED: usize = 4096;

/// A trade that ended `FAILED`: what it had matched, when the venue said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedTrade {
    pub trade_id: String,
    pub price: Option<Price>,
    pub size: Option<Size>,
}

/// How a leg's trades ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Every trade final; `failed` are the ones that ended `FAILED` (empty:
    /// every trade `CONFIRMED`).
    Final { failed: Vec<FailedTrade> },
    /// Not every trade final within the wait: `failed` so far, `pending` the
    /// trades with no final word yet.
    Pending {
        failed: Vec<FailedTrade>,
        pending: Vec<String>,
    },
}

#[derive(Default)]
pub struct SettlementWatch {
    status: Mutex<Statuses>,
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    status: TradeStatus,
    matched: Option<(Price, Size)>,
}

#[derive(Default)]
struct Statuses {
    by_trade: HashMap<String, Seen>,
    order: VecDeque<String>,
}

impl SettlementWatch {
    /// Follows the user channel until it closes.
    pub fn spawn(
        mut events: broadcast::Receiver<UserEvent>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let me = Arc::new(SettlementWatch::default());
        let watch = me.clone();
        let task = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(UserEvent::Trade(t)) => {
                        watch.record(&t.trade_id, t.status, Some((t.price, t.size)))
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "settlement watch fell behind the user channel; waiters ask the REST API"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        (me, task)
    }

    /// A trade's status, its price and size unknown (kept if known already).
    pub fn set(&self, trade_id: &str, status: TradeStatus) {
        self.record(trade_id, status, None);
    }

    /// A trade's status, with the price and size it matched at when known.
    pub fn record(&self, trade_id: &str, status: TradeStatus, matched: Option<(Price, Size)>) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let matched = matched.or_else(|| s.by_trade.get(trade_id).and_then(|x| x.matched));
        if s.by_trade
            .insert(trade_id.to_owned(), Seen { status, matched })
            .is_none()
        {
            s.order.push_back(trade_id.to_owned());
            if s.order.len() > REMEMBERED
                && let Some(old) = s.order.pop_front()
            {
                s.by_trade.remove(&old);
            }
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// The trades that `FAILED` and the ones not final yet.
    fn verdict(&self, trade_ids: &[String]) -> (Vec<FailedTrade>, Vec<String>) {
        let s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let mut failed = Vec::new();
        let mut pending = Vec::new();
        for id in trade_ids {
            match s.by_trade.get(id) {
                Some(seen) if seen.status == TradeStatus::Failed => failed.push(FailedTrade {
                    trade_id: id.clone(),
                    price: seen.matched.map(|m| m.0),
                    size: seen.matched.map(|m| m.1),
                }),
                Some(seen) if seen.status == TradeStatus::Confirmed => {}
                _ => pending.push(id.clone()),
            }
        }
        (failed, pending)
    }

    /// Waits up to `within` for every one of `trade_ids` to be final.
    pub async fn wait(&self, trade_ids: &[String], within: Duration) -> Settled {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (failed, pending) = self.verdict(trade_ids);
            if pending.is_empty() {
                return Settled::Final { failed };
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Settled::Pending { failed, pending };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn confirmed() -> Settled {
        Settled::Final { failed: vec![] }
    }

    #[tokio::test]
    async fn a_leg_is_confirmed_only_when_every_trade_is() {
        let w = SettlementWatch::default();
        w.set("a", TradeStatus::Matched);
        w.set("b", TradeStatus::Confirmed);
        let t = ids(&["a", "b"]);
        let pending = Settled::Pending {
            failed: vec![],
            pending: ids(&["a"]),
        };
        assert_eq!(w.wait(&t, Duration::from_millis(5)).await, pending);
        w.set("a", TradeStatus::Mined);
        assert_eq!(w.wait(&t, Duration::from_millis(5)).await, pending);
        w.set("a", TradeStatus::Confirmed);
        assert_eq!(w.wait(&t, Duration::from_millis(5)).await, confirmed());
    }

    #[tokio::test]
    async fn a_failed_trade_is_reported_with_its_size_once_every_trade_is_final() {
        let w = Arc::new(SettlementWatch::default());
        let t = ids(&["a", "b"]);
        let waiter = {
            let (w, t) = (w.clone(), t.clone());
            tokio::spawn(async move { w.wait(&t, Duration::from_secs(30)).await })
        };
        let (price, size) = (Price::parse("0.58").unwrap(), Size::whole(5));
        w.record("b", TradeStatus::Matched, Some((price, size)));
        w.set("b", TradeStatus::Retrying);
        w.set("b", TradeStatus::Failed);
        w.set("a", TradeStatus::Confirmed);
        let got = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            Settled::Final {
                failed: vec![FailedTrade {
                    trade_id: "b".into(),
                    price: Some(price),
                    size: Some(size),
                }]
            }
        );
    }
}
