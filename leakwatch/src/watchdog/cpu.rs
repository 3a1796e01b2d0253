//! CPU time of the calling thread, so the watchdog reports what its ticks really cost even on
//! a busy machine where wall-clock time would include time spent preempted.

use std::time::{Duration, Instant};

/// A point to measure the calling thread's CPU time from.
pub(crate) struct CpuStart {
    cpu: Option<Duration>,
    wall: Instant,
}

impl CpuStart {
    pub(crate) fn now() -> Self {
        CpuStart {
            cpu: thread_cpu_time(),
            wall: Instant::now(),
        }
    }

    /// CPU time used by this thread since `now()`; wall time where the clock is unavailable.
    pub(crate) fn elapsed(&self) -> Duration {
        match (self.cpu, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => self.wall.elapsed(),
        }
    }
}

#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}
