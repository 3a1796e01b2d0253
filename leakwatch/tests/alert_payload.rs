//! The JSON a webhook receives is usable on its own: when (wall clock), which process, and
//! for a growth alert too, where the live items were created, the site holding the oldest
//! live item first, `age_ms` being that item's age.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use leakwatch::{Registry, Token, Watchdog};
use serde_json::Value;

/// A loopback HTTP receiver: every POST body, parsed, goes to the channel.
fn receiver() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

/// Site A: one item every 4 ticks from the start, never dropped (the leak).
fn leak(reg: &Registry) -> Token {
    Token::new_in(reg, "jobs")
}

/// Site B: always holds items, but each lives two ticks (busy, not leaking).
fn churn(reg: &Registry) -> Token {
    Token::new_in(reg, "jobs")
}

#[test]
fn a_growth_alert_says_when_where_and_which_sites_hold_the_oldest_items() {
    let reg = Registry::new();
    let (url, alerts) = receiver();
    // B started first: its live count never returns to zero, but its items are young.
    let mut busy = vec![churn(&reg), churn(&reg)];
    std::thread::sleep(Duration::from_millis(20));
    let mut leaked = Vec::new();
    let mut tick = 0u32;
    let r2 = reg.clone();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        .webhook(url)
        .on_sample(move |_| {
            tick += 1;
            if tick % 4 == 1 {
                leaked.push(leak(&r2));
            }
            busy.remove(0);
            busy.push(churn(&r2));
        })
        .start()
        .unwrap();
    let alert = alerts
        .recv_timeout(Duration::from_secs(120))
        .expect("a growth alert");
    wd.stop();
    assert_eq!(alert["rule"], "growth");
    assert_eq!(alert["series"], "live.jobs");
    // When, by the wall clock: RFC 3339 UTC with milliseconds.
    let time = alert["time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    // Which process.
    assert_eq!(alert["instance"]["pid"], std::process::id());
    assert!(!alert["instance"]["host"].as_str().unwrap().is_empty());
    // Where: both sites, the leak's first (its oldest item is older than anything the busy
    // site holds now, although the busy site has held items for longer).
    let hint = alert["hint"].as_array().expect("a hint");
    assert_eq!(hint.len(), 2, "{hint:?}");
    let leak_line = format!("alert_payload.rs:{}:", line_of("fn leak"));
    let churn_line = format!("alert_payload.rs:{}:", line_of("fn churn"));
    assert!(
        hint[0]["location"].as_str().unwrap().contains(&leak_line),
        "{hint:?}"
    );
    assert!(
        hint[1]["location"].as_str().unwrap().contains(&churn_line),
        "{hint:?}"
    );
    assert!(hint[0]["age_ms"].as_u64() > hint[1]["age_ms"].as_u64());
}

/// The line inside the function starting with `sig` in this file (the token's creation).
fn line_of(sig: &str) -> usize {
    let src = include_str!("alert_payload.rs");
    src.lines().position(|l| l.starts_with(sig)).unwrap() + 2
}
