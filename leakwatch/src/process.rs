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
//! [`watch_tcp_port`] counts only the sockets of one listening port, for processes that hold
//! other sockets too (a test or demo running clients beside the server).
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

/// This process's TCP sockets whose local port is `port` (Linux: `/proc/net/tcp` and
/// `tcp6` matched against `/proc/self/fd`): a server's listener and the connections it
/// accepted, without the sockets of anything else in the process (clients, exporters).
/// `None` where that cannot be read.
pub fn tcp_sockets_on_port(port: u16) -> Option<u64> {
    port_sockets(port)
}

#[cfg(target_os = "linux")]
fn port_sockets(port: u16) -> Option<u64> {
    use std::collections::HashSet;
    let mut inodes: HashSet<u64> = HashSet::new();
    let want = format!(":{port:04X}");
    let mut any = false;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        any = true;
        for line in text.lines().skip(1) {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1).unwrap_or("");
            if !local.ends_with(&want) {
                continue;
            }
            // sl local rem st queues tr retrnsmt uid timeout inode: inode is column 9.
            if let Some(inode) = line.split_whitespace().nth(9).and_then(|i| i.parse().ok()) {
                inodes.insert(inode);
            }
        }
    }
    if !any {
        return None;
    }
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    let mut n = 0u64;
    for entry in dir.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(inode) = t
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|i| i.parse::<u64>().ok())
            && inodes.contains(&inode)
        {
            n += 1;
        }
    }
    Some(n)
}

#[cfg(not(target_os = "linux"))]
fn port_sockets(_port: u16) -> Option<u64> {
    None
}

/// Samples [`tcp_sockets_on_port`] as the gauge `name` in `registry`.
pub fn watch_tcp_port(registry: &Registry, name: &str, port: u16) -> Gauge {
    registry.gauge(name, move || tcp_sockets_on_port(port))
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn sockets_on_a_port_are_the_listener_and_its_connections_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(tcp_sockets_on_port(port), Some(1));
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        // The listener and the accepted socket have local port `port`; the client's local
        // port is another one.
        assert_eq!(tcp_sockets_on_port(port), Some(2));
        drop(accepted);
        assert_eq!(tcp_sockets_on_port(port), Some(1));
        drop((client, listener));
        assert_eq!(tcp_sockets_on_port(port), Some(0));
    }
}
