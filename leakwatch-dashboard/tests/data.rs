//! The JSON endpoint's documented shape, its selection parameters, and its 4xx answers,
//! against a real watchdog over a workload driven once per tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use leakwatch::{Callbacks, DivergenceRule, EventCounter, Registry, Subscription, Token, Watchdog};
use leakwatch_dashboard::{ConfigError, Dashboard, DataResponse, Group};
use serde_json::Value;

/// A watchdog over: 10 streams; callbacks equal to streams until tick 20, then 15 more
/// (a divergence that fires after 5 s); one `http.status.200` per tick; each tick delivers
/// one event to every callback.
fn running_watchdog() -> Arc<Watchdog> {
    let reg = Registry::new();
    let presence = Callbacks::<u32>::new_in(&reg, "presence.callbacks");
    let ok = EventCounter::new_in(&reg, "http.status.200");
    let mut streams: Vec<Token> = Vec::new();
    let mut subs: Vec<Subscription> = Vec::new();
    let mut tick = 0usize;
    let r2 = reg.clone();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(2))
        .tick_seconds(1.0)
        .divergence(
            DivergenceRule::new("live.presence.callbacks", "live.http.streams")
                .sustain(Duration::from_secs(5)),
        )
        .on_sample(move |_| {
            tick += 1;
            let want = if tick >= 20 { 25 } else { 10 };
            while streams.len() < 10 {
                streams.push(Token::new_in(&r2, "http.streams"));
            }
            while subs.len() < want {
                subs.push(presence.register(|_| {}));
            }
            presence.emit(&1);
            ok.incr();
        })
        .start()
        .unwrap();
    Arc::new(wd)
}

fn wait_until(secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "condition not met in {secs} s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn get(d: &Dashboard, query: &str) -> (u16, Value) {
    let res = d.data(Some(query));
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "no-store");
    (
        res.status().as_u16(),
        serde_json::from_str(res.body()).unwrap(),
    )
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

/// A dashboard whose watchdog has fired its divergence alert.
fn dashboard_with_alert() -> Dashboard {
    let wd = running_watchdog();
    wait_until(30, || !wd.active_alerts().is_empty());
    Dashboard::new(wd)
}

#[test]
fn documented_shape_of_series_and_alerts() {
    let d = dashboard_with_alert();
    let (status, v) = get(&d, "series=live.http.streams,count.http.status.200");
    assert_eq!(status, 200);
    assert_eq!(keys(&v), ["alerts", "matched", "newest", "series"]);
    let newest = v["newest"]
        .as_f64()
        .expect("newest is a number after ticks");
    assert_eq!(v["matched"], 0, "no match= given");

    let series = v["series"].as_array().unwrap();
    let names: Vec<&str> = series.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["live.http.streams", "count.http.status.200"],
        "request order"
    );
    for s in series {
        assert_eq!(keys(s), ["last", "name", "points"]);
        let points = s["points"].as_array().unwrap();
        assert!(points.len() > 5, "{} has history", s["name"]);
        let ts: Vec<f64> = points
            .iter()
            .map(|p| {
                let p = p.as_array().unwrap();
                assert_eq!(p.len(), 2, "[t, value]");
                p[0].as_f64().unwrap()
            })
            .collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "oldest first");
        assert!(*ts.last().unwrap() <= newest);
        assert_eq!(
            s["last"],
            points.last().unwrap()[1],
            "last is the newest value"
        );
    }
    assert_eq!(series[0]["last"], 10.0, "ten streams");
    let counts: Vec<f64> = series[1]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "a counter, raw totals"
    );

    let alerts = v["alerts"].as_array().unwrap();
    let a = alerts
        .iter()
        .find(|a| a["rule"] == "divergence")
        .expect("the divergence alert");
    for key in [
        "rule", "name", "series", "other", "state", "values", "since", "at", "message", "active",
    ] {
        assert!(a.get(key).is_some(), "alert has {key}: {a}");
    }
    assert_eq!(a["series"], "live.presence.callbacks");
    assert_eq!(a["other"], "live.http.streams");
    assert_eq!(a["state"], "firing");
    assert_eq!(a["active"], true);
    assert!(
        a["at"].as_f64().unwrap() <= newest,
        "same clock as the samples"
    );
    assert!(!a["message"].as_str().unwrap().is_empty());

    // The typed response reads the same JSON.
    let typed: DataResponse = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(typed.series.len(), 2);
    assert!(typed.alerts.iter().any(|e| e.active));
}

#[test]
fn since_returns_only_newer_samples() {
    let d = dashboard_with_alert();
    let (_, first) = get(&d, "series=live.http.streams");
    let newest = first["newest"].as_f64().unwrap();
    wait_until(30, || {
        d.watchdog()
            .samples_since(&[], newest)
            .newest
            .is_some_and(|t| t > newest + 2.0)
    });
    let (status, v) = get(&d, &format!("series=live.http.streams&since={newest}"));
    assert_eq!(status, 200);
    let points = v["series"][0]["points"].as_array().unwrap();
    assert!(!points.is_empty(), "ticks after {newest}");
    assert!(points.iter().all(|p| p[0].as_f64().unwrap() > newest));
    assert!(points.len() < first["series"][0]["points"].as_array().unwrap().len());
}

#[test]
fn match_takes_the_largest_up_to_limit() {
    let d = dashboard_with_alert();
    let (status, v) = get(&d, "match=live.*&limit=1&points=false&alerts=false");
    assert_eq!(status, 200);
    let live = d.watchdog().latest_values(|n| n.starts_with("live."));
    assert_eq!(v["matched"], live.len(), "every live.* series counted");
    assert!(live.len() >= 2);
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "limit");
    assert_eq!(
        series[0]["name"], "live.presence.callbacks",
        "25 callbacks > 10 streams"
    );
    assert_eq!(series[0]["last"], 25.0);
    assert_eq!(
        keys(&series[0]),
        ["last", "name"],
        "points=false: names only"
    );
    assert_eq!(v["alerts"], Value::Array(vec![]), "alerts=false");

    // Named series come first and are not repeated by the match.
    let (_, v) = get(
        &d,
        "series=live.http.streams&match=live.*&limit=5&alerts=false",
    );
    let names: Vec<&str> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "live.http.streams");
    assert_eq!(
        names.iter().filter(|n| **n == "live.http.streams").count(),
        1
    );
}

#[test]
fn unknown_series_is_a_404_naming_them() {
    let d = dashboard_with_alert();
    let (status, v) = get(&d, "series=live.http.streams,live.nope,count.nope");
    assert_eq!(status, 404);
    assert_eq!(keys(&v), ["error", "unknown"]);
    assert_eq!(v["unknown"], serde_json::json!(["live.nope", "count.nope"]));
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("live.nope") && msg.contains("count.nope"),
        "{msg}"
    );
    assert!(
        msg.contains("?match=*"),
        "says how to list known series: {msg}"
    );
}

#[test]
fn invalid_parameters_are_a_400_with_the_reason() {
    let d = dashboard_with_alert();
    for (query, says) in [
        ("sereis=live.http.streams", "unknown parameter `sereis`"),
        (
            "series=live.http.streams&since=yesterday",
            "since must be a finite number",
        ),
        (
            "match=live.*&limit=0",
            "limit must be a whole number from 1 to 1000",
        ),
        (
            "series=live.http.streams&points=maybe",
            "points must be true, false",
        ),
        ("match=live.%20x", "invalid match pattern"),
    ] {
        let (status, v) = get(&d, query);
        assert_eq!(status, 400, "{query}");
        assert_eq!(keys(&v), ["error"], "{query}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(says), "{query}: {msg}");
    }
}

#[test]
fn handle_routes_page_and_data_and_refuses_other_methods() {
    let d = dashboard_with_alert();
    let req = |method: &str, uri: &str| {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
    };
    let page = d.handle(&req("GET", "/debug/leakwatch/ui"));
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert!(page.body().contains("<canvas") || page.body().contains("getContext('2d')"));

    let data = d.handle(&req(
        "GET",
        "/debug/leakwatch/ui/data?series=live.http.streams",
    ));
    assert_eq!(data.status(), 200);
    let v: Value = serde_json::from_str(data.body()).unwrap();
    assert_eq!(v["series"][0]["name"], "live.http.streams");
    assert_eq!(
        d.handle(&req("GET", "/debug/leakwatch/ui/data?series=x"))
            .status(),
        404
    );

    let post = d.handle(&req("POST", "/debug/leakwatch/ui/data"));
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}

#[test]
fn configuration_errors_name_the_group() {
    let wd = running_watchdog();
    let err = |groups: Vec<Group>| {
        Dashboard::builder(wd.clone())
            .groups(groups)
            .build()
            .unwrap_err()
    };
    assert_eq!(
        err(vec![Group::values("Empty", [] as [&str; 0])]),
        ConfigError::EmptyGroup("Empty".into())
    );
    assert!(matches!(
        err(vec![Group::values("Bad", ["live. x"])]),
        ConfigError::Pattern { group, .. } if group == "Bad"
    ));
    assert_eq!(
        err(vec![Group::values("Zero", ["live.*"]).limit(0)]),
        ConfigError::Limit {
            group: "Zero".into(),
            limit: 0
        }
    );
    let refresh = Dashboard::builder(wd.clone())
        .refresh(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert_eq!(refresh, ConfigError::Refresh(Duration::from_millis(10)));

    // A valid custom layout reaches the page's configuration.
    let d = Dashboard::builder(wd)
        .title("presence")
        .groups([Group::exact(
            "Callbacks vs streams",
            ["live.presence.callbacks", "live.http.streams"],
        )])
        .build()
        .unwrap();
    let html = d.page().into_body();
    assert!(html.contains("<title>presence</title>"));
    assert!(html.contains(r#""series":["live.presence.callbacks","live.http.streams"]"#));
    assert_eq!(d.groups().len(), 1);
}
