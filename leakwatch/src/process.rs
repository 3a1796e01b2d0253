//! What the kernel holds for this process: open sockets and file descriptors, as gauges.
//!
//! A connection tracker counts the connections the program *believes* are open. The kernel's
//! socket count is the independent witness: when a close never fires (the seed's first bug)
//! the tracker and the sockets still agree, but when the program drops its socket while its
//! bookkeeping stays (or the reverse), a divergence rule between `live.<connections>` and
//! `live.process.sockets` shows it directly, with or without a reaper.
//!
//! ```standalone_crate
//! # #[cfg(target_os = "linux")] {
//! let reg = leakwatch::Registry::new();
//! let _sockets = leakwatch::process::watch_sockets(&reg);
//! let before = reg.snapshot().live("process.sockets");
//! let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! assert_eq!(reg.snapshot().live("process.sockets"), before + 1);
//! drop(listener);
//! assert_eq!(reg.snapshot().live("process.sockets"), before);
//! # }
//! ```
//!
//! (The example runs in a process of its own: a parallel test opening sockets would move the
//! count.)

use crate::gauge::Gauge;
use crate::registry::Registry;

/// Series name of [`watch_sockets`].
pub const SOCKETS: &str = "process.sockets";
/// Series name of [`watch_fds`].
pub const FDS: &str = "process.fds";

/// Open file descriptors of this process (Linux: the entries of `/proc/self/fd`); `None`
/// where that cannot be read.
pub fn open_fds() -> Option<u64> {
    fd_count(|_| true)
}

/// Open sockets of this process (Linux: the entries of `/proc/self/fd` that link to
/// `socket:[inode]`, TCP, UDP and Unix alike); `None` where that cannot be read.
pub fn open_sockets() -> Option<u64> {
    fd_count(|target| target.as_encoded_bytes().starts_with(b"socket:"))
}

#[cfg(target_os = "linux")]
fn fd_count(keep: impl Fn(&std::ffi::OsStr) -> bool) -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    let mut n = 0u64;
    for entry in dir.flatten() {
        // The directory handle read_dir holds is itself an fd here: it links to
        // /proc/<pid>/fd, never to a socket, and is excluded from the fd count below.
        if let Ok(target) = std::fs::read_link(entry.path())
            && keep(target.as_os_str())
            && !target.as_os_str().as_encoded_bytes().ends_with(b"/fd")
        {
            n += 1;
        }
    }
    Some(n)
}

#[cfg(not(target_os = "linux"))]
fn fd_count(_keep: impl Fn(&std::ffi::OsStr) -> bool) -> Option<u64> {
    None
}

/// Samples [`open_sockets`] as the gauge `process.sockets` ([`SOCKETS`]) in `registry`.
/// Each snapshot then reads one directory entry per open descriptor (about 1 µs each).
pub fn watch_sockets(registry: &Registry) -> Gauge {
    registry.gauge(SOCKETS, open_sockets)
}

/// Samples [`open_fds`] as the gauge `process.fds` ([`FDS`]) in `registry`.
pub fn watch_fds(registry: &Registry) -> Gauge {
    registry.gauge(FDS, open_fds)
}
