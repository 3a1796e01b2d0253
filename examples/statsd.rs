//! Tracks objects in a small simulated service and sends every count to StatsD, for a look
//! at the series in Graphite:
//!
//! ```text
//! scripts/graphite-stack.sh up            # StatsD on 127.0.0.1:8125, graphite-web on :8080
//! cargo run --example statsd -- 60        # run 60 s (default), leaking one callback in ten
//! # then open the "Graph:" URL printed by the script, or:
//! curl 'http://127.0.0.1:8080/render?target=stats.gauges.app.*.leakwatch.live.*&from=-5min&format=json'
//! ```
//!
//! Environment: `STATSD` (default `127.0.0.1:8125`), `LEAKWATCH_INSTANCE` (default: host name).

use std::time::{Duration, Instant};

use leakwatch::statsd::StatsdExporter;
use leakwatch::{Callbacks, CloseReason, Connections, EventCounter, Registry, Scope};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(60);
    let addr = std::env::var("STATSD").unwrap_or_else(|_| "127.0.0.1:8125".into());

    let exporter = StatsdExporter::builder(&addr).prefix("app").build()?;
    // The program's own metrics (HTTP statuses, deliveries) go through the same queue.
    metrics::set_global_recorder(exporter.metrics_recorder().labels_in_name())?;
    let export = exporter.spawn(Duration::from_secs(1));
    println!(
        "sending to {addr} as {}.* for {secs} s\n  Graphite: stats.gauges.{0}.live.presence.callbacks, stats.counters.{0}.created.connections.count, ...",
        exporter.leakwatch_prefix()
    );

    let reg = Registry::global();
    let conns = Connections::new_in(reg, "connections");
    let presence = Callbacks::<u32>::new_in(reg, "presence.callbacks");
    let conflicts = EventCounter::new_in(reg, "http.status.409");
    let mut open = Vec::new();
    let start = Instant::now();
    let mut i: u64 = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        i += 1;
        // A connection with its presence callback, bound to the connection's scope.
        let scope = Scope::builder("connection").registry(reg).open();
        let conn = conns.open(|| true);
        let sub = presence.register_in(&scope, |_| {})?;
        metrics::counter!("http.responses", "status" => "200").increment(1);
        if i.is_multiple_of(10) {
            // The seed's bug: a 409 closes the connection, but the callback stays.
            conflicts.incr();
            metrics::counter!("http.responses", "status" => "409").increment(1);
            conn.close(CloseReason::Normal);
            scope.close();
            std::mem::forget(sub);
        } else {
            open.push((conn, scope, sub));
        }
        if open.len() > 50 {
            let (conn, scope, sub) = open.remove(0);
            conn.close(CloseReason::Normal);
            drop(sub);
            scope.close();
        }
        presence.emit(&(i as u32));
        metrics::counter!("messages.delivered").increment(presence.len() as u64);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stops the thread, exports a last time and flushes: nothing queued is lost at exit.
    export.stop(Duration::from_secs(2));
    println!("done; {} lines dropped", exporter.dropped());
    Ok(())
}
