//! Lossless and broadcast topics.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

use super::{Counters, TopicStats};

/// Every consumer gets every event, in order; a slow consumer's queue grows
/// instead of the producer waiting or the event being dropped. For orders,
/// fills and trades, which must never be lost.
pub struct Lossless<T> {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<T>>>,
    counters: Arc<Counters>,
}

impl<T: Clone> Lossless<T> {
    pub fn new() -> Self {
        Lossless {
            subscribers: Mutex::new(Vec::new()),
            counters: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> LosslessReceiver<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        LosslessReceiver { rx }
    }

    pub fn publish(&self, event: T) {
        self.counters.published();
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|tx| tx.send(event.clone()).is_ok());
    }

    pub fn stats(&self) -> TopicStats {
        self.counters.snapshot()
    }
}

impl<T: Clone> Default for Lossless<T> {
    fn default() -> Self {
        Self::new()
    }
}

pub struct LosslessReceiver<T> {
    rx: mpsc::UnboundedReceiver<T>,
}

impl<T> LosslessReceiver<T> {
    /// `None` when the topic is gone.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
    /// Events waiting for this consumer.
    pub fn backlog(&self) -> usize {
        self.rx.len()
    }
}

/// A ring per consumer: a consumer that falls more than `capacity` events
/// behind loses the oldest ones, and the loss is counted. For status and
/// observability, where the latest state matters more than each step.
pub struct Broadcast<T> {
    tx: broadcast::Sender<T>,
    counters: Arc<Counters>,
}

impl<T: Clone> Broadcast<T> {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Broadcast {
            tx,
            counters: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> BroadcastReceiver<T> {
        BroadcastReceiver {
            rx: self.tx.subscribe(),
            counters: self.counters.clone(),
        }
    }

    pub fn publish(&self, event: T) {
        self.counters.published();
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub fn stats(&self) -> TopicStats {
        self.counters.snapshot()
    }
}

pub struct BroadcastReceiver<T> {
    rx: broadcast::Receiver<T>,
    counters: Arc<Counters>,
}

impl<T: Clone> BroadcastReceiver<T> {
    /// The next event still in the ring; events lost to lag are counted and skipped.
    /// `None` when the topic is gone.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => self.counters.dropped(n),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    pub fn try_recv(&mut self) -> Option<T> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.counters.dropped(n),
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_keeps_every_event_in_order_for_a_slow_consumer() {
        let topic = Lossless::new();
        let mut slow = topic.subscribe();
        // The producer runs to completion without the consumer reading: it never blocks.
        for i in 0..10_000u32 {
            topic.publish(i);
        }
        assert_eq!(slow.backlog(), 10_000);
        let got: Vec<u32> = std::iter::from_fn(|| slow.try_recv()).collect();
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
        assert_eq!(
            topic.stats(),
            TopicStats {
                published: 10_000,
                coalesced: 0,
                dropped: 0
            }
        );
    }

    #[test]
    fn lossless_forgets_closed_consumers() {
        let topic = Lossless::new();
        let rx = topic.subscribe();
        drop(rx);
        topic.publish(1u8);
        assert!(topic.subscribers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn broadcast_drops_oldest_for_a_lagging_consumer_and_counts_it() {
        let topic = Broadcast::new(4);
        let mut rx = topic.subscribe();
        for i in 0..10u32 {
            topic.publish(i);
        }
        let mut got = Vec::new();
        while let Some(e) = rx.try_recv() {
            got.push(e);
        }
        assert_eq!(
            got,
            vec![6, 7, 8, 9],
            "the newest `capacity` events survive"
        );
        assert_eq!(
            topic.stats(),
            TopicStats {
                published: 10,
                coalesced: 0,
                dropped: 6
            }
        );
    }

    #[tokio::test]
    async fn broadcast_recv_skips_lag_and_ends_when_topic_is_gone() {
        let topic = Broadcast::new(2);
        let mut rx = topic.subscribe();
        for i in 0..5u32 {
            topic.publish(i);
        }
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, Some(4));
        drop(topic);
        assert_eq!(rx.recv().await, None);
    }
}
