//! Work made ahead of time for the order path — Kalshi's order signatures,
//! Polymarket's ECDSA nonces — runs on threads of its own at the lowest CPU
//! priority. On two busy cores a 2.5 ms RSA signature at normal priority
//! preempts the executor mid-order for a whole scheduler slice (measured in
//! `BENCHMARKS.md`); at nice 19, with a short scheduler slice, it gives the
//! core back as soon as anything else wants it.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long after something is taken from a stock it is topped up again:
/// the order that took it is on its way, and the refill waits until it is
/// out rather than run beside it on 2 cores.
pub const AFTER_USE: Duration = Duration::from_millis(20);

/// Starts `name` running `work` at the lowest priority the system gives an
/// unprivileged thread (nice 19 and a 0.1 ms slice on Linux; elsewhere the
/// default).
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

    /// The scheduler slice a background thread asks for (EEVDF, Linux 6.12
    /// and later). A running thread keeps its core against a waking one
    /// until it has run its slice: with the default (0.75 ms and up), an
    /// order woken mid-signature waited that long behind a 2.5 ms RSA
    /// refill. With this one it waits at most about 0.1 ms.
    pub const SLICE_NS: u64 = 100_000;

    /// `struct sched_attr` (`include/uapi/linux/sched/types.h`, version 0).
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }

    pub fn lowest_priority() -> io::Result<()> {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            nice: 19,
            runtime: SLICE_NS,
            ..SchedAttr::default()
        };
        // SAFETY: a plain syscall on the calling thread (pid 0) with a
        // struct of the size it states.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) };
        if r == 0 {
            return Ok(());
        }
        // A kernel that refuses the slice still takes the nice value; Linux
        // keeps it per thread.
        // SAFETY: as above.
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

    /// The calling thread's slice as the kernel reports it (0 where it
    /// reports none).
    #[cfg(test)]
    pub fn slice_ns() -> u64 {
        let mut attr = SchedAttr::default();
        let size = std::mem::size_of::<SchedAttr>() as u32;
        // SAFETY: the kernel writes at most `size` bytes into `attr`.
        let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        attr.runtime
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
        let (before, slice_before) = (sys::priority(), sys::slice_ns());
        let (tx, rx) = std::sync::mpsc::channel();
        spawn("bg-test", move || {
            tx.send((sys::priority(), sys::slice_ns())).unwrap()
        })
        .unwrap();
        let (nice, slice) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(nice, 19);
        // Kernels before 6.12 report no slice (0) and take none.
        if slice_before != 0 {
            assert_eq!(slice, sys::SLICE_NS, "the default is {slice_before} ns");
        }
        assert_eq!((sys::priority(), sys::slice_ns()), (before, slice_before));
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
