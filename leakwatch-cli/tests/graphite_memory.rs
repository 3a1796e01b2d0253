//! Reading graphite-web keeps memory near the answer's size: the columns graphite-web sends
//! are merged into rows as they are read, never held as a map per instant (which took about
//! 1 GB for 2 M points). Measured with leakwatch's counting allocator.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use leakwatch::recording::Record;
use leakwatch_cli::source::{InputArgs, Source};

#[global_allocator]
static ALLOC: leakwatch::alloc::CountingAlloc = leakwatch::alloc::CountingAlloc::system();

fn live_heap() -> u64 {
    leakwatch::alloc::heap()
        .expect("the counting allocator")
        .live_bytes
}

#[test]
fn graphite_history_is_read_in_memory_near_its_size() {
    // 4 series × 50,000 ten-second points (≈ 6 days), a hole now and then.
    const POINTS: u32 = 50_000;
    let mut body = String::from("[");
    for host in 0..4 {
        if host > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"target":"stats.gauges.app.web{host}.leakwatch.live.presence.callbacks","datapoints":["#
        ));
        for i in 0..POINTS {
            if i > 0 {
                body.push(',');
            }
            let t = 1_764_000_000 + 10 * u64::from(i);
            if i % 97 == 5 {
                body.push_str(&format!("[null,{t}]"));
            } else {
                body.push_str(&format!("[{}.0,{t}]", 400 + i % 13));
            }
        }
        body.push_str("]}");
    }
    body.push(']');
    let size = body.len() as u64;
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n{body}"
    );
    drop(body);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        conn.write_all(answer.as_bytes()).unwrap();
        // Handed back, not freed: its bytes were counted before reading began.
        answer
    });

    let before = live_heap();
    let args = InputArgs {
        recordings: Vec::new(),
        graphite: Some(format!("http://127.0.0.1:{port}")),
        targets: vec!["stats.gauges.app.*.leakwatch.live.*".into()],
        from: "-7d".into(),
        until: None,
    };
    let mut source = Source::open(&args, true).unwrap();
    let answer = server.join().unwrap();
    let held = live_heap().saturating_sub(before);
    let mut rows = 0u32;
    let mut most = held;
    let mut last_t = 0.0;
    for r in &mut source {
        let Record::Tick { t, values } = r.unwrap() else {
            panic!("graphite has no alerts")
        };
        assert!(t > last_t, "rows in time order");
        assert!(!values.is_empty());
        last_t = t;
        rows += 1;
        most = most.max(live_heap().saturating_sub(before));
    }
    // One row per instant; instants where every series is null are no sample.
    let expected = (0..POINTS).filter(|i| i % 97 != 5).count() as u32;
    assert_eq!(rows, expected, "one row per instant");
    // 200,000 points are 4.8 MB as (time, value) pairs; the JSON is about 3.8 MB. A map of
    // names per instant held about 33 MB more.
    println!("answer {size} bytes; held {held} after opening, at most {most} while merging");
    drop(answer);
    assert!(
        most < 3 * size,
        "held {held} bytes after reading, at most {most} while merging, for a {size}-byte answer"
    );
}
