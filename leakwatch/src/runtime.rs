//! A tokio runtime's stable metrics as gauges (feature `tokio`): a task that outlives its
//! connection is a counted leak.
//!
//! `tokio.alive_tasks` is the runtime's count of spawned tasks that have not finished;
//! `tokio.global_queue_depth` the tasks waiting in its global queue. A server whose streams
//! each own a task should see alive tasks follow open streams; a divergence rule between the
//! two names a task that never ends.
//!
//! ```
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let reg = leakwatch::Registry::new();
//! let _gauges = leakwatch::runtime::watch_tokio(&reg, rt.handle(), "tokio");
//! let task = rt.spawn(std::future::pending::<()>());
//! assert_eq!(reg.snapshot().live("tokio.alive_tasks"), 1);
//! task.abort();
//! rt.block_on(async { let _ = task.await; });
//! assert_eq!(reg.snapshot().live("tokio.alive_tasks"), 0);
//! ```

use crate::gauge::Gauge;
use crate::registry::Registry;

/// The gauges of one runtime; dropping it stops sampling them.
#[derive(Debug)]
#[must_use = "the runtime is sampled only while this value lives"]
pub struct TokioGauges {
    /// `<prefix>.alive_tasks`.
    pub alive_tasks: Gauge,
    /// `<prefix>.global_queue_depth`.
    pub global_queue_depth: Gauge,
}

/// Samples `handle`'s runtime as `<prefix>.alive_tasks` and `<prefix>.global_queue_depth` in
/// `registry`. Reading them costs two atomic loads; nothing runs between snapshots.
pub fn watch_tokio(
    registry: &Registry,
    handle: &tokio::runtime::Handle,
    prefix: &str,
) -> TokioGauges {
    let m = handle.metrics();
    let alive_tasks = registry.gauge(&format!("{prefix}.alive_tasks"), move || {
        Some(m.num_alive_tasks() as u64)
    });
    let m = handle.metrics();
    let global_queue_depth = registry.gauge(&format!("{prefix}.global_queue_depth"), move || {
        Some(m.global_queue_depth() as u64)
    });
    TokioGauges {
        alive_tasks,
        global_queue_depth,
    }
}
