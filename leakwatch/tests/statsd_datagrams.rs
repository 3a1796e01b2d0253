//! How the StatsD exporter fills datagrams, seen from an in-process UDP receiver on
//! 127.0.0.1: a large export goes out as few, full datagrams (one `send` per datagram-sized
//! chunk, nothing else on the wire), every line arrives exactly once, and the line counts the
//! sender keeps match what was sent.
#![cfg(feature = "statsd")]

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use leakwatch::statsd::{LOOPBACK_DATAGRAM_SIZE, StatsdExporter};
use leakwatch::{Registry, Token};

/// Every datagram received until `done` is set and the socket is empty. Loopback delivers
/// a datagram within its `send`, so once the sender has passed everything on, what is left
/// is already waiting here.
fn datagrams(sock: &UdpSocket, done: &AtomicBool) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let finished = done.load(Ordering::Acquire);
        match sock.recv(&mut buf) {
            Ok(n) => {
                out.push(String::from_utf8(buf[..n].to_vec()).expect("StatsD lines are UTF-8"))
            }
            Err(_) if finished => return out,
            Err(_) => {}
        }
    }
}

#[test]
fn a_large_export_goes_out_in_full_loopback_datagrams() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let reg = Registry::new();
    let tokens: Vec<Token> = (0..2_000)
        .map(|i| Token::new_in(&reg, &format!("app.series{i:04}")))
        .collect();
    let exporter = StatsdExporter::builder(&sock.local_addr().unwrap().to_string())
        .prefix("t")
        .instance("packing")
        .registry(&reg)
        .build()
        .unwrap();
    // Received as they come (the default pacing keeps each burst within the socket's
    // receive buffer).
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        std::thread::spawn(move || datagrams(&sock, &done))
    };
    let stats = exporter.export(&reg.snapshot_counts());
    assert!(exporter.flush(Duration::from_secs(60)), "the sender drains");
    done.store(true, Ordering::Release);
    let got = receiver.join().unwrap();

    let lines: Vec<&str> = got.iter().flat_map(|d| d.split('\n')).collect();
    assert_eq!(lines.len(), stats.queued, "every queued line arrives once");
    assert_eq!(stats.refused, 0);
    assert!(lines.iter().all(|l| l.starts_with("t.packing.leakwatch.")));
    assert!(lines.contains(&"t.packing.leakwatch.live.app.series1999:1|g"));
    // Full datagrams: each but the last is at most the loopback size, and the next
    // datagram's first line would not have fitted into it.
    for pair in got.windows(2) {
        let next = pair[1].split('\n').next().unwrap();
        assert!(pair[0].len() < LOOPBACK_DATAGRAM_SIZE, "{}", pair[0].len());
        assert!(pair[0].len() + 1 + next.len() >= LOOPBACK_DATAGRAM_SIZE);
    }
    // 2 000 series make about 360 KB of lines: several datagrams even at the loopback size
    // (which the packing check above holds each of them to).
    let bytes: usize = got.iter().map(|d| d.len() + 1).sum();
    assert!(bytes > 3 * LOOPBACK_DATAGRAM_SIZE, "{bytes} bytes");
    assert!(got.len() > 3, "{} datagrams", got.len());
    // What the sender counted as passed on: no line lost, none counted twice.
    assert_eq!(exporter.dropped(), 0);
    drop(tokens);
}
