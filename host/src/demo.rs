//! `doubletime demo`: the simulator, the host with the default plugins and
//! both feeds connected to the simulator, the REST API, and a log a person can
//! follow. Also `doubletime sim`, the simulator on its own.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::app::Host;
use crate::bus::StatusEvent;
use crate::config::{Config, Secret};
use crate::execution::VenueClients;
use crate::feeds::{Feeds, VenueUrls};
use crate::sim::{self, Scenario, SimConfig, SimPair};
use crate::venues::kalshi::rest::KalshiRest;
use crate::venues::kalshi::{KalshiSigner, KalshiVerifier};
use crate::venues::polymarket::rest::PolymarketRest;
use crate::venues::polymarket::{ApiCreds, PolySigner};

/// A throwaway Kalshi key for the session: the simulator checks signatures with
/// its public half exactly as the venue would.
pub(crate) fn demo_kalshi_key() -> anyhow::Result<(Arc<KalshiSigner>, KalshiVerifier)> {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .context("generating the demo RSA key")?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the demo key")?;
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the demo key")?;
    let signer = KalshiSigner::from_pem("demo-key", &private, std::path::Path::new("<generated>"))?;
    Ok((Arc::new(signer), KalshiVerifier::from_public_pem(&public)?))
}

fn scenario(config: &Config, file: Option<&std::path::Path>) -> anyhow::Result<Scenario> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading scenario {}", path.display()))?;
            Scenario::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))
        }
        None => Ok(Scenario::demo(
            &config
                .markets
                .iter()
                .map(|m| m.id.clone())
                .collect::<Vec<_>>(),
        )),
    }
}

fn sim_pairs(config: &Config) -> Vec<SimPair> {
    config
        .pair_setups()
        .iter()
        .map(|(p, _)| SimPair::from(p))
        .collect()
}

/// The simulator alone, until Ctrl-C.
pub async fn run_sim(
    config: Config,
    scenario_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let sim = sim::start(SimConfig {
        pairs: sim_pairs(&config),
        scenario: scenario(&config, scenario_file.as_deref())?,
        kalshi_auth: None,
    })
    .await?;
    println!("kalshi rest      {}", sim.kalshi_rest_url);
    println!("kalshi ws        {}", sim.kalshi_ws_url);
    println!("polymarket rest  {}", sim.polymarket_rest_url);
    println!("polymarket ws    {}", sim.polymarket_ws_url);
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// The Hardhat/Anvil test key (PROTOCOLS.md §3): a simulator-only wallet.
pub(crate) const DEMO_WALLET_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Session API credentials the simulated CLOB checks HMACs against.
pub(crate) fn demo_poly_creds() -> ApiCreds {
    use base64::Engine;
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    ApiCreds::new(
        "demo-api-key",
        Secret::new(base64::engine::general_purpose::URL_SAFE.encode(secret)),
        Secret::new(format!("{:016x}", rand::thread_rng().next_u64())),
    )
}

pub async fn run_demo(
    mut config: Config,
    duration: Option<Duration>,
    scenario_file: Option<std::path::PathBuf>,
    record: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let recorder = crate::app::recorder(record.as_deref())?;
    // The venues are simulated: trading on them is paper trading, so orders go out.
    config.dry_run = false;
    let (signer, verifier) = demo_kalshi_key()?;
    let sim = sim::start(SimConfig {
        pairs: sim_pairs(&config),
        scenario: scenario(&config, scenario_file.as_deref())?,
        kalshi_auth: Some(sim::kalshi_signature_check(verifier)),
    })
    .await?;
    tracing::info!(kalshi = %sim.kalshi_ws_url, polymarket = %sim.polymarket_ws_url, "demo: simulated venues up");
    let host = Arc::new(tokio::task::spawn_blocking(move || Host::start(config)).await??);
    crate::app::log_plugins(&host);
    let feeds = Feeds::start(
        &host,
        &VenueUrls::from_sim(&sim),
        Some(signer.clone()),
        recorder.clone(),
    );
    let creds = demo_poly_creds();
    sim.set_polymarket_creds(creds.clone());
    let mut feeds = feeds;
    feeds.start_polymarket_user(
        &host,
        &VenueUrls::from_sim(&sim),
        creds.clone(),
        recorder.clone(),
    );
    let clients = VenueClients {
        kalshi: KalshiRest::new(&sim.kalshi_rest_url, Some(signer))?.with_presigned_orders(
            crate::app::PRESIGNED_ORDERS,
            Duration::from_millis(host.config.kalshi.presign_max_age_ms),
        ),
        polymarket: PolymarketRest::new(
            &sim.polymarket_rest_url,
            Some(creds),
            Some(
                PolySigner::from_private_key(&Secret::new(DEMO_WALLET_KEY))?
                    .with_presignatures(crate::app::PRESIGNED_ORDERS),
            ),
        )?,
    };
    let mut trading = crate::app::start_trading(&host, clients).await?;
    trading.watch_kalshi_fills(&feeds);
    trading.watch_polymarket_settlement(&feeds);
    crate::app::serve_until_stopped(host.clone(), duration, |status| match status {
        StatusEvent::Feed(f) => {
            tracing::info!(venue = %f.venue, status = ?f.status, "feed: {}", f.detail)
        }
        StatusEvent::Plugin(_) => {}
    })
    .await?;
    trading.stop().await;
    feeds.stop().await;
    drop(sim);
    Ok(())
}
