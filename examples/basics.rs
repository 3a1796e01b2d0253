//! The counting API in one page: a tracked type, a named callback, a callback registry bound to
//! a connection's scope, and the snapshot that shows them.
//!
//! `cargo run --example basics`

use leakwatch::{Callbacks, Scope, Token};

/// One user watching another's presence.
#[leakwatch::tracked(name = "presence.Watch")]
#[derive(Clone, Debug)]
struct Watch {
    watcher: u32,
    target: u32,
    tracker: leakwatch::Tracker<Self>,
}

fn main() {
    let base = leakwatch::snapshot();

    // Tracked types: every instance (and every clone) is counted.
    let w = Watch {
        watcher: 1,
        target: 2,
        tracker: leakwatch::Tracker::new(),
    };
    let w2 = w.clone();
    println!(
        "user {} watches {}: {:?}",
        w.watcher,
        w.target,
        leakwatch::counts::<Watch>()
    );

    // A named closure is counted under its name while it lives.
    let greet = leakwatch::named("greeter", |name: &str| format!("hello {name}"));
    println!("{}", greet("ann"));

    // A callback registry; registrations bound to a scope are refused after it closes.
    let presence = Callbacks::<u32>::new("presence.callbacks");
    let stream = Scope::open("stream");
    let sub = presence
        .register_in(&stream, |user| println!("user {user} changed state"))
        .expect("scope is open");
    presence.emit(&2);

    println!("\nwhile the stream is open:\n{}", leakwatch::snapshot());

    stream.close();
    drop(sub);
    match presence.register_in(&stream, |_| {}) {
        Ok(_) => unreachable!("registration after close is refused"),
        Err(e) => println!("refused: {e}\n"),
    }

    // A token left alive on purpose: the baseline check names it, with its creation site.
    let forgotten = Token::new("upload.buffer");
    drop((w, w2, greet));
    match leakwatch::testing::check_returns_to(&base) {
        Ok(()) => println!("everything returned to baseline"),
        Err(leaks) => println!("{leaks}"),
    }
    drop(forgotten);
    leakwatch::assert_returns_to(&base);
    println!("after dropping the token: every count is back at its baseline");
}
