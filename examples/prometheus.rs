//! The same leakwatch series scraped by Prometheus: the facade bridge publishes every series
//! through the `metrics` crate, and `metrics-exporter-prometheus` renders them in the text
//! exposition format: one metric per kind with the series as a label
//! (`leakwatch_live{series="presence.Watch"}`, `leakwatch_created_total{series=..}`).
//!
//! ```text
//! cargo run --example prometheus
//! ```
//!
//! A service would serve `handle.render()` on its `/metrics` endpoint (or enable the
//! exporter's `http-listener` feature); this example prints it once.

use leakwatch::facade::MetricsBridge;
use leakwatch::{Callbacks, EventCounter, Token};
use metrics_exporter_prometheus::PrometheusBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;

    let watches: Vec<Token> = (0..3).map(|_| Token::new("presence.Watch")).collect();
    let relay = Callbacks::<u32>::new("presence.relay");
    let _sub = relay.register(|_| {});
    relay.emit(&7);
    EventCounter::new("http.status.409").add(2);

    // Publish a snapshot (a service would use `bridge.spawn(registry, interval)`).
    let mut bridge = MetricsBridge::new();
    bridge.publish(&leakwatch::snapshot());
    drop(watches);
    bridge.publish(&leakwatch::snapshot()); // gauges set again, counters get the deltas

    print!("{}", handle.render());
    Ok(())
}
