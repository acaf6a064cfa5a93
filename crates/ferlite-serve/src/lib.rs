//! `ferlite serve`: the HTTP API and live web page.
//!
//! - [`api`]: the routes (`POST /v1/predict`, `GET /v1/model`, `/healthz`, `/metrics`, `/`).
//! - [`admission`]: bounded concurrency with a bounded queue; beyond it, 503 with `Retry-After`.
//! - [`metrics`]: Prometheus counters, latency histogram and in-flight gauge.
//! - [`error`]: every failure as a JSON body `{"error": ..., "status": ...}`.
//!
//! The model is loaded once and shared; inference runs on tokio's blocking pool (and rayon inside
//! the predictor), never on the async executor threads.

pub mod admission;
pub mod api;
pub mod error;
pub mod metrics;

use ferlite::predict::Predictor;
use admission::Admission;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Limits of the service. Their defaults live in one place: `ferlite serve`'s flags.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Largest request body; larger gets 413.
    pub max_body_bytes: usize,
    /// Largest decoded image; larger gets 422 (checked from the header, before decoding).
    pub max_pixels: u64,
    /// Requests processed at once.
    pub concurrency: usize,
    /// Requests allowed to wait for a slot; beyond that, 503 with `Retry-After`.
    pub queue: usize,
    /// Longest a request may take from arrival to answer; past it, 503 (processing) or 408 (upload).
    pub request_timeout: Duration,
}

/// What every request handler shares.
pub struct AppState {
    pub predictor: Predictor,
    pub config: ServeConfig,
    pub admission: Admission,
    pub metrics: metrics::Metrics,
}

impl AppState {
    pub fn new(predictor: Predictor, config: ServeConfig) -> Arc<Self> {
        let admission = Admission::new(config.concurrency, config.queue);
        Arc::new(AppState { predictor, config, admission, metrics: metrics::Metrics::default() })
    }
}

/// Serves on `listener` until SIGTERM or Ctrl-C, then stops accepting and lets in-flight requests finish.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) -> Result<()> {
    axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown_signal()).await.context("server failed")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
