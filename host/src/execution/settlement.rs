//! Polymarket trade settlement as the user channel reports it: a matched
//! order is only a done leg once every trade of it is `CONFIRMED` on-chain; a
//! `FAILED` trade means the leg did not happen (the venue takes the fill back).
//!
//! Statuses are kept by trade id. A waiter that does not hear the final word
//! in time asks `GET /data/trades` (the channel replays nothing after a drop).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use crate::venues::polymarket::messages::TradeStatus;
use crate::venues::polymarket::user::UserEvent;

/// Trade statuses remembered (the oldest are forgotten first).
const REMEMBERED: usize = 4096;

/// How a leg's trades ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Every trade `CONFIRMED`.
    Confirmed,
    /// At least one trade `FAILED`: the leg did not happen.
    Failed { trade_id: String },
    /// No final word within the wait: the match stands, unconfirmed.
    Pending,
}

#[derive(Default)]
pub struct SettlementWatch {
    status: Mutex<Statuses>,
    changed: Notify,
}

#[derive(Default)]
struct Statuses {
    by_trade: HashMap<String, TradeStatus>,
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
                    Ok(UserEvent::Trade(t)) => watch.set(&t.trade_id, t.status),
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

    pub fn set(&self, trade_id: &str, status: TradeStatus) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if s.by_trade.insert(trade_id.to_owned(), status).is_none() {
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

    fn verdict(&self, trade_ids: &[String]) -> Option<Settled> {
        let s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let mut all_confirmed = true;
        for id in trade_ids {
            match s.by_trade.get(id) {
                Some(TradeStatus::Failed) => {
                    return Some(Settled::Failed {
                        trade_id: id.clone(),
                    });
                }
                Some(TradeStatus::Confirmed) => {}
                _ => all_confirmed = false,
            }
        }
        all_confirmed.then_some(Settled::Confirmed)
    }

    /// Waits up to `within` for every one of `trade_ids` to be final.
    pub async fn wait(&self, trade_ids: &[String], within: Duration) -> Settled {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(v) = self.verdict(trade_ids) {
                return v;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Settled::Pending;
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

    #[tokio::test]
    async fn a_leg_is_confirmed_only_when_every_trade_is() {
        let w = SettlementWatch::default();
        w.set("a", TradeStatus::Matched);
        w.set("b", TradeStatus::Confirmed);
        let t = ids(&["a", "b"]);
        assert_eq!(w.wait(&t, Duration::from_millis(5)).await, Settled::Pending);
        w.set("a", TradeStatus::Mined);
        assert_eq!(w.wait(&t, Duration::from_millis(5)).await, Settled::Pending);
        w.set("a", TradeStatus::Confirmed);
        assert_eq!(
            w.wait(&t, Duration::from_millis(5)).await,
            Settled::Confirmed
        );
    }

    #[tokio::test]
    async fn one_failed_trade_fails_the_leg_and_wakes_the_waiter() {
        let w = Arc::new(SettlementWatch::default());
        let t = ids(&["a", "b"]);
        let waiter = {
            let (w, t) = (w.clone(), t.clone());
            tokio::spawn(async move { w.wait(&t, Duration::from_secs(30)).await })
        };
        w.set("a", TradeStatus::Confirmed);
        w.set("b", TradeStatus::Retrying);
        w.set("b", TradeStatus::Failed);
        let got = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            Settled::Failed {
                trade_id: "b".into()
            }
        );
    }
}
