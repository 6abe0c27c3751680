//! Prometheus metrics (`GET /metrics`, OpenMetrics text): requests per route and status, the
//! running load's write path, and the process's CPU, memory and network, sampled at each scrape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::ingest::jobs::Jobs;
use crate::telemetry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route's pattern (`/api/v1/ingestions/{id}`), never the raw path, so the label's
    /// cardinality is bounded.
    pub route: String,
    pub status: u16,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
}

impl Metrics {
    pub fn new(jobs: Arc<Jobs>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        // 0.25 ms to about 8 s.
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response headers, by route and status",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register_collector(Box::new(LoadCollector { jobs }));
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            requests,
            latency,
        }
    }

    pub fn observe(&self, labels: RequestLabels, seconds: f64) {
        self.latency.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; were it to, Prometheus would reject the short page.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: f64,
) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, unit, g.metric_type())?)
}

/// The most recent load's counters. They start from zero with each load.
#[derive(Debug)]
struct LoadCollector {
    jobs: Arc<Jobs>,
}

impl Collector for LoadCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let Some(job) = self.jobs.latest() else {
            return Ok(());
        };
        let s = &job.stats;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        counter(
            &mut e,
            "ohlcv_load_trades_written",
            "Trades acknowledged by the store in the current or last load",
            load(&job.progress.done),
        )?;
        gauge(
            &mut e,
            "ohlcv_load_trades",
            "Trades the current or last load writes",
            None,
            load(&job.progress.total) as f64,
        )?;
        counter(
            &mut e,
            "ohlcv_load_batches",
            "Write requests acknowledged (InfluxDB)",
            load(&s.sent),
        )?;
        counter(
            &mut e,
            "ohlcv_load_retries",
            "Write requests retried (InfluxDB)",
            load(&s.retried),
        )?;
        counter(
            &mut e,
            "ohlcv_load_failures",
            "Write requests that failed for good (InfluxDB)",
            load(&s.failed),
        )?;
        counter(
            &mut e,
            "ohlcv_load_bytes_raw",
            "Line protocol bytes before compression (InfluxDB)",
            load(&s.bytes_raw),
        )?;
        counter(
            &mut e,
            "ohlcv_load_bytes_sent",
            "Request body bytes sent (InfluxDB)",
            load(&s.bytes_sent),
        )?;
        gauge(
            &mut e,
            "ohlcv_load_batches_in_flight",
            "Write requests awaiting an answer (InfluxDB)",
            None,
            load(&s.in_flight) as f64,
        )?;
        let summary = s.summary();
        let descriptor = e.encode_descriptor(
            "ohlcv_load_batch_latency",
            "Write request latency quantiles of the current or last load (InfluxDB)",
            Some(&Unit::Seconds),
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let mut descriptor = descriptor;
        for (q, ms) in [
            ("0.5", summary.latency_ms_p50),
            ("0.9", summary.latency_ms_p90),
            ("0.99", summary.latency_ms_p99),
            ("1", summary.latency_ms_max),
        ] {
            let labels = [("quantile", q)];
            ConstGauge::new(ms / 1000.0).encode(descriptor.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// This process's resources, read from /proc at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        if let Some(cpu) = telemetry::cpu_seconds() {
            let c = ConstCounter::new(cpu);
            c.encode(e.encode_descriptor(
                "process_cpu",
                "User and system CPU time",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?)?;
        }
        if let Some(rss) = telemetry::rss_bytes() {
            gauge(
                &mut e,
                "process_resident_memory",
                "Resident set size",
                Some(&Unit::Bytes),
                rss as f64,
            )?;
        }
        if let Some((rx, tx)) = telemetry::network_bytes() {
            let (rx, tx) = (ConstCounter::new(rx), ConstCounter::new(tx));
            rx.encode(e.encode_descriptor(
                "process_network_receive",
                "Bytes received on non-loopback interfaces",
                Some(&Unit::Bytes),
                rx.metric_type(),
            )?)?;
            tx.encode(e.encode_descriptor(
                "process_network_transmit",
                "Bytes sent on non-loopback interfaces",
                Some(&Unit::Bytes),
                tx.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
