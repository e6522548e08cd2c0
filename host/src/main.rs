//! The `doubletime` binary: parse the command line, load the configuration,
//! wire the components, run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use doubletime::config::Config;

#[derive(Parser)]
#[command(
    name = "doubletime",
    version,
    about = "Kalshi x Polymarket buy-both arbitrage host"
)]
struct Cli {
    /// TOML configuration file (see doubletime.example.toml).
    #[arg(long, short, global = true, env = "DOUBLETIME_CONFIG")]
    config: Option<PathBuf>,
    /// Record every raw feed message (both venues) with its receive time to this
    /// JSON-lines file (`run` and `demo`).
    #[arg(long, global = true)]
    record: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: feeds, books, plugins, risk, executor, store and API.
    Run {
        /// Stop by itself after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
    },
    /// The demo: simulated venues, the host with its plugins and the API on
    /// 127.0.0.1:8001, paper trading on the simulator.
    Demo {
        /// Stop by itself after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
        /// A scenario file (see host/src/sim/scenario.rs); default: arbitrage
        /// windows on every pair every few seconds.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Only the venue simulator, on loopback; prints its URLs.
    Sim {
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Feed a recording (`--record`) through the parsers, books and plugins,
    /// execute each plugin's trades against an in-process simulator holding
    /// the recorded books (never a real venue), and print what each plugin
    /// found and traded.
    Replay {
        /// The JSON-lines recording.
        file: PathBuf,
        /// Plugins to replay with (default: the configured plugins folder).
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// `max` (as fast as the host goes) or a multiple of the recorded pace.
        #[arg(long, default_value = "max")]
        speed: doubletime::replay::Speed,
        /// Print the report as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// The latency and throughput harness (build with --release): for 1, 100
    /// and 1,000 pairs with 1 and 3 plugins, the host against the simulator on
    /// loopback, paced tick-to-decision and updates per second; hot reload,
    /// peak memory; prints markdown tables.
    Bench {
        /// Where buy-both.wasm and walk-books.wasm are.
        #[arg(long, default_value = "target/plugins")]
        plugins: PathBuf,
        /// Seconds of arbitrage windows in each of the six loopback runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Book updates per throughput run.
        #[arg(long, default_value_t = 200_000)]
        updates: usize,
        /// Hot-reload swaps.
        #[arg(long, default_value_t = 20)]
        swaps: usize,
        /// Microseconds the evaluation thread polls before parking (in-process runs).
        #[arg(long, default_value_t = 50)]
        spin_us: u64,
        /// Evaluate plugins on a strategy thread of their own, not inline on
        /// the feed's thread (DOUBLETIME_STRATEGY_THREAD).
        #[arg(long)]
        strategy_thread: bool,
        /// Most waiting frames a feed applies before the plugins look
        /// (`feed_batch_frames`, 1 to 1024; 1 decides after every frame).
        #[arg(
            long,
            default_value_t = doubletime::venues::feed::BATCH_FRAMES,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024)
        )]
        feed_batch_frames: usize,
        /// Run only these phases (comma-separated); all by default.
        #[arg(long, value_delimiter = ',')]
        only: Vec<doubletime::bench::Phase>,
        /// The loopback phase's core layouts (comma-separated): the host on
        /// one core and the simulator on the others, and both sharing every
        /// core; both by default.
        #[arg(long, value_delimiter = ',')]
        layout: Vec<doubletime::bench::LayoutKind>,
    },
    /// Load the configuration, print it (secrets redacted) and exit.
    CheckConfig,
}

fn main() {
    // One clear line, no backtrace noise, for configuration and start-up errors.
    if let Err(e) = real_main() {
        eprintln!("doubletime: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `.env` fills in variables that are not already set in the environment.
    let _ = dotenvy::dotenv();
    // Reports go to stdout; their log goes to stderr so the two never mix.
    let log_to_stderr = matches!(
        cli.command,
        Some(Command::Replay { .. } | Command::Bench { .. })
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(move || -> Box<dyn std::io::Write> {
            if log_to_stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        })
        .init();
    let config = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    match cli.command.unwrap_or(Command::Run { duration: None }) {
        Command::CheckConfig => {
            println!(
                "{}",
                toml::to_string_pretty(&config).context("printing the configuration")?
            );
            Ok(())
        }
        Command::Run { duration } => {
            let rt = doubletime::cores::runtime(config.pin_workers)?;
            rt.block_on(doubletime::app::run(
                config,
                duration.map(Duration::from_secs),
                cli.record,
            ))
        }
        Command::Demo { duration, scenario } => {
            let rt = doubletime::cores::runtime(config.pin_workers)?;
            rt.block_on(doubletime::demo::run_demo(
                config,
                duration.map(Duration::from_secs),
                scenario,
                cli.record,
            ))
        }
        Command::Replay {
            file,
            plugins,
            speed,
            json,
        } => {
            let opts = doubletime::replay::ReplayOptions {
                file,
                plugins_dir: plugins.unwrap_or_else(|| config.plugins_dir.clone()),
                speed,
            };
            let report = doubletime::replay::replay(&config, &opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_markdown());
            }
            Ok(())
        }
        Command::Bench {
            plugins,
            seconds,
            updates,
            swaps,
            spin_us,
            strategy_thread,
            feed_batch_frames,
            only,
            layout,
        } => {
            let opts = doubletime::bench::BenchOptions {
                plugins_dir: plugins,
                seconds,
                updates,
                swaps,
                spin: Duration::from_micros(spin_us),
                settings: doubletime::bench::HostSettings {
                    strategy_thread,
                    batch_frames: feed_batch_frames,
                },
                only,
                layouts: layout,
            };
            let rt = doubletime::cores::runtime(config.pin_workers)?;
            let report = rt.block_on(doubletime::bench::run(&config, &opts))?;
            print!("{}", report.to_markdown());
            Ok(())
        }
        Command::Sim { scenario } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(doubletime::demo::run_sim(config, scenario))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's feed batch is bounded as `feed_batch_frames` is in the
    /// configuration: out of range is refused, naming the flag.
    #[test]
    fn the_bench_refuses_a_feed_batch_out_of_range() {
        let batch = |v: &str| {
            Cli::try_parse_from(["doubletime", "bench", "--feed-batch-frames", v]).map(|cli| {
                match cli.command {
                    Some(Command::Bench {
                        feed_batch_frames, ..
                    }) => feed_batch_frames,
                    _ => unreachable!("parsed as bench"),
                }
            })
        };
        assert_eq!(batch("1").unwrap(), 1);
        assert_eq!(batch("1024").unwrap(), 1024);
        for bad in ["0", "1025", "eight"] {
            let err = batch(bad).expect_err("refused").to_string();
            assert!(err.contains("--feed-batch-frames"), "{err}");
        }
    }
}
