//! Which market pairs this host may trade when several hosts share one store.
//!
//! A host claims its configured pairs with a lease and renews it well before
//! it runs out; a pair whose lease another live host holds is not traded
//! here (two hosts trading one market would double the exposure the risk
//! gate thinks it controls). A host that stops renewing loses its pairs after
//! one lease, so a crashed host's markets are taken over.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::TradeStore;
use crate::domain::PairId;
use crate::strategy::now_micros;

/// How long a claim holds without renewal.
pub const LEASE: Duration = Duration::from_secs(30);

/// The pairs this host holds the lease on, renewed in the background.
#[derive(Default)]
pub struct PairLeases {
    owned: RwLock<HashSet<PairId>>,
}

impl PairLeases {
    pub fn owns(&self, pair: &PairId) -> bool {
        self.owned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(pair)
    }

    /// Claims (or renews) `pairs` now; returns the pairs another host holds, with their owner.
    pub async fn claim(
        &self,
        store: &TradeStore,
        pairs: &[PairId],
    ) -> super::StoreResult<Vec<(PairId, String)>> {
        let claims = store
            .repo
            .claim_pairs(&store.host, pairs, now_micros(), LEASE)
            .await?;
        let mut owned = HashSet::new();
        let mut others = Vec::new();
        for c in claims {
            if c.owner == *store.host {
                owned.insert(c.pair);
            } else {
                others.push((c.pair, c.owner));
            }
        }
        *self.owned.write().unwrap_or_else(|e| e.into_inner()) = owned;
        Ok(others)
    }

    /// Renews every third of a lease until dropped; a failed renewal keeps the
    /// old set until the lease would have run out, then trades nothing.
    pub fn spawn_renewal(
        self: &Arc<Self>,
        store: TradeStore,
        pairs: impl Fn() -> Vec<PairId> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE / 3);
            let mut last_ok = tokio::time::Instant::now();
            let mut logged: HashSet<(PairId, String)> = HashSet::new();
            loop {
                tick.tick().await;
                match me.claim(&store, &pairs()).await {
                    Ok(others) => {
                        last_ok = tokio::time::Instant::now();
                        for (pair, owner) in others {
                            if logged.insert((pair.clone(), owner.clone())) {
                                tracing::warn!(%pair, %owner, "market traded by another host: not trading it here");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew the market leases");
                        if last_ok.elapsed() >= LEASE {
                            // Someone else may own them by now.
                            me.owned.write().unwrap_or_else(|e| e.into_inner()).clear();
                        }
                    }
                }
            }
        })
    }
}
