//! The routes. `POST /v1/predict` takes an image as the raw body (any image Content-Type or
//! `application/octet-stream`) or as the first file of a `multipart/form-data` form, with query
//! options `faces=auto|detect|whole` and `tta=none|flip|ten-crop`.

use super::error::ApiError;
use super::metrics::{RequestLabels, RouteLabels};
use super::{streams, AppState};
use ferlite::analyze::{analyze, FaceMode, FaceSearch, FaceTooSmall};
use ferlite::faces::{check_min_score, Detector};
use ferlite::emotion::{EMOTIONS, EMOTION_COLORS, FACE_SIZE};
use ferlite::image_io::{decode_bytes, read_header, DecodeError};
use ferlite::predict::Tta;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// The web page, with the class colours every front end shares written into it.
static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let colors: serde_json::Map<String, Value> = EMOTIONS.iter().zip(EMOTION_COLORS).map(|(name, [r, g, b])| (name.to_string(), json!(format!("#{r:02x}{g:02x}{b:02x}")))).collect();
    include_str!("page.html").replace("/*EMOTION_COLORS*/{}", &Value::Object(colors).to_string())
});
const ROUTES: [&str; 5] = ["/", "/healthz", "/v1/model", "/v1/predict", "/metrics"];

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE.as_str()) }))
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/v1/model", get(model))
        .route("/v1/predict", post(predict))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, format!("no such route; try {}", ROUTES.join(", "))) })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed on {}; see GET / and POST /v1/predict", request.method(), request.uri().path()))
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts every request by route and status, times it, and keeps the in-flight gauge.
async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    // Known routes only, so a scanner cannot blow up the label set.
    let route = ROUTES.iter().find(|r| **r == request.uri().path()).copied().unwrap_or("other").to_string();
    let method = request.method().to_string();
    let started = Instant::now();
    state.metrics.in_flight.inc();
    // Decrements even when the client disconnects and this future is dropped.
    struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    let _in_flight = InFlight(&state.metrics.in_flight);
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.metrics.requests.get_or_create(&RequestLabels { method, route: route.clone(), status }).inc();
    state.metrics.latency.get_or_create(&RouteLabels { route }).observe(started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}

async fn model(State(state): State<Arc<AppState>>) -> Json<Value> {
    let p = &state.predictor;
    let c = &state.config;
    Json(json!({
        "name": "ferlite",
        "version": env!("CARGO_PKG_VERSION"),
        "source": p.source,
        "parameters": p.network.num_params(),
        "classes": EMOTIONS,
        "input": { "width": FACE_SIZE, "height": FACE_SIZE, "channels": 1 },
        "precision": p.precision(),
        "val_accuracy": p.val_accuracy,
        "architecture": p.network.config,
        "limits": {
            "max_body_bytes": c.max_body_bytes,
            "max_pixels": c.max_pixels,
            "max_decode_bytes": c.max_decode_bytes,
            "concurrency": c.concurrency,
            "queue": c.queue,
            "request_timeout_seconds": c.request_timeout.as_secs_f64(),
            "header_timeout_seconds": c.header_timeout.as_secs_f64(),
            "max_connections": c.max_connections,
        },
    }))
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PredictQuery {
    faces: FaceMode,
    detector: Detector,
    min_face_score: Option<f32>,
    tta: Tta,
    /// A live stream's id: its faces get track ids that last from frame to frame.
    stream: Option<String>,
    /// With `stream`: seconds over which each face's probabilities are averaged.
    smooth: Option<f64>,
}

impl Default for PredictQuery {
    fn default() -> Self {
        let search = FaceSearch::default();
        PredictQuery { faces: search.mode, detector: search.detector, min_face_score: search.min_face_score, tta: Tta::default(), stream: None, smooth: None }
    }
}

async fn predict(State(state): State<Arc<AppState>>, query: Result<Query<PredictQuery>, axum::extract::rejection::QueryRejection>, request: Request) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + state.config.request_timeout;
    let Query(query) = query.map_err(|e| {
        let expected = format!("faces={}, detector={}, min_face_score=0..1, tta={}, stream=ID and smooth=SECONDS", choices::<FaceMode>(), choices::<Detector>(), choices::<Tta>());
        ApiError::new(StatusCode::BAD_REQUEST, format!("bad query: {}; expected {expected}", e.body_text()))
    })?;
    let min_face_score = query.min_face_score.map(check_min_score).transpose().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad query: min_face_score: {e}")))?;
    match &query.stream {
        Some(id) => streams::check(id, query.smooth).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?,
        None if query.smooth.is_some() => return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad query: smooth needs stream=ID (the faces to smooth are a stream's)")),
        None => {}
    }
    let seconds = state.config.request_timeout.as_secs_f64();
    let body = tokio::time::timeout_at(deadline, image_body(request, state.config.max_body_bytes))
        .await
        .map_err(|_| ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("upload took longer than {seconds} s")))??;
    let permit = tokio::time::timeout_at(deadline, state.admission.admit())
        .await
        .map_err(|_| ApiError::busy(format!("waited longer than {seconds} s for a free worker")))?
        .map_err(|_| ApiError::busy("server is at capacity; retry shortly"))?;
    // The header first (off the executor: the JPEG check reads to the end), so the decode's memory
    // is reserved before a byte of it is allocated.
    let (max_pixels, header_body) = (state.config.max_pixels, body.clone());
    let header = tokio::task::spawn_blocking(move || read_header(&header_body, max_pixels))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("header task failed: {e}")))??;
    let needed = super::kib(header.peak_bytes);
    let budget = state.config.max_decode_bytes;
    if header.peak_bytes > budget {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a {}x{} image takes {} MB to decode, more than the server's whole decode budget of {} MB (--max-decode-mib)", header.width, header.height, header.peak_bytes.div_ceil(1_000_000), budget / 1_000_000),
        ));
    }
    let memory = tokio::time::timeout_at(deadline, state.decode_budget.clone().acquire_many_owned(needed))
        .await
        .map_err(|_| ApiError::busy(format!("waited longer than {seconds} s for decode memory")))?
        .map_err(|_| ApiError::busy("server is shutting down"))?;
    let queued = started.elapsed();
    let worker_state = state.clone();
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit; // held until inference really ends, even if the request timed out
        let _memory = memory;
        let t0 = Instant::now();
        let photo = decode_bytes(&body, worker_state.config.max_pixels)?;
        let decoded = t0.elapsed();
        let faces = analyze(&worker_state.predictor, &photo, FaceSearch { mode: query.faces, detector: query.detector, min_face_score }, query.tta).map_err(analysis_error)?;
        Ok::<_, ApiError>((photo.width(), photo.height(), faces, decoded, t0.elapsed() - decoded))
    });
    let (width, height, mut faces, decode, inference) = tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| ApiError::busy(format!("request took longer than {seconds} s")))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("inference task failed: {e}")))??;
    if let Some(id) = &query.stream {
        state.streams.track(id, query.smooth, Instant::now(), &mut faces);
    }
    state.metrics.faces.inc_by(faces.len() as u64);
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
    Ok(Json(json!({
        "faces": faces,
        "image": { "width": width, "height": height },
        "timing_ms": { "queue": ms(queued), "decode": ms(decode), "inference": ms(inference), "total": ms(started.elapsed()) },
    })))
}

/// A query option's values, `a|b|c`: the CLI's names, which the query's serde names equal (kebab-case).
fn choices<T: clap::ValueEnum>() -> String {
    T::value_variants().iter().filter_map(|v| Some(v.to_possible_value()?.get_name().to_string())).collect::<Vec<_>>().join("|")
}

/// A face too small to classify is the client's image (422); anything else failed on our side.
fn analysis_error(e: anyhow::Error) -> ApiError {
    let status = if e.is::<FaceTooSmall>() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::INTERNAL_SERVER_ERROR };
    ApiError::new(status, format!("{e:#}"))
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        let status = match e {
            DecodeError::TooLarge { .. } | DecodeError::OverMemoryLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DecodeError::Unsupported | DecodeError::Corrupt(_) | DecodeError::Io(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

/// The uploaded image's bytes: the raw body, or the first file field of a multipart form.
async fn image_body(request: Request, max_bytes: usize) -> Result<Bytes, ApiError> {
    // Refuse a declared oversize body before receiving any of it: the client learns at once, and
    // the server neither waits for nor reads the upload (the body limit alone reads up to the limit).
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&n| n > max_bytes as u64) {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body of {length} bytes is over the length limit of {max_bytes} bytes (--max-body-mib)")));
    }
    let multipart = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("multipart/form-data"));
    let bytes = if multipart {
        let mut form = Multipart::from_request(request, &()).await.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        loop {
            match form.next_field().await.map_err(|e| ApiError::new(e.status(), e.body_text()))? {
                Some(field) if field.file_name().is_some() || field.name() == Some("image") => {
                    break field.bytes().await.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
                }
                Some(_) => continue,
                None => return Err(ApiError::new(StatusCode::BAD_REQUEST, "multipart form has no file field (send the image as a file, or as a field named `image`)")),
            }
        }
    } else {
        Bytes::from_request(request, &()).await.map_err(|e| ApiError::new(e.status(), e.body_text()))?
    };
    if bytes.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "empty body: send the image bytes (Content-Type image/jpeg, image/png, ...) or a multipart form with a file"));
    }
    Ok(bytes)
}
