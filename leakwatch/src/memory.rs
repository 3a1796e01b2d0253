//! Process memory as series: resident set size from `/proc/self/status`, and live heap bytes
//! when the counting allocator ([`crate::alloc`]) is installed.

use serde::{Deserialize, Serialize};

pub use crate::alloc::Heap;

/// Process memory at snapshot time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Resident set size in bytes (`VmRSS`); `None` where `/proc` is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_bytes: Option<u64>,
    /// Heap figures from [`crate::alloc::CountingAlloc`], when it is the global allocator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap: Option<Heap>,
}

impl Memory {
    /// Reads resident memory now, and heap figures if the counting allocator is active.
    pub fn read() -> Memory {
        Memory {
            resident_bytes: resident_bytes(),
            heap: crate::alloc::heap(),
        }
    }
}

/// Resident set size of this process in bytes, from `/proc/self/status` (Linux). `None`
/// elsewhere or if the file cannot be read.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        Some("kB") | Some("KB") => 1024,
        Some("mB") | Some("MB") => 1024 * 1024,
        None | Some("B") => 1,
        Some(_) => return None,
    };
    Some(value * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let s = "Name:\tx\nVmPeak:\t 1000 kB\nVmRSS:\t    2048 kB\nThreads: 1\n";
        assert_eq!(parse_vm_rss(s), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("nothing"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_own_resident_memory() {
        let r = resident_bytes().expect("VmRSS on Linux");
        assert!(
            r > 100 * 1024,
            "a running test binary uses more than 100 KiB: {r}"
        );
    }
}
