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

/// This process's TCP sockets whose local port is `port`: a server's listener and the
/// connections it accepted, without the sockets of anything else in the process (clients,
/// exporters). Linux: every descriptor of `/proc/self/fd` is asked for its type and local
/// address (`getsockopt`, `getsockname`), so the count is of this process's sockets as they
/// are now. (Matching `/proc/net/tcp` instead is unreliable under churn: the kernel's table
/// walk skips entries that move while it is read.) `None` where that cannot be read.
pub fn tcp_sockets_on_port(port: u16) -> Option<u64> {
    port_sockets(port)
}

#[cfg(target_os = "linux")]
fn port_sockets(port: u16) -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    let mut n = 0u64;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::c_int>().ok())
        else {
            continue;
        };
        if local_tcp_port(fd) == Some(port) {
            n += 1;
        }
    }
    Some(n)
}

/// The local port of `fd` if it is a TCP (stream, IPv4 or IPv6) socket. A descriptor closed
/// (or reused) since it was listed just answers for what it is now.
#[cfg(target_os = "linux")]
fn local_tcp_port(fd: libc::c_int) -> Option<u16> {
    // SAFETY: both calls only write into the buffers passed, sized by the lengths passed;
    // an fd that is not a socket (or no longer open) makes them fail, nothing else.
    unsafe {
        let mut ty: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        if libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        ) != 0
            || ty != libc::SOCK_STREAM
        {
            return None;
        }
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) != 0
        {
            return None;
        }
        match addr.ss_family as libc::c_int {
            libc::AF_INET => {
                let a = &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                Some(u16::from_be(a.sin_port))
            }
            libc::AF_INET6 => {
                let a = &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                Some(u16::from_be(a.sin6_port))
            }
            _ => None,
        }
    }
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
