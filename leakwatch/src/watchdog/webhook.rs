//! The HTTP webhook hook: POSTs each alert as a JSON object to a URL.

use std::time::Duration;

use crate::event::EventCounter;
use crate::registry::Registry;
use crate::watchdog::alert::Alert;
use crate::watchdog::hooks::AlertHook;

/// POSTs every alert as JSON (`{"rule": .., "series": .., "state": "firing"|"resolved", ...}`)
/// to a URL, with a per-attempt timeout and a bounded number of retries with backoff.
///
/// It runs on its own hook thread, so a slow or unreachable receiver never blocks sampling.
/// Failed deliveries (after all retries) are counted as `count.leakwatch.webhook.failed`.
#[derive(Debug)]
pub struct WebhookHook {
    url: String,
    agent: ureq::Agent,
    retries: u32,
    backoff: Duration,
    failed: Option<EventCounter>,
}

impl WebhookHook {
    /// A webhook to `url` (plain `http://`), 2 s timeout, 2 retries.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookHook {
            url: url.into(),
            agent: agent(Duration::from_secs(2)),
            retries: 2,
            backoff: Duration::from_millis(200),
            failed: None,
        }
    }

    /// Timeout of each attempt (connect + send + response).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(timeout);
        self
    }

    /// Retries after a failed attempt (so `retries + 1` attempts at most).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Wait before the first retry; doubled for each further one.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The URL alerts are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Why this webhook could never deliver, if so: the URL does not parse as an absolute
    /// `http://host[:port]/path` URL, or it asks for TLS (`https://`), which is not built in.
    /// [`WatchdogBuilder::start`](crate::WatchdogBuilder::start) refuses such a webhook
    /// rather than fail on every alert.
    pub fn check_url(&self) -> Result<(), String> {
        let uri: ureq::http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("not a URL ({e}); write http://host:port/path"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(
                    "https:// needs TLS, which leakwatch's webhook does not build in \
                            (it speaks plain http://, for a collector on loopback or a private \
                            network); post to an http:// URL, or forward alerts with your own \
                            hook"
                        .into(),
                );
            }
            Some(other) => {
                return Err(format!(
                    "scheme {other}:// is not supported; write http://host:port/path"
                ));
            }
            None => return Err("not an absolute URL; write http://host:port/path".into()),
        }
        match uri.host() {
            Some(h) if !h.is_empty() => Ok(()),
            _ => Err("no host; write http://host:port/path".into()),
        }
    }

    pub(crate) fn count_failures_in(&mut self, registry: &Registry) {
        self.failed = Some(EventCounter::new_in(registry, "leakwatch.webhook.failed"));
    }

    fn post(&self, body: &str) -> Result<(), ureq::Error> {
        self.agent
            .post(&self.url)
            .header("content-type", "application/json")
            .send(body)
            .map(|_| ())
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into()
}

impl AlertHook for WebhookHook {
    fn on_alert(&mut self, alert: &Alert) {
        let Ok(body) = serde_json::to_string(alert) else {
            return;
        };
        let mut wait = self.backoff;
        for attempt in 0..=self.retries {
            if self.post(&body).is_ok() {
                return;
            }
            if attempt < self.retries {
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
        if let Some(c) = &self.failed {
            c.incr();
        }
    }

    fn name(&self) -> &str {
        "webhook"
    }
}
