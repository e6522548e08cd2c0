//! Our Kalshi fills as the private `fill` channel reports them, by client
//! order id: when an order's HTTP answer is lost (the connection dropped after
//! the request went out, a 5xx, an unreadable body) the order may still have
//! filled, and the channel says so within moments.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use crate::domain::Fill;
use crate::venues::kalshi::KalshiFillEvent;

/// Fills remembered (the oldest are forgotten first); far more than can be in flight.
const REMEMBERED: usize = 4096;

#[derive(Default)]
pub struct FillWatch {
    seen: Mutex<Seen>,
    arrived: Notify,
}

#[derive(Default)]
struct Seen {
    /// client order id → (the order's fills merged, Kalshi's order id).
    fills: HashMap<String, (Fill, String)>,
    order: VecDeque<String>,
}

impl FillWatch {
    /// Follows `fills` until the channel closes.
    pub fn spawn(
        mut fills: broadcast::Receiver<KalshiFillEvent>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let me = Arc::new(FillWatch::default());
        let watch = me.clone();
        let task = tokio::spawn(async move {
            loop {
                match fills.recv().await {
                    Ok(ev) => watch.add(ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "fill watch fell behind the Kalshi fill channel"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        (me, task)
    }

    fn add(&self, ev: KalshiFillEvent) {
        let Some(id) = ev.client_order_id.clone().filter(|c| !c.is_empty()) else {
            return;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let fill = Fill {
            client_order_id: id.clone(),
            ..ev.fill
        };
        match seen.fills.get_mut(&id) {
            Some((prior, _)) => *prior = super::merge(Some(prior.clone()), fill),
            None => {
                seen.fills.insert(id.clone(), (fill, ev.order_id));
                seen.order.push_back(id);
                if seen.order.len() > REMEMBERED
                    && let Some(old) = seen.order.pop_front()
                {
                    seen.fills.remove(&old);
                }
            }
        }
        drop(seen);
        self.arrived.notify_waiters();
    }

    /// The fill of `client_order_id` (with Kalshi's order id), waiting up to `within` for it.
    pub async fn wait(&self, client_order_id: &str, within: Duration) -> Option<(Fill, String)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Registered before looking, so a fill arriving in between is not missed.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(found) = self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .fills
                .get(client_order_id)
            {
                return Some(found.clone());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, Outcome, Price, Size, Usd, Venue};

    fn event(client: Option<&str>, size: u64) -> KalshiFillEvent {
        KalshiFillEvent {
            fill: Fill {
                client_order_id: String::new(),
                venue: Venue::Kalshi,
                outcome: Outcome::Yes,
                action: Action::Buy,
                price: Price::parse("0.45").unwrap(),
                size: Size::whole(size),
                fee: Usd::parse("0.01").unwrap(),
                at: 1,
            },
            order_id: "K-1".into(),
            client_order_id: client.map(String::from),
            trade_id: "x".into(),
            ticker: "KX".into(),
            yes_price: Price::parse("0.45").unwrap(),
            is_taker: true,
            post_position: None,
            ts_ms: None,
        }
    }

    #[tokio::test]
    async fn a_fill_arriving_while_waiting_wakes_the_waiter() {
        let (tx, rx) = broadcast::channel(16);
        let (watch, _task) = FillWatch::spawn(rx);
        let waiter = {
            let watch = watch.clone();
            tokio::spawn(async move { watch.wait("t1-yes", Duration::from_secs(30)).await })
        };
        // Another order's fill, one without an id, then ours in two parts.
        tx.send(event(Some("t2-yes"), 1)).unwrap();
        tx.send(event(None, 1)).unwrap();
        tx.send(event(Some("t1-yes"), 4)).unwrap();
        let (fill, order_id) = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .unwrap()
            .unwrap()
            .expect("our fill");
        assert_eq!(order_id, "K-1");
        assert_eq!(fill.client_order_id, "t1-yes");
        assert!(fill.size >= Size::whole(4));
        tx.send(event(Some("t1-yes"), 6)).unwrap();
        // Both parts merge (the second may still be in flight: wait for the total).
        let total = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let (f, _) = watch.wait("t1-yes", Duration::from_secs(1)).await.unwrap();
                if f.size == Size::whole(10) {
                    return f;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(total.fee, Usd::parse("0.02").unwrap());
    }

    #[tokio::test]
    async fn no_fill_means_none_after_the_grace() {
        let (_tx, rx) = broadcast::channel::<KalshiFillEvent>(16);
        let (watch, _task) = FillWatch::spawn(rx);
        assert!(
            watch
                .wait("t9-no", Duration::from_millis(20))
                .await
                .is_none()
        );
    }
}
