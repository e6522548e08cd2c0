//! A topic that keeps at most one pending delivery per key for each consumer.
//!
//! A publish for a key already waiting merges into the waiting value (the merge
//! function decides how) and keeps its place in the queue, so keys are served
//! fairly in the order they first changed. Memory per consumer is bounded by the
//! number of keys, and publishing never waits.

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Counters, TopicStats};

struct Pending<K, V> {
    values: rustc_hash::FxHashMap<K, V>,
    order: VecDeque<K>,
    closed: bool,
    /// Set by a waker: the blocked consumer returns early to do other work.
    woken: bool,
    /// Threads blocked in `recv_timeout`: a publish signals the condvar only
    /// when one is, since the signal is a system call even with no waiter.
    sleepers: u32,
}

struct Queue<K, V> {
    pending: Mutex<Pending<K, V>>,
    /// Keys waiting, readable without the lock: a polling consumer looks here
    /// first instead of contending with the publisher for `pending`.
    waiting: AtomicUsize,
    // Both: async consumers wait on `notify`, the strategy's OS threads on `ready`.
    notify: Notify,
    ready: Condvar,
}

impl<K, V> Queue<K, V> {
    fn lock(&self) -> MutexGuard<'_, Pending<K, V>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (single insert/remove calls), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type MergeFn<V> = fn(V, V) -> V;

/// A consumer run by the publisher itself, see [`Coalescing::subscribe_inline`].
type InlineFn<K, V> = Arc<dyn Fn(K, V) + Send + Sync>;

struct Inline<K, V> {
    next_id: u64,
    consumers: Vec<(u64, InlineFn<K, V>)>,
}

struct InlineSet<K, V> {
    inline: Mutex<Inline<K, V>>,
    /// `consumers.len()`, read without the lock: most topics have none, and
    /// `books` is published on every book change.
    count: AtomicUsize,
}

impl<K, V> InlineSet<K, V> {
    fn lock(&self) -> MutexGuard<'_, Inline<K, V>> {
        self.inline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Coalescing<K, V> {
    subscribers: Mutex<Vec<Arc<Queue<K, V>>>>,
    inline: Arc<InlineSet<K, V>>,
    merge: MergeFn<V>,
    counters: Arc<Counters>,
}

/// Keeps an inline consumer subscribed; dropping it unsubscribes.
pub struct InlineSubscription<K, V> {
    inline: std::sync::Weak<InlineSet<K, V>>,
    id: u64,
}

impl<K, V> Drop for InlineSubscription<K, V> {
    fn drop(&mut self) {
        if let Some(set) = self.inline.upgrade() {
            let mut inline = set.lock();
            inline.consumers.retain(|(id, _)| *id != self.id);
            set.count.store(inline.consumers.len(), Ordering::Release);
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Coalescing<K, V> {
    pub fn new(merge: MergeFn<V>) -> Self {
        Coalescing {
            subscribers: Mutex::new(Vec::new()),
            inline: Arc::new(InlineSet {
                inline: Mutex::new(Inline {
                    next_id: 0,
                    consumers: Vec::new(),
                }),
                count: AtomicUsize::new(0),
            }),
            merge,
            counters: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> CoalescingReceiver<K, V> {
        let q = Arc::new(Queue {
            pending: Mutex::new(Pending {
                values: Default::default(),
                order: VecDeque::new(),
                closed: false,
                woken: false,
                sleepers: 0,
            }),
            waiting: AtomicUsize::new(0),
            notify: Notify::new(),
            ready: Condvar::new(),
        });
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(q.clone());
        CoalescingReceiver { queue: q }
    }

    /// A consumer that runs on the publisher's thread, inside
    /// [`Self::publish`], on every value in the order published: no queue, no
    /// wake-up, nothing to coalesce. For a consumer short enough to run there
    /// (the risk gate's check: a lock and a few comparisons) whose latency
    /// matters more than the publisher's. It runs until the returned
    /// subscription is dropped.
    pub fn subscribe_inline(
        &self,
        consumer: impl Fn(K, V) + Send + Sync + 'static,
    ) -> InlineSubscription<K, V> {
        let mut inline = self.inline.lock();
        let id = inline.next_id;
        inline.next_id += 1;
        inline.consumers.push((id, Arc::new(consumer)));
        self.inline
            .count
            .store(inline.consumers.len(), Ordering::Release);
        InlineSubscription {
            inline: Arc::downgrade(&self.inline),
            id,
        }
    }

    /// Never blocks on a consumer: at worst it waits for a consumer's short
    /// critical section (one map operation). Inline consumers run here, after
    /// the queued ones were notified.
    pub fn publish(&self, key: K, value: V) {
        self.counters.published();
        self.publish_queued(&key, &value);
        if self.inline.count.load(Ordering::Acquire) == 0 {
            return;
        }
        // Called without the lock: an inline consumer may publish elsewhere,
        // or unsubscribe.
        let inline: Vec<InlineFn<K, V>> = {
            let inline = self.inline.lock();
            inline.consumers.iter().map(|(_, c)| c.clone()).collect()
        };
        if let Some((last, others)) = inline.split_last() {
            for consumer in others {
                consumer(key.clone(), value.clone());
            }
            last(key, value);
        }
    }

    fn publish_queued(&self, key: &K, value: &V) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        // Forget consumers that went away.
        subs.retain(|q| Arc::strong_count(q) > 1);
        for q in subs.iter() {
            let mut p = q.lock();
            match p.values.get_mut(key) {
                Some(waiting) => {
                    *waiting = (self.merge)(waiting.clone(), value.clone());
                    self.counters.coalesced();
                }
                None => {
                    p.values.insert(key.clone(), value.clone());
                    p.order.push_back(key.clone());
                    q.waiting.store(p.order.len(), Ordering::Release);
                }
            }
            let sleeping = p.sleepers > 0;
            drop(p);
            q.notify.notify_one();
            if sleeping {
                q.ready.notify_one();
            }
        }
    }

    pub fn stats(&self) -> TopicStats {
        self.counters.snapshot()
    }
}

pub struct CoalescingReceiver<K, V> {
    queue: Arc<Queue<K, V>>,
}

impl<K: Eq + Hash, V> CoalescingReceiver<K, V> {
    fn pop(q: &Queue<K, V>, p: &mut Pending<K, V>) -> Option<(K, V)> {
        let key = p.order.pop_front()?;
        q.waiting.store(p.order.len(), Ordering::Release);
        let value = p.values.remove(&key)?;
        Some((key, value))
    }

    pub fn try_recv(&self) -> Option<(K, V)> {
        if self.queue.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        Self::pop(&self.queue, &mut self.queue.lock())
    }

    /// Waits for the next key that changed.
    pub async fn recv(&self) -> (K, V) {
        loop {
            let notified = self.queue.notify.notified();
            if let Some(kv) = self.try_recv() {
                return kv;
            }
            notified.await;
        }
    }

    /// Blocking form for dedicated threads; `None` on timeout, when woken by a
    /// [`Self::waker`], or once closed by a [`Self::closer`].
    pub fn recv_timeout(&self, timeout: Duration) -> Option<(K, V)> {
        let mut p = self.queue.lock();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(kv) = Self::pop(&self.queue, &mut p) {
                return Some(kv);
            }
            if p.closed {
                return None;
            }
            if p.woken {
                p.woken = false;
                return None;
            }
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            p.sleepers += 1;
            p = self
                .queue
                .ready
                .wait_timeout(p, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            p.sleepers -= 1;
        }
    }

    /// Whether no key is waiting (without the queue's lock).
    pub fn is_empty(&self) -> bool {
        self.queue.waiting.load(Ordering::SeqCst) == 0
    }

    /// Number of keys waiting.
    pub fn pending(&self) -> usize {
        self.queue.lock().order.len()
    }

    /// Whether a [`Self::closer`] has been called.
    pub fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }

    /// A handle that makes a blocked [`Self::recv_timeout`] return once (so the
    /// consumer can look at its other inputs without polling).
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static
    where
        K: Send + 'static,
        V: Send + 'static,
    {
        let q = self.queue.clone();
        move || {
            q.lock().woken = true;
            q.ready.notify_all();
        }
    }

    /// A handle that wakes a thread blocked in [`Self::recv_timeout`] for good.
    pub fn closer(&self) -> impl Fn() + Send + Sync + 'static
    where
        K: Send + 'static,
        V: Send + 'static,
    {
        let q = self.queue.clone();
        move || {
            q.lock().closed = true;
            q.ready.notify_all();
            q.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest(_: u64, new: u64) -> u64 {
        new
    }

    #[test]
    fn a_lagging_consumer_gets_one_latest_value_per_key_in_first_change_order() {
        let topic: Coalescing<u32, u64> = Coalescing::new(latest);
        let rx = topic.subscribe();
        for i in 0..1000u64 {
            topic.publish((i % 3) as u32, i);
        }
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, vec![(0, 999), (1, 997), (2, 998)]);
        let s = topic.stats();
        assert_eq!((s.published, s.coalesced, s.dropped), (1000, 997, 0));
    }

    #[test]
    fn each_consumer_has_its_own_queue() {
        let topic: Coalescing<u32, u64> = Coalescing::new(latest);
        let fast = topic.subscribe();
        let slow = topic.subscribe();
        topic.publish(1, 1);
        assert_eq!(fast.try_recv(), Some((1, 1)));
        topic.publish(1, 2);
        assert_eq!(fast.try_recv(), Some((1, 2)));
        assert_eq!(
            slow.try_recv(),
            Some((1, 2)),
            "merged for the slow consumer only"
        );
        assert_eq!(topic.stats().coalesced, 1);
    }

    #[test]
    fn an_inline_consumer_sees_every_value_in_order_until_unsubscribed() {
        let topic: Coalescing<u32, u64> = Coalescing::new(latest);
        let queued = topic.subscribe();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let subscription = topic.subscribe_inline(move |k, v| log.lock().unwrap().push((k, v)));
        topic.publish(1, 1);
        topic.publish(1, 2);
        topic.publish(2, 3);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(1, 1), (1, 2), (2, 3)],
            "inline: nothing merged, in publish order"
        );
        assert_eq!(
            queued.try_recv(),
            Some((1, 2)),
            "queued consumers still coalesce"
        );
        drop(subscription);
        topic.publish(3, 4);
        assert_eq!(seen.lock().unwrap().len(), 3, "unsubscribed");
        assert_eq!(topic.stats().published, 4);
    }

    #[test]
    fn dropped_consumers_are_forgotten() {
        let topic: Coalescing<u32, u64> = Coalescing::new(latest);
        let rx = topic.subscribe();
        drop(rx);
        topic.publish(1, 1);
        assert_eq!(topic.subscribers.lock().unwrap().len(), 0);
    }

    #[test]
    fn blocking_receiver_wakes_on_publish_and_on_close() {
        let topic: Arc<Coalescing<u32, u64>> = Arc::new(Coalescing::new(latest));
        let rx = topic.subscribe();
        let close = rx.closer();
        let t = {
            let topic = topic.clone();
            std::thread::spawn(move || topic.publish(7, 70))
        };
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Some((7, 70)));
        t.join().unwrap();
        let wake = rx.waker();
        wake();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            None,
            "woken early"
        );
        assert!(!rx.is_closed());
        close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), None);
    }

    #[tokio::test]
    async fn async_receiver_waits_for_the_next_change() {
        let topic: Arc<Coalescing<u32, u64>> = Arc::new(Coalescing::new(latest));
        let rx = topic.subscribe();
        let publisher = {
            let topic = topic.clone();
            tokio::spawn(async move { topic.publish(3, 30) })
        };
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(got, (3, 30));
        publisher.await.unwrap();
    }
}
