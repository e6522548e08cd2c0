//! Starts the venue feeds of a running host: one task per venue, writing into
//! the shared books and the bus, reconnecting by themselves, stopped together.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::app::Host;
use crate::domain::Venue;
use crate::venues::feed::{BookWriter, FeedStats, Recorder};
use crate::venues::kalshi::KalshiSigner;
use crate::venues::kalshi::ws::{OrderbookFeedConfig, run_orderbook_feed};
use crate::venues::polymarket::ws::{MarketFeedConfig, run_market_feed};

/// Where each venue is (the real exchanges, or the simulator).
#[derive(Debug, Clone)]
pub struct VenueUrls {
    pub kalshi_rest: String,
    pub kalshi_ws: String,
    pub polymarket_rest: String,
    pub polymarket_ws: String,
}

impl VenueUrls {
    pub fn from_sim(sim: &crate::sim::SimHandle) -> Self {
        VenueUrls {
            kalshi_rest: sim.kalshi_rest_url.clone(),
            kalshi_ws: sim.kalshi_ws_url.clone(),
            polymarket_rest: sim.polymarket_rest_url.clone(),
            polymarket_ws: sim.polymarket_ws_url.clone(),
        }
    }

    pub fn from_config(c: &crate::config::Config) -> Self {
        VenueUrls {
            kalshi_rest: c.kalshi.rest_url.clone(),
            kalshi_ws: c.kalshi.ws_url.clone(),
            polymarket_rest: c.polymarket.rest_url.clone(),
            polymarket_ws: c.polymarket.ws_url.clone(),
        }
    }
}

/// The running feeds.
pub struct Feeds {
    pub stats: HashMap<Venue, Arc<FeedStats>>,
    /// Our Polymarket orders and trades from the user channel (only with L2 credentials).
    polymarket_user: Option<tokio::sync::broadcast::Sender<crate::venues::polymarket::UserEvent>>,
    /// Our Kalshi fills from the private `fill` channel (only with a Kalshi key).
    kalshi_fills: Option<tokio::sync::broadcast::Sender<crate::venues::kalshi::KalshiFillEvent>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Feeds {
    /// Starts every venue's feed for the host's pairs.
    pub fn start(
        host: &Host,
        urls: &VenueUrls,
        kalshi_signer: Option<Arc<KalshiSigner>>,
        recorder: Option<Arc<Recorder>>,
    ) -> Feeds {
        let (stop, shutdown) = watch::channel(false);
        let pairs: Vec<_> = host.books.all().iter().map(|e| e.pair.clone()).collect();
        let mut stats = HashMap::new();
        let mut tasks = Vec::new();

        let kalshi_stats = Arc::new(FeedStats::default());
        stats.insert(Venue::Kalshi, kalshi_stats.clone());
        let writer = BookWriter::new(
            Venue::Kalshi,
            host.books.clone(),
            host.bus.clone(),
            kalshi_stats,
        )
        .with_strategy(host.strategy.clone())
        .with_batch_frames(host.config.feed_batch_frames);
        // The private fill channel needs an authenticated connection.
        let kalshi_fills = kalshi_signer
            .is_some()
            .then(|| tokio::sync::broadcast::channel(1024).0);
        let mut cfg =
            OrderbookFeedConfig::new(urls.kalshi_ws.clone(), pairs.clone(), kalshi_signer);
        if let Some(tx) = &kalshi_fills {
            cfg = cfg.with_fills(tx.clone());
        }
        tasks.push(tokio::spawn(run_orderbook_feed(
            cfg,
            writer,
            recorder.clone(),
            shutdown.clone(),
        )));

        let poly_stats = Arc::new(FeedStats::default());
        stats.insert(Venue::Polymarket, poly_stats.clone());
        let writer = BookWriter::new(
            Venue::Polymarket,
            host.books.clone(),
            host.bus.clone(),
            poly_stats,
        )
        .with_strategy(host.strategy.clone())
        .with_batch_frames(host.config.feed_batch_frames);
        let cfg = MarketFeedConfig::new(
            urls.polymarket_ws.clone(),
            urls.polymarket_rest.clone(),
            pairs.clone(),
        );
        tasks.push(tokio::spawn(run_market_feed(
            cfg,
            writer,
            host.books.clone(),
            recorder.clone(),
            shutdown.clone(),
        )));

        let _ = host.feed_stats.set(stats.clone());
        Feeds {
            stats,
            polymarket_user: None,
            kalshi_fills,
            stop,
            tasks,
        }
    }

    /// Starts the Polymarket user channel (our orders and trades, settlement
    /// status) for the host's markets. Its URL is the market channel's with
    /// `/market` replaced by `/user`, as on the real venue and the simulator.
    pub fn start_polymarket_user(
        &mut self,
        host: &Host,
        urls: &VenueUrls,
        creds: crate::venues::polymarket::ApiCreds,
        recorder: Option<Arc<Recorder>>,
    ) {
        let url = match urls.polymarket_ws.strip_suffix("/market") {
            Some(base) => format!("{base}/user"),
            None => {
                tracing::warn!(url = %urls.polymarket_ws, "cannot tell the Polymarket user channel's URL; trade settlement is not followed");
                return;
            }
        };
        let markets = host
            .books
            .all()
            .iter()
            .map(|e| e.pair.polymarket_condition_id.clone())
            .collect();
        let (tx, _) = tokio::sync::broadcast::channel(1024);
        let cfg = crate::venues::polymarket::UserFeedConfig::new(url, creds, markets);
        let stats = self
            .stats
            .get(&Venue::Polymarket)
            .cloned()
            .unwrap_or_default();
        self.tasks
            .push(tokio::spawn(crate::venues::polymarket::run_user_feed(
                cfg,
                tx.clone(),
                stats,
                recorder,
                self.stop.subscribe(),
            )));
        self.polymarket_user = Some(tx);
    }

    /// Our Polymarket user-channel events from now on, if it was started.
    pub fn polymarket_user(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::venues::polymarket::UserEvent>> {
        self.polymarket_user.as_ref().map(|tx| tx.subscribe())
    }

    /// Our Kalshi fills from now on, if the feed is authenticated.
    pub fn kalshi_fills(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::venues::kalshi::KalshiFillEvent>> {
        self.kalshi_fills.as_ref().map(|tx| tx.subscribe())
    }

    /// Stops every feed and waits for them to close their sockets.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
