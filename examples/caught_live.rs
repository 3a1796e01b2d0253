//! The seed story's second bug, caught live.
//!
//! A presence service registers one callback per open stream. When a client reconnects with a
//! stale Last-Event-ID the server answers 409 and cleans the stream up at once; meanwhile a
//! slow 1-to-1 lookup for that stream is still running, and when it finishes it re-adds the
//! presence callback that nothing will ever remove.
//!
//! Run it: `cargo run --example caught_live` (buggy code: the watchdog flags the callbacks
//! diverging from the open streams and growing), or `cargo run --example caught_live -- --fixed`
//! (the callback is registered through the stream's `Scope`, so the late registration is
//! refused and reported the moment it happens). Simulated time runs 100× faster than real time:
//! each 10 ms tick counts as one second, and the simulation steps in lockstep with the
//! watchdog's ticks (one simulated second after each tick, while the watchdog waits), so the
//! output is the same on every run. `-- --record demo.jsonl` also writes the recording, for
//! `leakwatch analyze demo.jsonl` and `leakwatch plot demo.jsonl -o demo.svg`.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::Duration;

use leakwatch::{
    Alert, AlertState, Callbacks, Connections, DivergenceRule, GrowthRule, Scope, Selector,
    Subscription, Watchdog,
};

/// A presence change relayed to watchers.
#[derive(Debug)]
struct Presence {
    _user: u32,
}

/// One open EventSource stream.
#[leakwatch::tracked(name = "stream.State")]
struct Stream {
    scope: Scope,
    _conn: leakwatch::Connection,
    _presence: Option<Subscription>,
    _tracker: leakwatch::Tracker<Self>,
}

/// A 1-to-1 lookup still in flight: it finishes `remaining` simulated seconds from now.
struct PendingLookup {
    remaining: u32,
    scope: Scope,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let fixed = args.iter().any(|a| a == "--fixed");
    let record = args
        .iter()
        .position(|a| a == "--record")
        .and_then(|i| args.get(i + 1).cloned());
    println!(
        "leakwatch demo: presence server with a slow 1-to-1 lookup ({} code)\n",
        if fixed { "fixed" } else { "buggy" }
    );

    let streams = Connections::new("http.streams");
    let presence = Callbacks::<Presence>::new("presence.callbacks");
    // Lockstep both ways: after each sample the watchdog lets the simulation run one
    // simulated second and waits until it is done, so no sample catches a second half-way
    // (which made the output, peaks included, differ between runs on a busy machine).
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut builder = Watchdog::builder().on_sample(move |_| {
        // Both fail once the simulation has ended and dropped its ends: nothing to wait for.
        if go_tx.send(()).is_ok() {
            let _ = done_rx.recv();
        }
    });
    if let Some(path) = &record {
        builder = builder.record(path);
    }
    let watchdog = builder
        .interval(Duration::from_millis(10))
        .tick_seconds(1.0)
        .divergence(
            DivergenceRule::new("live.presence.callbacks", "live.http.streams")
                .sustain(Duration::from_secs(30)),
        )
        // Growth of the demo's own counts only: the default watch also takes this process's
        // resident memory, whose growth depends on the machine and would make the output
        // differ from run to run.
        .growth(GrowthRule::new(
            Selector::new(["live.*"]).expect("valid pattern"),
        ))
        .hook(move |a: &Alert| {
            let state = match a.state {
                AlertState::Firing => "ALERT",
                AlertState::Resolved => "resolved",
            };
            println!("[t={:>5.0}s] {state}: {}", a.at, a);
        })
        .start()
        .expect("valid watchdog rules");

    let mut open: VecDeque<Stream> = VecDeque::new();
    let mut pending: Vec<PendingLookup> = Vec::new();
    // Callbacks re-added by the buggy lookup completion: reachable, never removed.
    let mut leaked: Vec<Subscription> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut rand = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };

    for second in 0..1500u32 {
        // Second 0 runs before the first sample; each later one once the previous is sampled.
        if second > 0 {
            go_rx.recv().expect("the watchdog samples until stopped");
        }
        // About 12 new streams a second, each lives ~40 s: ~480 open at a time.
        for _ in 0..12 {
            let scope = Scope::open("stream.scope");
            let conn = streams.open(|| true);
            let user = rand(10_000) as u32;
            // One in 15 reconnects carries a Last-Event-ID older than history: 409 at once,
            // while its 1-to-1 lookup is still running.
            let stale = rand(15) == 0;
            pending.push(PendingLookup {
                remaining: 1 + rand(3) as u32,
                scope: scope.clone(),
            });
            if stale {
                scope.close();
                drop(conn);
                continue;
            }
            let sub = presence
                .register_in(&scope, move |_p: &Presence| {
                    let _ = user;
                })
                .expect("scope just opened");
            open.push_back(Stream {
                scope,
                _conn: conn,
                _presence: Some(sub),
                _tracker: leakwatch::Tracker::new(),
            });
        }
        while open.len() > 480 {
            let s = open.pop_front().expect("non-empty");
            s.scope.close();
        }
        // Lookups that finish now register the presence callback for their stream.
        pending.retain_mut(|p| {
            p.remaining -= 1;
            if p.remaining > 0 {
                return true;
            }
            if fixed {
                // Correct code: registration goes through the scope and is refused after close.
                if let Err(e) = presence.register_in(&p.scope, |_p: &Presence| {}) {
                    let _ = e; // the watchdog already reported it, with this line's location
                }
                // (a real server would keep the Subscription in the stream; the demo's open
                // streams already hold theirs)
            } else if p.scope.is_closed() {
                // The seed's bug: the 409 already cleaned up, nobody checks, the callback stays.
                leaked.push(presence.register(|_p: &Presence| {}));
            }
            false
        });
        presence.emit(&Presence {
            _user: rand(10_000) as u32,
        });
        if second % 150 == 149 {
            let snap = leakwatch::snapshot();
            println!(
                "  t={:>4}s  open streams {:>4}  presence callbacks {:>4}  late registrations {}",
                second + 1,
                snap.live("http.streams"),
                snap.live("presence.callbacks"),
                snap.get("stream.scope").map_or(0, |s| s.extra("late"))
            );
        }
        if second > 0 {
            done_tx
                .send(())
                .expect("the watchdog waits for this second");
        }
    }
    // Let the watchdog sample the last second, then release it from the lockstep.
    go_rx.recv().expect("the watchdog samples until stopped");
    drop((go_rx, done_tx));
    watchdog.stop();
    let snap = leakwatch::snapshot();
    // Resident memory depends on the machine: left out so every run prints the same.
    let counts: Vec<String> = snap
        .to_string()
        .lines()
        .filter(|l| !l.starts_with("memory."))
        .map(str::to_owned)
        .collect();
    println!("\nfinal counts:\n{}", counts.join("\n"));
    if fixed {
        println!(
            "fixed code: {} late registrations refused, {} presence callbacks for {} streams.",
            snap.get("stream.scope").map_or(0, |s| s.extra("late")),
            snap.live("presence.callbacks"),
            snap.live("http.streams")
        );
    } else {
        println!(
            "buggy code: {} callbacks leaked ({} presence callbacks for {} open streams). \
             Run with --fixed to see scopes refuse them.",
            leaked.len(),
            snap.live("presence.callbacks"),
            snap.live("http.streams")
        );
    }
}
