//! The bounds of background loops' intervals: the watchdog refuses an interval outside
//! them; loops that cannot report an error (the reaper, exporters, the facade bridge) clamp
//! theirs. Kept apart from the watchdog so those loops need nothing of it.

use std::time::Duration;

/// The longest sampling interval [`WatchdogBuilder::start`](crate::WatchdogBuilder::start) accepts (one day). Background
/// loops that cannot refuse an interval (`StatsdExporter::spawn`,
/// [`MetricsBridge::spawn`](crate::facade::MetricsBridge::spawn)) clamp theirs with
/// [`clamp_spawn_interval`] instead.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest interval of the background loops that clamp theirs (see [`MAX_INTERVAL`]):
/// a zero interval would make them spin.
pub const MIN_SPAWN_INTERVAL: Duration = Duration::from_millis(1);

/// The interval a background loop that cannot report an error uses for `interval`: clamped
/// to [`MIN_SPAWN_INTERVAL`]`..=`[`MAX_INTERVAL`], since deadlines computed from a huge one
/// overflow `Instant` and a zero one spins.
pub fn clamp_spawn_interval(interval: Duration) -> Duration {
    interval.clamp(MIN_SPAWN_INTERVAL, MAX_INTERVAL)
}
