//! Work made ahead of time for the order path — Kalshi's order signatures,
//! Polymarket's ECDSA nonces — runs on threads of its own at the lowest CPU
//! priority. On two busy cores a 2.5 ms RSA signature at normal priority
//! preempts the executor mid-order for a whole scheduler slice (measured in
//! `BENCHMARKS.md`); at nice 19 it gives the core back as soon as anything
//! else wants it.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long after something is taken from a stock it is topped up again:
/// the order that took it is on its way, and the refill waits until it is
/// out rather than run beside it on 2 cores.
pub const AFTER_USE: Duration = Duration::from_millis(20);

/// Starts `name` running `work` at the lowest priority the system gives an
/// unprivileged thread (nice 19 on Linux; elsewhere the default).
pub fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Err(e) = sys::lowest_priority() {
                tracing::debug!(error = %e, "background work runs at the default priority");
            }
            work()
        })
        .map(|_| ())
}

/// Keeps `owner`'s stock topped up on a thread of its own ([`spawn`]):
/// `top_up` runs at once and returns how long to wait before it runs again;
/// a nudge (something was taken) brings the next run forward to
/// [`AFTER_USE`] later. The thread ends once the owner is dropped or closes
/// `taken`.
pub fn keep_topped_up<T: Send + Sync + 'static>(
    name: &str,
    owner: &Arc<T>,
    taken: Arc<Nudge>,
    top_up: impl Fn(&T) -> Duration + Send + 'static,
) -> io::Result<()> {
    let owner = Arc::downgrade(owner);
    spawn(name, move || {
        loop {
            let Some(o) = owner.upgrade() else { return };
            let wait = top_up(&o);
            // Not held while waiting: the owner may go meanwhile.
            drop(o);
            match taken.wait(wait) {
                Woken::Nudged => std::thread::sleep(AFTER_USE),
                Woken::TimedOut => {}
                Woken::Closed => return,
            }
        }
    })
}

/// What woke a [`Nudge`] waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    Nudged,
    TimedOut,
    /// The owner is gone: the thread should end.
    Closed,
}

/// A flag a background thread sleeps on, set from anywhere without blocking
/// on the thread.
#[derive(Debug, Default)]
pub struct Nudge {
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Nudge {
    pub fn nudge(&self) {
        self.set(|s| s.0 = true);
    }

    pub fn close(&self) {
        self.set(|s| s.1 = true);
    }

    fn set(&self, f: impl FnOnce(&mut (bool, bool))) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.cv.notify_all();
    }

    /// Waits up to `timeout` for a nudge (taking it) or the close.
    pub fn wait(&self, timeout: Duration) -> Woken {
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut s, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |s| !s.0 && !s.1)
            .unwrap_or_else(|e| e.into_inner());
        if s.1 {
            Woken::Closed
        } else if std::mem::take(&mut s.0) {
            Woken::Nudged
        } else {
            Woken::TimedOut
        }
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;

    pub fn lowest_priority() -> io::Result<()> {
        // SAFETY: plain syscalls on the calling thread's id; Linux keeps the
        // nice value per thread.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(test)]
    pub fn priority() -> i32 {
        // SAFETY: as above.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn lowest_priority() -> std::io::Result<()> {
        Err(std::io::Error::other(
            "thread priorities are set on Linux only",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[cfg(target_os = "linux")]
    #[test]
    fn background_work_runs_at_nice_19_and_the_caller_keeps_its_priority() {
        let before = sys::priority();
        let (tx, rx) = std::sync::mpsc::channel();
        spawn("bg-test", move || tx.send(sys::priority()).unwrap()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 19);
        assert_eq!(sys::priority(), before);
    }

    #[test]
    fn a_nudge_wakes_the_waiter_once_and_a_close_ends_it() {
        let n = Arc::new(Nudge::default());
        assert_eq!(n.wait(Duration::from_millis(1)), Woken::TimedOut);
        n.nudge();
        assert_eq!(n.wait(Duration::from_secs(10)), Woken::Nudged);
        assert_eq!(n.wait(Duration::from_millis(1)), Woken::TimedOut);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = n.clone();
        spawn("bg-test", move || {
            tx.send(waiter.wait(Duration::from_secs(30))).unwrap()
        })
        .unwrap();
        n.close();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            Woken::Closed
        );
    }
}
