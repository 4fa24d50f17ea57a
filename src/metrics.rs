//! Prometheus metrics: commands by kind and outcome, write batches, platform deliveries in and
//! out, the outbox's depth, SLA breaches, and HTTP request latency.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: String,
}

/// A platform and what became of one delivery (webhook or interaction in, outbox item out).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    platform: String,
    result: String,
}

/// An alert receiver and what became of one notification.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    receiver: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreachLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: &'static str,
}

/// One registry per process (tests run several apps in one process, so no globals).
pub struct Metrics {
    registry: Mutex<Registry>,
    commands: Family<CommandLabels, Counter>,
    batch_size: Histogram,
    batch_seconds: Histogram,
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    inbound: Family<DeliveryLabels, Counter>,
    alerts: Family<AlertLabels, Counter>,
    outbound: Family<DeliveryLabels, Counter>,
    outbox_depth: Gauge,
    outbox_parked: Gauge,
    sla_breaches: Family<BreachLabels, Counter>,
    connections_open: Gauge,
    connections_shed: Family<ShedLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let commands = Family::<CommandLabels, Counter>::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let batch_seconds = latency_histogram();
        let http = Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let mut registry = Registry::with_prefix("opsledger");
        registry.register(
            "commands",
            "Commands handled, by command and outcome",
            commands.clone(),
        );
        registry.register(
            "write_batch_commands",
            "Commands per committed write batch",
            batch_size.clone(),
        );
        registry.register(
            "write_batch_seconds",
            "Time to apply and commit one write batch",
            batch_seconds.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency by route and status",
            http.clone(),
        );
        let inbound = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "inbound_deliveries",
            "Webhook and interaction requests from Slack, Discord and GitHub, by result",
            inbound.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alert_notifications",
            "Alert notifications from Alertmanager and Grafana, by receiver and result (raised, updated, unchanged, refused, failed, unauthorized, malformed)",
            alerts.clone(),
        );
        let outbound = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "outbox_deliveries",
            "Outbox delivery attempts by platform and result (delivered, retry, parked, failed)",
            outbound.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_pending",
            "Outgoing messages not yet delivered (read when scraped)",
            outbox_depth.clone(),
        );
        let outbox_parked = Gauge::default();
        registry.register(
            "outbox_parked",
            "Outgoing messages parked after failing past the bounds, not yet retried or dropped (read when scraped)",
            outbox_parked.clone(),
        );
        let sla_breaches = Family::<BreachLabels, Counter>::default();
        registry.register(
            "sla_breaches",
            "SLA targets missed, by target (response, resolution)",
            sla_breaches.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open now",
            connections_open.clone(),
        );
        let connections_shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "http_connections_shed",
            "HTTP connections closed or refused by the server's limits, by reason (displaced, refused, header_timeout)",
            connections_shed.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            commands,
            batch_size,
            batch_seconds,
            http,
            inbound,
            alerts,
            outbound,
            outbox_depth,
            outbox_parked,
            sla_breaches,
            connections_open,
            connections_shed,
        }
    }
}

impl Metrics {
    pub fn command(&self, command: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn batch(&self, size: usize, took: Duration) {
        self.batch_size.observe(size as f64);
        self.batch_seconds.observe(took.as_secs_f64());
    }

    pub fn http(&self, route: &str, status: u16, took: Duration) {
        self.http
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                status: status.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// One request from a platform: `ok`, `duplicate`, `bad_signature`, `bad_request`, `off`, ...
    pub fn inbound(&self, platform: &str, result: &str) {
        self.inbound
            .get_or_create(&DeliveryLabels {
                platform: platform.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// One outbox delivery attempt: `delivered`, `retry`, `parked` or `failed`.
    /// One alert notification: its receiver (`unknown` before the token and body are checked)
    /// and what it led to.
    pub fn alert(&self, receiver: &str, result: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                receiver: receiver.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn outbound(&self, platform: &str, result: &str) {
        self.outbound
            .get_or_create(&DeliveryLabels {
                platform: platform.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn set_outbox_pending(&self, n: i64) {
        self.outbox_depth.set(n);
    }

    pub fn set_outbox_parked(&self, n: i64) {
        self.outbox_parked.set(n);
    }

    pub fn sla_breach(&self, target: &str) {
        self.sla_breaches
            .get_or_create(&BreachLabels {
                target: target.to_string(),
            })
            .inc();
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connections_open(&self, delta: i64) {
        self.connections_open.inc_by(delta);
    }

    /// A connection the limits closed or refused: `displaced` (it waited longest for a request
    /// head when the cap was reached), `refused` (every connection was busy) or `header_timeout`.
    pub fn connection_shed(&self, reason: &'static str) {
        self.connections_shed
            .get_or_create(&ShedLabels { reason })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}
