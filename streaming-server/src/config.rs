//! `serve`'s settings: the command-line flags and the validated [`Config`] built from them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::Fault;

/// Parses durations such as `500ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 5s, 2m)"))
}

/// Flags of `streaming-server serve` (also used by `demo`).
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Fixture JSON (users, flows, 1-to-1s); without it a small built-in fixture is used and
    /// its tokens printed.
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<PathBuf>,
    /// Events kept per flow for Last-Event-ID resumes.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub history: usize,
    /// Interval of heartbeat comments; a peer that takes two of them to accept a write is
    /// closed as dead.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Frames a stream may have queued before it is closed as a slow consumer.
    #[arg(long, default_value_t = 1024, value_name = "FRAMES")]
    pub queue: usize,
    /// Open streams per user (more: 429).
    #[arg(long, default_value_t = 16)]
    pub max_streams_per_user: u32,
    /// Mean latency of the modelled conversations service (1-to-1 lookup at connect).
    #[arg(long, default_value_t = 150)]
    pub one_to_one_latency_ms: u64,
    /// Fraction of 1-to-1 lookups that fail.
    #[arg(long, default_value_t = 0.0)]
    pub one_to_one_fail_rate: f64,
    /// How often the reaper checks that open streams still have their socket.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub reap_interval: Duration,
    /// Turns the reaper off (streams whose close never arrives then leak).
    #[arg(long)]
    pub no_reaper: bool,
    /// Re-create a seed bug: `close-race[=RATE]` or `late-callback` (repeatable).
    #[arg(long, value_name = "FAULT")]
    pub inject: Vec<Fault>,
    /// POST each alert (firing and resolved) as JSON to this http:// URL.
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Option<String>,
    /// Send every series to StatsD at HOST:PORT (UDP).
    #[arg(long, value_name = "HOST:PORT")]
    pub statsd: Option<String>,
    /// Write the watchdog's recording (JSON Lines) here.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Let non-loopback clients use /debug/* when they present this token.
    #[arg(long, value_name = "TOKEN")]
    pub debug_token: Option<String>,
    /// The watchdog's sampling interval.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub sample_interval: Duration,
    /// Seed of the modelled service's latencies and the fault switches.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Validated settings of one server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub addr: SocketAddr,
    /// Events per flow kept.
    pub history: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Queue bound per stream, in frames.
    pub queue_frames: usize,
    /// Streams per user.
    pub max_streams_per_user: u32,
    /// 1-to-1 lookup latency.
    pub one_to_one_latency: Duration,
    /// 1-to-1 lookup failure rate.
    pub one_to_one_fail_rate: f64,
    /// Reaper interval, `None` without a reaper.
    pub reap_interval: Option<Duration>,
    /// Faults on.
    pub inject: Vec<Fault>,
    /// Debug token.
    pub debug_token: Option<String>,
    /// Largest request head.
    pub max_head_bytes: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// How long a client may take to send its request head.
    pub head_timeout: Duration,
    /// Seed.
    pub seed: u64,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value out of range.
    #[error("--{flag}: {problem}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

impl ServeArgs {
    /// Checks the flags and builds the config.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let bad = |flag, problem| Err(ConfigError::Invalid { flag, problem });
        if self.history == 0 {
            return bad("history", "must be at least 1");
        }
        if self.heartbeat < Duration::from_millis(10) || self.heartbeat > Duration::from_secs(3600)
        {
            return bad("heartbeat", "must be between 10ms and 1h");
        }
        if self.queue == 0 {
            return bad("queue", "must be at least 1");
        }
        if self.max_streams_per_user == 0 {
            return bad("max-streams-per-user", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.one_to_one_fail_rate) {
            return bad("one-to-one-fail-rate", "must be in 0..=1");
        }
        if self.reap_interval < Duration::from_millis(10) {
            return bad("reap-interval", "must be at least 10ms");
        }
        if self.sample_interval < Duration::from_millis(10) {
            return bad("sample-interval", "must be at least 10ms");
        }
        Ok(Config {
            addr: self.addr,
            history: self.history,
            heartbeat: self.heartbeat,
            queue_frames: self.queue,
            max_streams_per_user: self.max_streams_per_user,
            one_to_one_latency: Duration::from_millis(self.one_to_one_latency_ms),
            one_to_one_fail_rate: self.one_to_one_fail_rate,
            reap_interval: (!self.no_reaper).then_some(self.reap_interval),
            inject: self.inject.clone(),
            debug_token: self.debug_token.clone(),
            max_head_bytes: 8 * 1024,
            max_body_bytes: 64 * 1024,
            head_timeout: Duration::from_secs(10),
            seed: self.seed,
        })
    }
}

impl Default for ServeArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        Wrapper::parse_from(["serve"]).args
    }
}
