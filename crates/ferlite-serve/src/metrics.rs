//! Prometheus metrics (the `prometheus-client` crate): requests by route and status, latency
//! histogram by route, requests in flight, requests abandoned by their clients, connections
//! refused over the cap, faces found.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub in_flight: Gauge,
    pub abandoned: Counter,
    pub connections_refused: Counter,
    pub faces: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        // 0.5 ms .. ~8 s.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 15)));
        let in_flight = Gauge::default();
        let abandoned = Counter::default();
        let connections_refused = Counter::default();
        let faces = Counter::default();
        let mut registry = Registry::with_prefix("ferlite");
        registry.register("http_requests", "HTTP requests answered, by method, route and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time from request to response, by route", latency.clone());
        registry.register("http_requests_in_flight", "Requests being processed now", in_flight.clone());
        registry.register("http_requests_abandoned", "Requests whose client went away before the answer", abandoned.clone());
        registry.register("connections_refused", "Connections over --max-connections, answered 503 and closed", connections_refused.clone());
        registry.register("faces_detected", "Faces found and classified by /v1/predict", faces.clone());
        Metrics { registry, requests, latency, in_flight, abandoned, connections_refused, faces }
    }
}

impl Metrics {
    /// The Prometheus/OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
