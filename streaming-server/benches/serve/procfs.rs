//! What the bench reads from Linux about a server process, and the process controls it needs.

use std::time::{Duration, Instant};

/// Resident set size of `pid` in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time `pid` has used so far, in nanoseconds: the sum over its threads of the first field
/// of `/proc/PID/task/TID/schedstat` (nanosecond resolution, unlike `/proc/PID/stat`'s ticks).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until `pid` uses less than 15% of a core over two half-second windows in a row (the
/// presence storm of 10,000 opens, a core's worth, and the 1-to-1 lookups have settled; an
/// instrumented server's watchdog keeps sampling), at most `max`.
pub fn wait_quiet(pid: u32, max: Duration) -> Duration {
    let start = Instant::now();
    let window = Duration::from_millis(500);
    let mut quiet = 0;
    let mut last = cpu_ns(pid);
    while start.elapsed() < max {
        std::thread::sleep(window);
        let now = cpu_ns(pid);
        if now.saturating_sub(last) < 75_000_000 {
            quiet += 1;
            if quiet == 2 {
                break;
            }
        } else {
            quiet = 0;
        }
        last = now;
    }
    start.elapsed()
}

/// Raises this process's open-file limit (soft and, as root, hard) to `want`, capped by the
/// kernel's `fs.nr_open`; children inherit it. Returns the soft limit in force.
pub fn raise_nofile(want: u64) -> u64 {
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(want);
    let want = want.min(nr_open);
    // SAFETY: getrlimit/setrlimit write and read the struct we pass, nothing else.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            // Not root: the hard limit is as far as we may go.
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max.min(want),
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Stops (`SIGSTOP`) or resumes (`SIGCONT`) `pid`: servers not being measured are stopped so
/// that each fan-out round has the machine to itself, bar the load generator.
pub fn pause(pid: u32, stop: bool) {
    let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Sends `SIGTERM` to `pid`.
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// CPU time of `pid`'s threads so far, in nanoseconds, summed by thread name (`comm`, which
/// the kernel truncates to 15 bytes: `tokio-runtime-w`, `leakwatch-watch`, ...).
pub fn cpu_by_thread(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut by = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *by.entry(comm.trim().to_owned()).or_insert(0) += ns;
    }
    by
}

/// `after - before`, per thread name, in milliseconds, largest first.
pub fn thread_ms(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(k, &a)| {
            let b = before.get(k).copied().unwrap_or(0);
            (k.clone(), a.saturating_sub(b) as f64 / 1e6)
        })
        .filter(|(_, ms)| *ms > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}
