//! Strategy plugins: reports, upload (hot swap), removal, enable/disable and
//! parameters.
//!
//! An upload is checked by the runtime first (compile, world, describe,
//! configure, register-markets); only a version that passed is written to the
//! plugins folder, through a hidden temp file and a rename, so the folder
//! watcher sees a complete file whose hash matches the running version and
//! leaves it alone. A refused upload changes nothing: the old version keeps
//! running. Calls that compile wasm or wait for the strategy thread run on the
//! blocking pool.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::Serialize;
use tokio::task::spawn_blocking;
use utoipa::ToSchema;

use super::error::{ErrorBody, JsonBody, PluginName, read_body};
use super::{ApiError, ApiState};
use crate::strategy::{ConfigureError, PluginReport};

/// Every loaded plugin.
#[utoipa::path(get, path = "/plugins", tag = "plugins",
    responses((status = 200, description = "one report per plugin", body = [Object])))]
pub async fn list_plugins(State(state): State<ApiState>) -> Json<Vec<PluginReport>> {
    Json(state.host.strategy.reports())
}

/// One plugin: version, hash, mode, parameters, calls, faults, latency.
#[utoipa::path(get, path = "/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "plugin name (its file stem)")),
    responses(
        (status = 200, description = "the plugin's report", body = Object),
        (status = 400, description = "not a plugin name", body = ErrorBody),
        (status = 404, description = "no such plugin", body = ErrorBody),
    ))]
pub async fn plugin(
    State(state): State<ApiState>,
    PluginName(name): PluginName,
) -> Result<Json<PluginReport>, ApiError> {
    state
        .host
        .strategy
        .report(&name)
        .map(Json)
        .ok_or_else(|| ApiError::unknown_plugin(&name))
}

/// Installs or replaces a plugin from the component bytes in the body.
#[utoipa::path(put, path = "/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "plugin name (its file stem)")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "a WebAssembly component of the doubletime:strategy world, at most 64 MiB"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "replaced; the new version runs", body = Object),
        (status = 201, description = "installed", body = Object),
        (status = 400, description = "not a plugin name", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 413, description = "larger than 64 MiB", body = ErrorBody),
        (status = 422, description = "refused; the old version keeps running", body = ErrorBody),
    ))]
pub async fn install_plugin(
    State(state): State<ApiState>,
    PluginName(name): PluginName,
    request: Request,
) -> Result<(StatusCode, Json<PluginReport>), ApiError> {
    let bytes = read_body(request, &()).await?;
    let _one_at_a_time = state.commands.lock().await;
    let strategy = state.host.strategy.clone();
    let existed = strategy.report(&name).is_some();
    let (n, b) = (name.clone(), bytes.clone());
    let report = spawn_blocking(move || strategy.load_bytes(&n, &b))
        .await?
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let dir = state.host.config.plugins_dir.clone();
    let file_name = name.clone();
    spawn_blocking(move || save_atomically(&dir, &file_name, &bytes))
        .await?
        .map_err(|e| {
            ApiError::internal(format!(
                "plugin '{name}' is running but could not be saved to the plugins folder, \
                 so it will not survive a restart: {e}"
            ))
        })?;
    tracing::info!(plugin = %name, sha = %report.sha256, "plugin installed through the API");
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(report)))
}

/// Writes `dir/name.wasm` whole or not at all: a hidden temp file (which the
/// watcher ignores), flushed, then renamed over the old file.
fn save_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let n = UPLOADS.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.wasm.upload-{}-{n}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(format!("{name}.wasm")))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[derive(Serialize, ToSchema)]
pub struct Removed {
    pub name: String,
    /// It was running and has stopped.
    pub unloaded: bool,
    /// Its file was deleted from the plugins folder.
    pub file_removed: bool,
}

/// Stops a plugin and deletes its file from the plugins folder.
#[utoipa::path(delete, path = "/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "plugin name (its file stem)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "removed", body = Removed),
        (status = 400, description = "not a plugin name", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such plugin", body = ErrorBody),
    ))]
pub async fn remove_plugin(
    State(state): State<ApiState>,
    PluginName(name): PluginName,
) -> Result<Json<Removed>, ApiError> {
    let _one_at_a_time = state.commands.lock().await;
    let strategy = state.host.strategy.clone();
    let was_loaded = strategy.report(&name).is_some();
    // The file goes first: a watcher event still in flight then finds nothing
    // to load, where the other order could let it reload the plugin we unloaded.
    let path = state.host.config.plugins_dir.join(format!("{name}.wasm"));
    let file_removed = match tokio::fs::remove_file(&path).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(ApiError::internal(format!(
                "could not delete the file of plugin '{name}', which keeps running: {e}"
            )));
        }
    };
    let n = name.clone();
    spawn_blocking(move || strategy.unload(&n)).await?;
    if !was_loaded && !file_removed {
        return Err(ApiError::unknown_plugin(&name));
    }
    tracing::info!(plugin = %name, "plugin removed through the API");
    Ok(Json(Removed {
        name,
        unloaded: was_loaded,
        file_removed,
    }))
}

/// Resumes evaluating a plugin (and clears a quarantine).
#[utoipa::path(post, path = "/plugins/{name}/enable", tag = "plugins",
    params(("name" = String, Path, description = "plugin name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the plugin's report", body = Object),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such plugin", body = ErrorBody),
    ))]
pub async fn enable_plugin(
    state: State<ApiState>,
    name: PluginName,
) -> Result<Json<PluginReport>, ApiError> {
    set_enabled(state, name, true).await
}

/// Stops evaluating a plugin; it stays loaded.
#[utoipa::path(post, path = "/plugins/{name}/disable", tag = "plugins",
    params(("name" = String, Path, description = "plugin name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the plugin's report", body = Object),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such plugin", body = ErrorBody),
    ))]
pub async fn disable_plugin(
    state: State<ApiState>,
    name: PluginName,
) -> Result<Json<PluginReport>, ApiError> {
    set_enabled(state, name, false).await
}

async fn set_enabled(
    State(state): State<ApiState>,
    PluginName(name): PluginName,
    enabled: bool,
) -> Result<Json<PluginReport>, ApiError> {
    let strategy = state.host.strategy.clone();
    let n = name.clone();
    let report = spawn_blocking(move || {
        strategy
            .set_enabled(&n, enabled)
            .then(|| strategy.report(&n))
            .flatten()
    })
    .await?;
    report
        .map(Json)
        .ok_or_else(|| ApiError::unknown_plugin(&name))
}

/// Sets plugin parameters (merged over the current ones), in the plugin's own
/// integer units; the plugin may refuse them.
#[utoipa::path(put, path = "/plugins/{name}/config", tag = "plugins",
    params(("name" = String, Path, description = "plugin name")),
    request_body(content = BTreeMap<String, i64>, description = "parameter name → integer value, e.g. {\"min-profit\": 20000}"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the plugin's report with the new values", body = Object),
        (status = 400, description = "not a JSON object of integers", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such plugin", body = ErrorBody),
        (status = 422, description = "the plugin refused the values; nothing changed", body = ErrorBody),
    ))]
pub async fn configure_plugin(
    State(state): State<ApiState>,
    PluginName(name): PluginName,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<PluginReport>, ApiError> {
    let params = integer_params(body)?;
    let strategy = state.host.strategy.clone();
    let n = name.clone();
    match spawn_blocking(move || strategy.configure(&n, &params)).await? {
        Ok(report) => Ok(Json(report)),
        Err(ConfigureError::UnknownPlugin) => Err(ApiError::unknown_plugin(&name)),
        Err(ConfigureError::Refused(msg)) => Err(ApiError::unprocessable(format!(
            "plugin '{name}' refused the parameters: {msg}"
        ))),
    }
}

fn integer_params(body: serde_json::Value) -> Result<BTreeMap<String, i64>, ApiError> {
    let serde_json::Value::Object(map) = body else {
        return Err(ApiError::bad_request(
            "expected a JSON object of parameter name → integer",
        ));
    };
    map.into_iter()
        .map(|(k, v)| match v.as_i64() {
            Some(i) => Ok((k, i)),
            None => Err(ApiError::bad_request(format!(
                "parameter '{k}' must be an integer, got {v}"
            ))),
        })
        .collect()
}
