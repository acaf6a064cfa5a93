//! `ferlite serve`: the HTTP API and live web page.
//!
//! - [`api`]: the routes (`POST /v1/predict`, `GET /v1/model`, `/healthz`, `/metrics`, `/`).
//! - [`admission`]: bounded concurrency with a bounded queue; beyond it, 503 with `Retry-After`.
//! - [`metrics`]: Prometheus counters, latency histogram and in-flight gauge.
//! - [`error`]: every failure as a JSON body `{"error": ..., "status": ...}`.
//! - [`streams`]: the face trackers of live streams (`?stream=ID&smooth=SECONDS`).
//!
//! The model is loaded once and shared; inference runs on tokio's blocking pool (and rayon inside
//! the predictor), never on the async executor threads.

pub mod admission;
pub mod api;
mod connection;
pub mod error;
pub mod metrics;
pub mod streams;

use ferlite::predict::Predictor;
use admission::Admission;
use anyhow::Result;
use std::sync::Arc;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits of the service. Their defaults live in one place: `ferlite serve`'s flags.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Largest request body; larger gets 413.
    pub max_body_bytes: usize,
    /// Largest decoded image; larger gets 422 (checked from the header, before decoding).
    pub max_pixels: u64,
    /// Decoded pixels all requests together may hold at once; a request waits for its share, and
    /// one that alone needs more gets 422.
    pub max_decode_bytes: u64,
    /// Requests processed at once.
    pub concurrency: usize,
    /// Requests allowed to wait for a slot; beyond that, 503 with `Retry-After`.
    pub queue: usize,
    /// Longest a request may take from arrival to answer; past it, 503 (processing) or 408 (upload).
    pub request_timeout: Duration,
    /// Longest wait for a complete request header, counted from when the connection opens or its
    /// previous response was sent: it bounds both a slow header and an idle keep-alive connection.
    pub header_timeout: Duration,
    /// Connections open at once; a connection beyond it is answered 503 and closed.
    pub max_connections: usize,
    /// After SIGTERM/Ctrl-C, how long open connections get to finish before they are closed.
    pub shutdown_timeout: Duration,
}

/// What every request handler shares.
pub struct AppState {
    pub predictor: Predictor,
    pub config: ServeConfig,
    pub admission: Admission,
    /// `max_decode_bytes` in KiB permits, held by each request while it decodes and analyses.
    pub decode_budget: Arc<Semaphore>,
    pub metrics: metrics::Metrics,
    /// Face trackers of the live streams (`?stream=ID`).
    pub streams: streams::Streams,
}

impl AppState {
    pub fn new(predictor: Predictor, config: ServeConfig) -> Arc<Self> {
        let admission = Admission::new(config.concurrency, config.queue);
        let decode_budget = Arc::new(Semaphore::new(kib(config.max_decode_bytes) as usize));
        Arc::new(AppState { predictor, config, admission, decode_budget, metrics: metrics::Metrics::default(), streams: streams::Streams::default() })
    }
}

/// Bytes as KiB permits, rounded up (a semaphore takes at most u32 permits at once: 4 TiB).
pub fn kib(bytes: u64) -> u32 {
    bytes.div_ceil(1024).min(u32::MAX as u64) as u32
}

/// Serves on `listener` until SIGTERM or Ctrl-C; then stops accepting and gives open connections
/// `shutdown_timeout` to finish (a second signal ends at once), and returns.
///
/// Our own accept loop on hyper rather than `axum::serve`, which sets neither a header timeout nor
/// a connection cap: without them, slow or idle clients hold sockets until the fd limit is reached.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) -> Result<()> {
    let app = api::router(state.clone());
    let config = &state.config;
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: a client that shuts its write side after sending the request still gets the answer.
    http.timer(TokioTimer::new()).header_read_timeout(config.header_timeout).half_close(true);
    let open = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close instead of spinning.
                    tracing::warn!("accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            state.metrics.connections_refused.inc();
            tokio::spawn(refuse_connection(stream, config.max_connections));
            continue;
        };
        let (stream, answer_pending) = connection::Watched::new(stream);
        let service = connection::service(app.clone(), answer_pending.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
                if answer_pending.load(std::sync::atomic::Ordering::SeqCst) {
                    state.metrics.abandoned.inc();
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let open_now = config.max_connections - open.available_permits();
    let seconds = config.shutdown_timeout.as_secs_f64();
    tracing::info!("shutdown requested: giving {open_now} open connections up to {seconds} s to finish (a second signal exits now)");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("shut down cleanly"),
        _ = tokio::time::sleep(config.shutdown_timeout) => tracing::warn!("shutdown deadline of {seconds} s passed: closing the connections left"),
        _ = shutdown_signal() => tracing::warn!("second signal: closing every connection now"),
    }
    Ok(())
}

/// The answer to a connection over the cap: a JSON 503 like every other error, then close.
async fn refuse_connection(mut stream: tokio::net::TcpStream, cap: usize) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::json!({ "error": format!("too many open connections (--max-connections {cap}); retry shortly"), "status": 503 }).to_string();
    let answer = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}", body.len());
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Resolves on the next SIGTERM or Ctrl-C.
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
}
