//! Hot reload: watches the plugins folder and feeds changed files to the runtime.
//!
//! Events are debounced (editors and `cp` produce bursts), temporary and hidden
//! files are ignored (builders write `name.wasm.tmp` and rename), a file whose
//! content hash did not change is skipped, and a vanished file unloads its plugin.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Weak, mpsc};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use super::runtime::StrategyRuntime;

/// `*.wasm`, not hidden: what the runtime loads from the folder.
pub fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && path.extension().is_some_and(|e| e == "wasm")
}

pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl DirWatcher {
    pub fn start(
        runtime: Weak<StrategyRuntime>,
        dir: &Path,
        debounce: Duration,
    ) -> notify::Result<Self> {
        std::fs::create_dir_all(dir).map_err(notify::Error::io)?;
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) => {
                    for p in ev.paths {
                        let _ = tx.send(p);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "plugin folder watch error"),
            })?;
        // The folder, not the files: an atomic rename replaces the inode.
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("plugin-watch".into())
            .spawn(move || debounce_loop(runtime, &dir, rx, debounce))
            .map_err(notify::Error::io)?;
        Ok(DirWatcher { _watcher: watcher })
    }
}

fn debounce_loop(
    runtime: Weak<StrategyRuntime>,
    dir: &Path,
    rx: mpsc::Receiver<PathBuf>,
    debounce: Duration,
) {
    // Ends when the watcher (the sender) is dropped.
    while let Ok(first) = rx.recv() {
        let mut paths = BTreeSet::from([first]);
        while let Ok(p) = rx.recv_timeout(debounce) {
            paths.insert(p);
        }
        let Some(rt) = runtime.upgrade() else { return };
        for path in paths
            .into_iter()
            .filter(|p| is_plugin_file(p) && p.parent() == Some(dir))
        {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let sha = hex::encode(Sha256::digest(&bytes));
                    if rt.report(name).is_some_and(|r| r.sha256 == sha) {
                        continue; // touched, not changed
                    }
                    // Errors are recorded and reported by the runtime; the old version stays.
                    let _ = rt.load_bytes(name, &bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    rt.unload(name);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read plugin file")
                }
            }
        }
    }
}
