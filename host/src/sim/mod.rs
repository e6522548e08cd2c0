//! The venue simulator: Kalshi's WebSocket and REST and Polymarket's market
//! WebSocket and REST on 127.0.0.1, speaking the exact wire formats of
//! PROTOCOLS.md, with books that move by themselves and scripted events.
//!
//! It is the embedded default for the demo and every end-to-end test: the real
//! exchanges are never reachable from here, and a new user has no keys. It is
//! an independent implementation of the protocols (it builds and reads JSON
//! itself rather than reusing the adapters' types), so the adapters are tested
//! against something they did not write.

pub mod accounts;
pub mod kalshi;
pub mod market;
pub mod polymarket;
pub mod polymarket_user;
pub mod scenario;
pub mod wire_clock;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use tokio::sync::{broadcast, mpsc};

use crate::domain::{MarketPair, Size, Venue};
pub use market::{ArbDirection, ArbWindow, BookDiff, SimMarket, VenueBooks};
pub use scenario::{EventKind, Scenario, ScenarioEvent};

/// One simulated pair: the identifiers both venues use for it.
#[derive(Debug, Clone)]
pub struct SimPair {
    pub id: String,
    pub kalshi_ticker: String,
    pub condition_id: String,
    pub yes_token: String,
    pub no_token: String,
    pub rules: String,
}

impl From<&MarketPair> for SimPair {
    fn from(p: &MarketPair) -> Self {
        SimPair {
            id: p.id.to_string(),
            kalshi_ticker: p.kalshi_ticker.clone(),
            condition_id: p.polymarket_condition_id.clone(),
            yes_token: p.polymarket_yes_token.to_string(),
            no_token: p.polymarket_no_token.to_string(),
            rules: p.kalshi_rules.clone(),
        }
    }
}

/// What the driver tells every open connection.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A pair's books changed (index into the pairs).
    Book {
        pair: usize,
        diff: Arc<BookDiff>,
        at_ms: u64,
    },
    /// Kalshi: the next delta skips a sequence number.
    Gap {
        venue: Venue,
    },
    Disconnect {
        venue: Venue,
    },
    Malformed {
        venue: Venue,
    },
    /// Polymarket: the pair's tick changed from `old` to `new`.
    TickSize {
        pair: usize,
        old: rust_decimal::Decimal,
        new: rust_decimal::Decimal,
    },
}

/// What the venues push on their private channels (Kalshi `fill`, the
/// Polymarket user channel). Kept apart from [`FeedEvent`] so a session that
/// lags on book changes never loses one of these.
#[derive(Debug, Clone)]
pub enum PrivateEvent {
    /// The `msg` of a Kalshi `fill` message; each session adds its own `sid`.
    KalshiFill(Arc<serde_json::Value>),
    /// A Polymarket user-channel event (`order` or `trade`) of the market with
    /// this condition id.
    PolymarketUser {
        market: String,
        event: Arc<serde_json::Value>,
    },
}

/// Polymarket user-channel connections, for tests to await instead of sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserChannelStats {
    /// Authenticated, subscribed sessions open now.
    pub live: usize,
    /// Subscribe frames refused for bad credentials (connection dropped).
    pub refused: u64,
}

/// Everything the servers read.
pub struct SimState {
    pub pairs: Vec<SimPair>,
    pub markets: Vec<SimMarket>,
    /// Sent under the write lock of `markets`, so a connection that takes a
    /// snapshot and subscribes under the read lock never misses or repeats a change.
    pub feed: broadcast::Sender<FeedEvent>,
    /// Our own fills and trades, sent under the write lock that booked them.
    pub private: broadcast::Sender<PrivateEvent>,
    pub polymarket_user: tokio::sync::watch::Sender<UserChannelStats>,
    pub started: Instant,
    /// Balances, positions, orders and fills of the simulated accounts.
    pub accounts: accounts::Accounts,
}

pub type Shared = Arc<RwLock<SimState>>;

pub fn read(s: &Shared) -> std::sync::RwLockReadGuard<'_, SimState> {
    s.read().unwrap_or_else(|e| e.into_inner())
}

/// How to check Kalshi request signatures: `(headers, method, path) -> ok?`.
pub type KalshiAuth =
    Arc<dyn Fn(&axum::http::HeaderMap, &str, &str) -> Result<(), String> + Send + Sync>;

pub struct SimConfig {
    pub pairs: Vec<SimPair>,
    pub scenario: Scenario,
    /// `None` accepts any (or no) signature.
    pub kalshi_auth: Option<KalshiAuth>,
}

/// A running simulator: its URLs and a way to inject events.
pub struct SimHandle {
    pub kalshi_rest_url: String,
    pub kalshi_ws_url: String,
    pub polymarket_rest_url: String,
    pub polymarket_ws_url: String,
    /// The authenticated user channel (`/ws/user`).
    pub polymarket_user_ws_url: String,
    pub state: Shared,
    inject: mpsc::UnboundedSender<ScenarioEvent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// Watches the Polymarket user channel's sessions (live and refused).
    pub fn polymarket_user_channel(&self) -> tokio::sync::watch::Receiver<UserChannelStats> {
        read(&self.state).polymarket_user.subscribe()
    }

    /// A pair's four books as the venues show them now.
    pub fn books(&self, pair: usize) -> Option<VenueBooks> {
        read(&self.state)
            .markets
            .get(pair)
            .map(|m| m.books().clone())
    }

    /// Puts exact books in place of a pair's at once (for a simulator
    /// without a driver, see [`start_still`]) and broadcasts the change.
    pub fn set_books(&self, pair: usize, books: VenueBooks) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let Some(m) = st.markets.get_mut(pair) else {
            return;
        };
        let diff = m.replace_books(books);
        accounts::broadcast(&st, pair, diff);
    }

    /// Applies an event now (`at_ms` is ignored), as a scenario file would.
    pub fn inject(&self, mut event: ScenarioEvent) {
        event.at_ms = 0;
        let _ = self.inject.send(event);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts both venues on ephemeral loopback ports.
pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
    let kalshi_listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let poly_listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    start_on(config, kalshi_listener, poly_listener).await
}

pub async fn start_on(
    config: SimConfig,
    kalshi_listener: tokio::net::TcpListener,
    poly_listener: tokio::net::TcpListener,
) -> std::io::Result<SimHandle> {
    serve(config, kalshi_listener, poly_listener, true).await
}

/// Both venues with books that change only when the caller sets them
/// ([`SimHandle::set_books`]) or an order takes liquidity: no driver, no
/// scenario. `doubletime replay` mirrors a recording's books into them.
pub async fn start_still(pairs: Vec<SimPair>) -> std::io::Result<SimHandle> {
    let kalshi_listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let poly_listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let config = SimConfig {
        pairs,
        scenario: Scenario::default(),
        kalshi_auth: None,
    };
    serve(config, kalshi_listener, poly_listener, false).await
}

async fn serve(
    config: SimConfig,
    kalshi_listener: tokio::net::TcpListener,
    poly_listener: tokio::net::TcpListener,
    driven: bool,
) -> std::io::Result<SimHandle> {
    let (feed, _) = broadcast::channel(4096);
    let (private, _) = broadcast::channel(4096);
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.scenario.seed);
    let markets = config
        .pairs
        .iter()
        .map(|_| {
            use rand::Rng;
            SimMarket::new(rng.gen_range(25..75))
        })
        .collect();
    let state: Shared = Arc::new(RwLock::new(SimState {
        pairs: config.pairs.clone(),
        markets,
        feed,
        private,
        polymarket_user: tokio::sync::watch::channel(UserChannelStats::default()).0,
        started: Instant::now(),
        accounts: accounts::Accounts::default(),
    }));
    let k_addr = kalshi_listener.local_addr()?;
    let p_addr = poly_listener.local_addr()?;
    let (kalshi_listener, poly_listener) = (
        wire_clock::StampedListener::new(kalshi_listener),
        wire_clock::StampedListener::new(poly_listener),
    );
    // Orders' write times are only known once the kernel stamps segments.
    if cfg!(target_os = "linux") && !wire_clock::stamping_live(Duration::from_millis(250)).await {
        tracing::debug!("simulator: no receive timestamps; order write times are unknown");
    }
    let (inject, injected) = mpsc::unbounded_channel();
    let kalshi_app = kalshi::router(state.clone(), config.kalshi_auth.clone());
    let poly_app = polymarket::router(state.clone());
    let mut tasks = vec![
        tokio::spawn(async move {
            let app = kalshi_app.into_make_service_with_connect_info::<wire_clock::WireClock>();
            let _ = axum::serve(kalshi_listener, app).await;
        }),
        tokio::spawn(async move {
            let app = poly_app.into_make_service_with_connect_info::<wire_clock::WireClock>();
            let _ = axum::serve(poly_listener, app).await;
        }),
    ];
    if driven {
        tasks.push(tokio::spawn(drive(
            state.clone(),
            config.scenario,
            rng,
            injected,
        )));
    }
    tracing::info!(kalshi = %k_addr, polymarket = %p_addr, pairs = config.pairs.len(), "venue simulator listening");
    Ok(SimHandle {
        kalshi_rest_url: format!("http://{k_addr}/trade-api/v2"),
        kalshi_ws_url: format!("ws://{k_addr}/trade-api/ws/v2"),
        polymarket_rest_url: format!("http://{p_addr}"),
        polymarket_ws_url: format!("ws://{p_addr}/ws/market"),
        polymarket_user_ws_url: format!("ws://{p_addr}/ws/user"),
        state,
        inject,
        tasks,
    })
}

/// Moves the books every tick and plays the scenario.
async fn drive(
    state: Shared,
    scenario: Scenario,
    mut rng: rand::rngs::StdRng,
    mut injected: mpsc::UnboundedReceiver<ScenarioEvent>,
) {
    let mut events = scenario.events.clone();
    events.sort_by_key(|e| e.at_ms);
    let mut next = 0;
    let mut frozen: HashMap<usize, u64> = HashMap::new();
    let mut thin: HashMap<usize, u64> = HashMap::new();
    // Until when matched Polymarket trades fail (scenario `fail_trades`).
    let mut failing_until: Option<u64> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(scenario.tick_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut due = Vec::new();
        // Wake for the next tick, an injected event, the next scripted event
        // or the end of a `fail_trades` window.
        let next_event = events
            .get(next)
            .map(|e| e.at_ms)
            .into_iter()
            .chain(failing_until)
            .min()
            .map(|at_ms| read(&state).started + Duration::from_millis(at_ms));
        let scripted = async {
            match next_event {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let ticked = tokio::select! {
            _ = ticker.tick() => true,
            Some(e) = injected.recv() => { due.push(e); false }
            _ = scripted => false,
        };
        let now_ms = read(&state).started.elapsed().as_millis() as u64;
        while next < events.len() && events[next].at_ms <= now_ms {
            due.push(events[next].clone());
            next += 1;
        }
        // The markets move on a tick and on market events. A venue event (a
        // gap, a malformed frame, a disconnect, a tick size, failing trades)
        // moves nothing by itself: the change a gap loses is then the next
        // market move, such as the window scripted after it, not a random
        // step that may leave the top of book where it was.
        let markets_move = ticked
            || due.iter().any(|e| {
                matches!(
                    e.kind,
                    EventKind::ArbWindow | EventKind::Stale | EventKind::Thin
                )
            });
        let mut st = state.write().unwrap_or_else(|e| e.into_inner());
        let now_us = now_ms * 1_000;
        for e in due {
            let pair = e
                .pair
                .as_ref()
                .and_then(|id| st.pairs.iter().position(|p| &p.id == id));
            match (e.kind, pair) {
                (EventKind::ArbWindow, Some(i)) => {
                    st.markets[i].window = Some(ArbWindow {
                        direction: e.direction.unwrap_or(ArbDirection::KalshiYes),
                        edge: e.edge.unwrap_or_default(),
                        size: e
                            .size
                            .and_then(|s| Size::new(s).ok())
                            .unwrap_or(Size::whole(50)),
                        until_us: now_us + e.duration_ms.unwrap_or(1_000) * 1_000,
                    });
                    frozen.remove(&i);
                }
                (EventKind::Stale, Some(i)) => {
                    frozen.insert(i, now_ms + e.duration_ms.unwrap_or(1_000));
                }
                (EventKind::Thin, Some(i)) => {
                    st.markets[i].max_level_size = e.size.and_then(|s| Size::new(s).ok());
                    thin.insert(i, now_ms + e.duration_ms.unwrap_or(1_000));
                }
                (EventKind::FailTrades, _) => {
                    // `size`: trades of each match that still confirm (none by default).
                    st.accounts.polymarket_settlement.outcome = match e
                        .size
                        .and_then(|n| rust_decimal::prelude::ToPrimitive::to_usize(&n))
                        .filter(|n| *n > 0)
                    {
                        Some(n) => accounts::TradeOutcome::FailAfterFirst(n),
                        None => accounts::TradeOutcome::Fail,
                    };
                    failing_until = Some(now_ms + e.duration_ms.unwrap_or(1_000));
                }
                (EventKind::Gap, _) => {
                    let _ = st.feed.send(FeedEvent::Gap {
                        venue: e.venue.unwrap_or(Venue::Kalshi),
                    });
                }
                (EventKind::Disconnect, _) => {
                    let _ = st.feed.send(FeedEvent::Disconnect {
                        venue: e.venue.unwrap_or(Venue::Kalshi),
                    });
                }
                (EventKind::TickSize, Some(i)) => {
                    if let Some(new) = e.size {
                        let old = std::mem::replace(&mut st.markets[i].polymarket_tick, new);
                        let _ = st.feed.send(FeedEvent::TickSize { pair: i, old, new });
                    }
                }
                (EventKind::Malformed, _) => {
                    let _ = st.feed.send(FeedEvent::Malformed {
                        venue: e.venue.unwrap_or(Venue::Kalshi),
                    });
                }
                (kind, None) => {
                    tracing::warn!(?kind, pair = ?e.pair, "scenario event for an unknown pair ignored")
                }
            }
        }
        thin.retain(|i, until| {
            let keep = *until > now_ms;
            if !keep {
                st.markets[*i].max_level_size = None;
            }
            keep
        });
        frozen.retain(|_, until| *until > now_ms);
        if failing_until.is_some_and(|until| until <= now_ms) {
            failing_until = None;
            st.accounts.polymarket_settlement.outcome = accounts::TradeOutcome::Confirm;
        }
        let st = &mut *st;
        for (i, m) in st.markets.iter_mut().enumerate() {
            if !markets_move || frozen.contains_key(&i) {
                continue;
            }
            let diff = m.step(&mut rng, now_us);
            if !diff.is_empty() {
                let _ = st.feed.send(FeedEvent::Book {
                    pair: i,
                    diff: Arc::new(diff),
                    at_ms: now_ms,
                });
            }
        }
    }
}

/// Fixed-point formatting as the venues write numbers.
pub(crate) fn fixed(d: rust_decimal::Decimal, dp: u32) -> String {
    format!("{:.*}", dp as usize, d.round_dp(dp))
}

/// Kalshi's signature check: the three `KALSHI-ACCESS-*` headers, a timestamp
/// within 30 s of now, and an RSA-PSS signature that verifies with the
/// configured public key, as the venue answers 401 otherwise (§1.2).
pub fn kalshi_signature_check(verifier: crate::venues::kalshi::KalshiVerifier) -> KalshiAuth {
    use crate::venues::kalshi::auth::{
        AuthHeaders, HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP,
    };
    Arc::new(
        move |headers: &axum::http::HeaderMap, method: &str, path: &str| {
            let get = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
                    .ok_or_else(|| format!("missing header {name}"))
            };
            let h = AuthHeaders {
                key: get(HEADER_KEY)?,
                timestamp: get(HEADER_TIMESTAMP)?,
                signature: get(HEADER_SIGNATURE)?,
            };
            let ts: u64 = h
                .timestamp
                .parse()
                .map_err(|_| "timestamp is not milliseconds".to_string())?;
            let now = crate::strategy::now_micros() / 1_000;
            if now.abs_diff(ts) > 30_000 {
                return Err("timestamp too far from now".into());
            }
            verifier.verify(&h, method, path).map_err(|e| e.to_string())
        },
    )
}

/// An order request at the simulator, for the latency harness (`doubletime
/// bench`, tick-to-order); times in µs since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderArrival {
    pub venue: Venue,
    /// When the host wrote the request to its socket: the kernel's receive
    /// stamp of its bytes ([`wire_clock`]), `None` where there is none.
    pub written_at: Option<u64>,
    /// When the simulator's server had parsed its head.
    pub parsed_at: u64,
}

/// Nothing is kept unless a harness asked, so a long demo does not grow it.
static ORDER_ARRIVALS: std::sync::Mutex<Option<Vec<OrderArrival>>> = std::sync::Mutex::new(None);

/// Notes each `POST` to `path` on `venue` as soon as its head is parsed,
/// before the venue's own checks (signature, body) run: those are the
/// venue's time, not the host's. A layer around the venue's routes.
pub(crate) async fn note_order_arrivals(
    axum::extract::State((venue, path)): axum::extract::State<(Venue, &'static str)>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.method() == axum::http::Method::POST && req.uri().path() == path {
        let written_at = req
            .extensions()
            .get::<axum::extract::ConnectInfo<wire_clock::WireClock>>()
            .and_then(|c| c.0.last_written());
        order_arrived(venue, written_at);
    }
    next.run(req).await
}

fn order_arrived(venue: Venue, written_at: Option<u64>) {
    let parsed_at = crate::strategy::now_micros();
    if let Some(log) = ORDER_ARRIVALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        log.push(OrderArrival {
            venue,
            written_at,
            parsed_at,
        });
    }
}

/// Starts keeping order arrivals and returns those kept since the last
/// call; `false` stops keeping them.
pub fn order_arrivals(keep: bool) -> Vec<OrderArrival> {
    let mut log = ORDER_ARRIVALS.lock().unwrap_or_else(|e| e.into_inner());
    let taken = log.take().unwrap_or_default();
    if keep {
        *log = Some(Vec::new());
    }
    taken
}
