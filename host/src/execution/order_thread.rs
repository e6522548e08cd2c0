//! The executor's own thread: a single-threaded tokio runtime on which every
//! trade runs and every venue REST connection lives.
//!
//! On the shared runtime an approval waited behind feed and API tasks for a
//! busy worker, and an order request handed to its connection waited again
//! for whichever worker ran that connection's task. Here the approval wakes
//! this thread alone, and a request is written by its connection's task on
//! the same thread as soon as the trade's task yields. The connections live
//! here because hyper runs a connection's task on the runtime that opened it:
//! so every call the executor's clients make, from start-up on, runs here.

use std::future::Future;

use anyhow::Context;

pub struct OrderThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OrderThread {
    pub fn start() -> anyhow::Result<OrderThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the order thread's runtime")?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("orders".into())
            .spawn(move || {
                // Runs the spawned trades until stopped; dropping the runtime
                // then cancels whatever is left.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .context("starting the order thread")?;
        Ok(OrderThread {
            handle,
            stop: Some(stop),
        })
    }

    /// Enter it to make `tokio::spawn` and `Handle::current` mean this thread.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `work` on this thread and waits for it.
    pub async fn run<F>(&self, work: F) -> anyhow::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(work)
            .await
            .context("a task on the order thread failed")
    }
}

impl Drop for OrderThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_order_thread_and_stops_with_it() {
        let orders = OrderThread::start().unwrap();
        let name = orders
            .run(async { std::thread::current().name().map(String::from) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("orders"));
        // Spawned from inside, a task stays on the thread.
        let inner = orders
            .run(async {
                tokio::spawn(async { std::thread::current().name().map(String::from) })
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
        assert_eq!(inner.as_deref(), Some("orders"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let pending = orders.handle().spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        });
        drop(orders);
        // The runtime's end drops the pending task, and its sender with it.
        assert!(rx.await.is_err());
        assert!(pending.await.unwrap_err().is_cancelled());
    }
}
