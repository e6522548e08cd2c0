//! Wiring: builds the bus, the plugin runtime and the rest from a [`Config`] and
//! runs until Ctrl-C or the optional duration.

use std::time::Duration;

use crate::bus::Bus;
use crate::config::Config;

pub async fn run(config: Config, duration: Option<Duration>) -> anyhow::Result<()> {
    let bus = std::sync::Arc::new(Bus::default());
    tracing::info!(
        env = ?config.app_env,
        dry_run = config.dry_run,
        markets = config.markets.len(),
        plugins = %config.plugins_dir.display(),
        "double time starting"
    );
    let stop = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    stop.await;
    tracing::info!(topics = ?bus.stats(), "double time stopped");
    Ok(())
}
