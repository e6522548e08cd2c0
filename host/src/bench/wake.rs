//! What one hand-over between threads costs on this machine when the side
//! taking it is idle. Tick-to-order is a chain of such hops (the decision
//! wakes the executor's worker; each request wakes its connection's task, the
//! kernel and then the venue's server), and on a loopback bench the other
//! side is usually asleep: windows open every 300 ms. Each figure is a
//! timestamp taken just before the hand-over, read by the side that wakes.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::strategy::stats::{Histogram, LatencySummary};

#[derive(Debug, Clone)]
pub struct WakeFloor {
    pub gap: Duration,
    /// A parked thread unparked (a futex wake).
    pub unpark: LatencySummary,
    /// A task spawned from a plain thread onto an idle tokio runtime.
    pub spawn: LatencySummary,
    /// 8 bytes written to a loopback TCP socket, read by a task of an idle runtime.
    pub tcp: LatencySummary,
    /// A fixed piece of the host's own work, parsing one Kalshi
    /// `orderbook_delta`, timed by that task right after each read: what
    /// any work after a wake costs on this machine.
    pub work_after_wake: LatencySummary,
    /// The same, with the reads `SHORT_GAP` apart: about a busy loopback
    /// cell's spacing between frames.
    pub work_after_short_wake: LatencySummary,
    /// The same parse, timed back to back on a busy thread.
    pub work_hot: LatencySummary,
}

/// The short gap for [`WakeFloor::work_after_short_wake`].
pub const SHORT_GAP: Duration = Duration::from_micros(500);

/// `samples` hand-overs of each kind, one every `gap`. Blocking: run it off
/// any runtime's worker threads.
pub fn measure(samples: usize, gap: Duration) -> anyhow::Result<WakeFloor> {
    let clock = Clock(Instant::now());
    let (_, work_after_short_wake) = tcp(samples, SHORT_GAP, clock)?;
    let (tcp, work_after_wake) = tcp(samples, gap, clock)?;
    Ok(WakeFloor {
        gap,
        unpark: unpark(samples, gap, clock)?,
        spawn: spawn(samples, gap, clock)?,
        tcp,
        work_after_wake,
        work_after_short_wake,
        work_hot: work_hot(samples),
    })
}

/// A Kalshi `orderbook_delta` as the venue sends it: the work timed after each wake.
const KALSHI_DELTA: &str = r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"FED-23DEC-T3.00","market_id":"9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1","price_dollars":"0.960","delta_fp":"-54.00","side":"yes","ts":"2022-11-22T20:44:01Z","ts_ms":1669149841000}}"#;

/// The parse, timed; its result kept from the optimiser.
fn timed_work() -> Duration {
    let started = Instant::now();
    let parsed = crate::venues::kalshi::parse(std::hint::black_box(KALSHI_DELTA));
    let took = started.elapsed();
    assert!(parsed.is_ok(), "the fixed delta parses");
    std::hint::black_box(parsed.ok());
    took
}

fn work_hot(samples: usize) -> LatencySummary {
    let hist = Histogram::default();
    for _ in 0..samples {
        timed_work();
    }
    for _ in 0..samples {
        hist.record(timed_work());
    }
    hist.summary()
}

/// Nanoseconds since one shared start, never 0 (0 means "no stamp").
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> u64 {
        self.0.elapsed().as_nanos() as u64 + 1
    }
}

/// How long a hand-over's woken side may take to answer before the
/// measurement gives up.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The woken side's record of each hand-over, and its answer to the sender,
/// which waits for it before the next: none is lost or merged, however late.
#[derive(Clone)]
struct Seen {
    hist: Arc<Histogram>,
    answer: std::sync::mpsc::Sender<()>,
}

impl Seen {
    fn new() -> (Seen, std::sync::mpsc::Receiver<()>) {
        let (answer, answers) = std::sync::mpsc::channel();
        let hist = Arc::new(Histogram::default());
        (Seen { hist, answer }, answers)
    }

    fn record(&self, clock: Clock, at: u64) {
        self.hist.record_ns(clock.now().saturating_sub(at));
        let _ = self.answer.send(());
    }
}

fn answered(answers: &std::sync::mpsc::Receiver<()>) -> anyhow::Result<()> {
    answers
        .recv_timeout(ANSWER_WITHIN)
        .map_err(|_| anyhow::anyhow!("a woken thread did not answer within {ANSWER_WITHIN:?}"))
}

fn unpark(samples: usize, gap: Duration, clock: Clock) -> anyhow::Result<LatencySummary> {
    let (seen, answers) = Seen::new();
    let stamp = Arc::new(AtomicU64::new(0));
    let reader = {
        let (seen, stamp) = (seen.clone(), stamp.clone());
        std::thread::spawn(move || {
            loop {
                std::thread::park();
                // `park` may return without an unpark: only a stamp counts.
                match stamp.swap(0, Ordering::AcqRel) {
                    0 => continue,
                    u64::MAX => return,
                    at => seen.record(clock, at),
                }
            }
        })
    };
    let sent = (0..samples).try_for_each(|_| {
        std::thread::sleep(gap);
        stamp.store(clock.now(), Ordering::Release);
        reader.thread().unpark();
        answered(&answers)
    });
    stamp.store(u64::MAX, Ordering::Release);
    reader.thread().unpark();
    let _ = reader.join();
    sent.map(|()| seen.hist.summary())
}

fn idle_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building a runtime for the wake floor")
}

fn spawn(samples: usize, gap: Duration, clock: Clock) -> anyhow::Result<LatencySummary> {
    let runtime = idle_runtime()?;
    let (seen, answers) = Seen::new();
    let sent = (0..samples).try_for_each(|_| {
        std::thread::sleep(gap);
        let (seen, at) = (seen.clone(), clock.now());
        runtime.spawn(async move { seen.record(clock, at) });
        answered(&answers)
    });
    runtime.shutdown_background();
    sent.map(|()| seen.hist.summary())
}

/// The hop's latency, and the work timed after each read.
fn tcp(
    samples: usize,
    gap: Duration,
    clock: Clock,
) -> anyhow::Result<(LatencySummary, LatencySummary)> {
    let runtime = idle_runtime()?;
    let (seen, answers) = Seen::new();
    let work = Arc::new(Histogram::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    {
        let (seen, work) = (seen.clone(), work.clone());
        runtime.spawn(async move {
            use tokio::io::AsyncReadExt;
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut stamp = [0u8; 8];
            while socket.read_exact(&mut stamp).await.is_ok() {
                let at = clock.now();
                work.record(timed_work());
                seen.hist
                    .record_ns(at.saturating_sub(u64::from_le_bytes(stamp)));
                let _ = seen.answer.send(());
            }
        });
    }
    let mut client = std::net::TcpStream::connect(addr)?;
    client.set_nodelay(true)?;
    let sent = (0..samples).try_for_each(|_| {
        std::thread::sleep(gap);
        client.write_all(&clock.now().to_le_bytes())?;
        answered(&answers)
    });
    drop(client);
    runtime.shutdown_background();
    sent.map(|()| (seen.hist.summary(), work.summary()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hand_over_is_seen_once() {
        let floor = measure(20, Duration::from_millis(2)).unwrap();
        for (what, s) in [
            ("unpark", floor.unpark),
            ("spawn", floor.spawn),
            ("tcp", floor.tcp),
            ("work after a wake", floor.work_after_wake),
            ("work after a short wake", floor.work_after_short_wake),
            ("work hot", floor.work_hot),
        ] {
            assert_eq!(s.count, 20, "{what}");
            assert!(s.p50_ns > 0 && s.p50_ns < 1_000_000_000, "{what}: {s:?}");
        }
    }
}
