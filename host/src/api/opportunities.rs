//! What the plugins found, as a recent history and as a live stream.
//!
//! A background task keeps the last [`RECENT`] opportunities from the bus's
//! `opportunities` topic (coalescing: if the API falls behind, a pair's newer
//! opportunity supersedes an unread older one, as for every consumer).
//! `/events` streams opportunities and plugin/feed status changes as
//! server-sent events named `opportunity`, `plugin` and `feed`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;

use super::ApiState;
use crate::bus::{BroadcastReceiver, Bus, CoalescingReceiver, StatusEvent};
use crate::domain::Opportunity;
use crate::domain::PairId;
use crate::domain::events::ArbitrageOpportunityFound;

/// Opportunities kept for `GET /opportunities`.
pub const RECENT: usize = 200;

/// The newest opportunities, newest first, fed by a task that stops when the
/// last router holding this is dropped.
#[derive(Clone)]
pub struct RecentOpportunities {
    ring: Arc<Mutex<VecDeque<Opportunity>>>,
    _feeder: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RecentOpportunities {
    /// Subscribes now (nothing published after this is missed) and starts the feeder.
    pub fn start(bus: &Bus) -> Self {
        let rx = bus.opportunities.subscribe();
        let ring = Arc::new(Mutex::new(VecDeque::with_capacity(RECENT)));
        let feeding = ring.clone();
        let task = tokio::spawn(async move {
            loop {
                let (_, found) = rx.recv().await;
                let mut ring = feeding.lock().unwrap_or_else(|e| e.into_inner());
                ring.push_front(found.opportunity);
                ring.truncate(RECENT);
            }
        });
        RecentOpportunities {
            ring,
            _feeder: Arc::new(AbortOnDrop(task.abort_handle())),
        }
    }

    pub fn newest_first(&self) -> Vec<Opportunity> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().cloned().collect()
    }
}

/// The last 200 opportunities the plugins found (best per pair per book change), newest first.
#[utoipa::path(get, path = "/opportunities", tag = "opportunities",
    responses((status = 200, description = "newest first", body = [Object])))]
pub async fn recent_opportunities(State(state): State<ApiState>) -> Json<Vec<Opportunity>> {
    Json(state.recent.newest_first())
}

/// Live stream: `opportunity`, `trade` (executed, once booked), `fill` (each
/// fill of that trade), `leg_failed`, `plugin` and `feed` events with JSON
/// data, and keep-alive comments.
#[utoipa::path(get, path = "/events", tag = "opportunities",
    responses((status = 200, description = "server-sent events named opportunity, trade, fill, leg_failed, plugin, feed; data is JSON",
        content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before the response starts: a client that has the headers
    // sees everything published afterwards.
    let feed = EventFeed {
        opportunities: state.host.bus.opportunities.subscribe(),
        trades: state.host.bus.trades.subscribe(),
        pending: Default::default(),
        status: state.host.bus.status.subscribe(),
        closing: state.closing.clone(),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

struct EventFeed {
    opportunities: CoalescingReceiver<PairId, ArbitrageOpportunityFound>,
    trades: crate::bus::LosslessReceiver<crate::bus::TradeEvent>,
    /// The fills of the last trade, sent right after it.
    pending: std::collections::VecDeque<Event>,
    status: BroadcastReceiver<StatusEvent>,
    closing: watch::Receiver<bool>,
}

impl EventFeed {
    /// The next event, or `None` when the server shuts down or the bus is gone.
    async fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.pending.pop_front() {
            return Some(e);
        }
        tokio::select! {
            (_, found) = self.opportunities.recv() => Some(sse("opportunity", &found.opportunity)),
            trade = self.trades.recv() => match trade? {
                crate::bus::TradeEvent::Executed(t) => {
                    let legs = [&t.trade.yes_leg, &t.trade.no_leg];
                    self.pending.extend(legs.iter().flat_map(|l| &l.fills).map(|f| sse("fill", f)));
                    Some(sse("trade", &t.trade))
                }
                crate::bus::TradeEvent::LegFailed(f) => Some(sse("leg_failed", &f)),
            },
            status = self.status.recv() => match status? {
                StatusEvent::Plugin(p) => Some(sse("plugin", &p)),
                StatusEvent::Feed(f) => Some(sse("feed", &f)),
            },
            // Without a shutdown signal (no sender) this branch is disabled.
            Ok(_) = self.closing.wait_for(|closing| *closing) => None,
        }
    }
}

fn sse(name: &str, data: &impl serde::Serialize) -> Event {
    let event = Event::default().event(name);
    match serde_json::to_string(data) {
        Ok(json) => event.data(json),
        Err(e) => event
            .data(serde_json::json!({ "error": format!("unserialisable event: {e}") }).to_string()),
    }
}
