//! How the host's async workers use the machine's cores.
//!
//! Measured on the 2-core VM (`BENCHMARKS.md`): when one tokio worker wakes
//! another mid-order (a connection task handed over, a task yielded), the
//! kernel may place the woken worker on the waker's core and let it run
//! there, and the order waits a whole scheduler slice (0.7–1.0 ms) for its
//! core back. With each worker pinned to a core of its own, a woken worker
//! runs on its own core or waits there; the order path keeps its core. Work
//! stealing between the workers still balances the tasks. The feeds pay for
//! it (they cannot move to the idle core), so it is off unless configured.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The multi-threaded runtime the host runs on: one worker per core, each
/// pinned to a core of its own when `pin_workers` is set (Linux; elsewhere
/// unpinned).
pub fn runtime(pin_workers: bool) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if pin_workers {
        let cores = sys::allowed_cores().unwrap_or_default();
        if cores.len() > 1 {
            // A new thread inherits its creator's mask, and tokio creates a
            // blocking-pool thread on the thread that calls `spawn_blocking`:
            // every pool thread starts free again (workers pin at first park).
            let all = cores.clone();
            builder.on_thread_start(move || {
                if let Err(e) = sys::allow(&all) {
                    tracing::warn!(error = %e, "could not free a runtime thread's cores");
                }
            });
            let next = AtomicUsize::new(0);
            // Only workers park, so this pins workers and never the blocking
            // pool's threads; each pins itself once, at its first park.
            builder.on_thread_park(move || {
                thread_local!(static PINNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
                PINNED.with(|pinned| {
                    if !pinned.replace(true) {
                        let core = cores[next.fetch_add(1, Ordering::Relaxed) % cores.len()];
                        if let Err(e) = sys::allow(&[core]) {
                            tracing::warn!(core, error = %e, "could not pin a tokio worker");
                        }
                    }
                })
            });
        }
    }
    builder.build()
}

/// The cores the calling thread may run on (its affinity mask, which a
/// container's cpuset narrows), in order; Linux only.
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    sys::allowed_cores()
}

/// Confines the calling thread, and every thread it creates from now on, to
/// `cores`; Linux only.
pub fn confine(cores: &[usize]) -> io::Result<()> {
    sys::allow(cores)
}

/// Whether the calling thread may run on more than one core: a thread that
/// polls instead of parking only gains where the thread it waits for can run
/// meanwhile. Where the mask cannot be read, assume it can.
pub fn has_a_second_core() -> bool {
    sys::allowed_cores().map_or(true, |c| c.len() > 1)
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;

    /// The cores this process may run on (its affinity mask, which a
    /// container's cpuset narrows), in order.
    pub fn allowed_cores() -> io::Result<Vec<usize>> {
        // SAFETY: a zeroed cpu_set_t is an empty set; the kernel fills it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let r =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            // SAFETY: `core` is below CPU_SETSIZE.
            .filter(|&core| unsafe { libc::CPU_ISSET(core, &set) })
            .collect())
    }

    /// Lets the calling thread run on `cores`.
    pub fn allow(cores: &[usize]) -> io::Result<()> {
        // SAFETY: as above; tid 0 is the calling thread.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &core in cores {
            unsafe { libc::CPU_SET(core, &mut set) };
        }
        let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn allowed_cores() -> std::io::Result<Vec<usize>> {
        Err(std::io::Error::other("pinning is Linux only"))
    }

    pub fn allow(_: &[usize]) -> std::io::Result<()> {
        Err(std::io::Error::other("pinning is Linux only"))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Each worker ends up on one core of its own; a blocking thread keeps
    /// every core the process may use.
    #[test]
    fn pinned_workers_each_run_on_one_core_and_blocking_threads_stay_free() {
        let allowed = sys::allowed_cores().unwrap();
        let rt = runtime(true).unwrap();
        let (worker_cores, blocking) = rt.block_on(async {
            let mut cores = Vec::new();
            // Tasks spawned from outside land on any worker; each reports the
            // mask of the worker it resumed on. Waiting on a timer leaves the
            // runtime with nothing to run, so a worker parks (and pins
            // itself) to drive the timer, and the task wakes on that worker.
            // A task that only ran could land on a worker that never parked
            // yet, 64 times in a row on a busy machine.
            for _ in 0..64 {
                let mask = tokio::spawn(async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    sys::allowed_cores().unwrap()
                })
                .await
                .unwrap();
                cores.push(mask);
            }
            // From a (pinned) worker: the new pool thread must not inherit its core.
            let blocking = tokio::spawn(async {
                tokio::task::spawn_blocking(|| sys::allowed_cores().unwrap())
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
            (cores, blocking)
        });
        assert_eq!(blocking, allowed, "the blocking pool is not pinned");
        if allowed.len() > 1 {
            // A worker not yet parked runs unpinned; every pinned one has one core.
            let pinned: Vec<_> = worker_cores.iter().filter(|m| m.len() == 1).collect();
            assert!(!pinned.is_empty(), "{worker_cores:?}");
            assert!(pinned.iter().all(|m| allowed.contains(&m[0])));
        }
        let unpinned = runtime(false).unwrap();
        let mask = unpinned.block_on(async {
            tokio::spawn(async { sys::allowed_cores().unwrap() })
                .await
                .unwrap()
        });
        assert_eq!(mask, allowed);
    }

    /// A confined thread sees one core, and so does every thread it starts;
    /// a thread elsewhere keeps its own mask.
    #[test]
    fn a_confined_thread_and_its_children_keep_to_its_core() {
        let allowed = allowed_cores().unwrap();
        let core = *allowed.last().unwrap();
        let (mine, child, second) = std::thread::spawn(move || {
            confine(&[core]).unwrap();
            let child = std::thread::spawn(|| (allowed_cores().unwrap(), has_a_second_core()))
                .join()
                .unwrap();
            (allowed_cores().unwrap(), child.0, child.1)
        })
        .join()
        .unwrap();
        assert_eq!(mine, [core]);
        assert_eq!(child, [core]);
        assert!(!second, "one core: no second one to poll beside");
        assert_eq!(allowed_cores().unwrap(), allowed);
        assert_eq!(has_a_second_core(), allowed.len() > 1);
    }
}
