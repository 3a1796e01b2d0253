//! The simulator's command-line parameters, their defaults and limits, and the loopback-only
//! target address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::SimError;
use super::profile::Profile;

/// The longest run accepted: the simulator is bounded in time by construction.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most concurrent simulated clients accepted.
pub const MAX_CLIENTS: usize = 50_000;
/// The most concurrent TCP connections accepted for `--max-connections`.
pub const MAX_CONNECTIONS: usize = 60_000;
/// The longest `--settle` accepted.
pub const MAX_SETTLE: Duration = Duration::from_secs(60);

/// How stream lifetimes are drawn around the median `--lifetime`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifetimeDist {
    /// Log-normal with σ = 1: most streams short, a long tail of long ones (browser tabs).
    LogNormal,
    /// Exponential with the same median: memoryless churn.
    Exponential,
}

/// Every parameter of `streaming-server simulate`. Each has a default, so `SimArgs::default()`
/// is a complete, moderate run (200 clients for 90 s).
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// Server to drive, `http://HOST:PORT`. Loopback only (127.0.0.0/8, `[::1]`, localhost).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Fixture JSON the server was started with (its users' tokens). Without it, the server's
    /// built-in fixture.
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<PathBuf>,
    /// Concurrent simulated clients at full load (the profile scales it over time).
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// New client connections per second at most (reconnects are paced by `retry:` instead).
    #[arg(long, value_name = "PER_S", default_value_t = 100.0)]
    pub connect_rate: f64,
    /// Median stream lifetime, e.g. `20s`.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub lifetime: Duration,
    /// Distribution of stream lifetimes around the median.
    #[arg(long, value_enum, default_value_t = LifetimeDist::LogNormal)]
    pub lifetime_dist: LifetimeDist,
    /// Fraction of streams that end by dropping the socket (TCP reset) instead of a clean close.
    #[arg(long, default_value_t = 0.3)]
    pub abort_fraction: f64,
    /// Fraction of ended streams that reconnect with `Last-Event-ID`, as EventSource does.
    #[arg(long, default_value_t = 0.3)]
    pub resume_fraction: f64,
    /// Fraction of ended streams that reconnect with an id too old for the server (409, then
    /// a resync without id).
    #[arg(long, default_value_t = 0.05)]
    pub stale_fraction: f64,
    /// Messages posted per second at full load.
    #[arg(long, value_name = "PER_S", default_value_t = 20.0)]
    pub post_rate: f64,
    /// Presence toggles (`POST /presence` active/idle) per second at full load.
    #[arg(long, value_name = "PER_S", default_value_t = 2.0)]
    pub toggle_rate: f64,
    /// Load over time: steady, ramp, diurnal or spike.
    #[arg(long, value_enum, default_value_t = Profile::Steady)]
    pub profile: Profile,
    /// Length of the traffic phase, e.g. `90s`, `5m` (at most 1h).
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of every random choice (users, filters, lifetimes, aborts, reconnects, posts).
    /// Without it a seed is drawn and shown in the report.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Bound on concurrent TCP connections (streams and requests together).
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// At the end, how long streams stay open after the last post for in-flight deliveries.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub settle: Duration,
    /// A stream silent for this long (no heartbeat, no event) is counted as stalled and resumed.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub stall_timeout: Duration,
    /// Concurrent streams per user at most (the server refuses more than 16 with 429).
    #[arg(long, default_value_t = 8)]
    pub streams_per_user: usize,
}

#[derive(clap::Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    args: SimArgs,
}

impl Default for SimArgs {
    fn default() -> Self {
        // The defaults live once, in the clap attributes above.
        <DefaultsOnly as clap::Parser>::parse_from(["simulate"]).args
    }
}

impl SimArgs {
    /// Checks every bound; the error names the flag and the accepted range.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |flag: &'static str, reason: String| Err(SimError::Args { flag, reason });
        for (flag, v) in [
            ("--abort-fraction", self.abort_fraction),
            ("--resume-fraction", self.resume_fraction),
            ("--stale-fraction", self.stale_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(flag, format!("{v} is not a fraction in 0..=1"));
            }
        }
        if self.resume_fraction + self.stale_fraction > 1.0 {
            return bad(
                "--resume-fraction",
                "together with --stale-fraction it must not exceed 1".into(),
            );
        }
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return bad("--clients", format!("must be 1..={MAX_CLIENTS}"));
        }
        if self.max_connections < 2 || self.max_connections > MAX_CONNECTIONS {
            return bad(
                "--max-connections",
                format!("must be 2..={MAX_CONNECTIONS}"),
            );
        }
        if self.streams_per_user == 0 {
            return bad("--streams-per-user", "must be at least 1".into());
        }
        if !(self.connect_rate.is_finite() && self.connect_rate > 0.0) {
            return bad("--connect-rate", "must be a positive number".into());
        }
        for (flag, v) in [
            ("--post-rate", self.post_rate),
            ("--toggle-rate", self.toggle_rate),
        ] {
            if !(v.is_finite() && (0.0..=100_000.0).contains(&v)) {
                return bad(flag, "must be 0..=100000 per second".into());
            }
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return bad("--duration", "must be more than 0 and at most 1h".into());
        }
        if self.settle > MAX_SETTLE {
            return bad("--settle", "must be at most 60s".into());
        }
        if self.lifetime < Duration::from_millis(10) || self.lifetime > MAX_DURATION {
            return bad("--lifetime", "must be 10ms..=1h".into());
        }
        if self.stall_timeout < Duration::from_secs(1) {
            return bad("--stall-timeout", "must be at least 1s".into());
        }
        parse_target(&self.target).map(|_| ())
    }

    /// The `--target` address, refused unless it is on loopback.
    pub fn target_addr(&self) -> Result<SocketAddr, SimError> {
        parse_target(&self.target)
    }
}

/// Parses `90s`, `5m`, `1h 30m`, `250ms` (humantime), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 90s, 5m, 250ms)"))
}

/// Parses `http://HOST:PORT[/]` and refuses any host that is not loopback: the simulator
/// generates load and must never aim it at another machine.
pub fn parse_target(s: &str) -> Result<SocketAddr, SimError> {
    let bad = |reason: &str| SimError::Target {
        target: s.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(bad(
            "give only http://HOST:PORT, without path or credentials",
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?;
            (h, port)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| bad("the host must be an IP address or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(bad(
            "only loopback targets (127.0.0.0/8, [::1], localhost) are allowed",
        ));
    }
    if port == 0 {
        return Err(bad("port 0 is not a server"));
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_moderate() {
        let a = SimArgs::default();
        a.validate().unwrap();
        assert_eq!(a.duration, Duration::from_secs(90));
        assert_eq!(a.lifetime, Duration::from_secs(20));
        assert_eq!(a.profile, Profile::Steady);
        assert_eq!(
            a.target_addr().unwrap(),
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn durations_accept_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("42").unwrap(), Duration::from_secs(42));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn only_loopback_targets_pass() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://localhost:9000",
            "http://127.8.9.10:1",
            "http://[::1]:8080",
        ] {
            assert!(parse_target(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_target("http://localhost").unwrap(),
            "127.0.0.1:80".parse::<SocketAddr>().unwrap()
        );
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2:80",
            "http://example.com:80",
            "https://127.0.0.1:8443",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/flows",
            "http://user@127.0.0.1:8080",
            "http://[::2]:8080",
            "http://127.0.0.1:0",
            "http://127.0.0.1:port",
        ] {
            assert!(
                matches!(parse_target(bad), Err(SimError::Target { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn out_of_range_parameters_name_their_flag() {
        let flag_of = |a: SimArgs| match a.validate() {
            Err(SimError::Args { flag, .. }) => flag,
            other => panic!("expected an Args error, got {other:?}"),
        };
        let d = SimArgs::default;
        assert_eq!(
            flag_of(SimArgs {
                abort_fraction: 1.5,
                ..d()
            }),
            "--abort-fraction"
        );
        assert_eq!(
            flag_of(SimArgs {
                resume_fraction: 0.8,
                stale_fraction: 0.3,
                ..d()
            }),
            "--resume-fraction"
        );
        assert_eq!(
            flag_of(SimArgs {
                duration: Duration::from_secs(3601),
                ..d()
            }),
            "--duration"
        );
        assert_eq!(flag_of(SimArgs { clients: 0, ..d() }), "--clients");
        assert_eq!(
            flag_of(SimArgs {
                post_rate: f64::NAN,
                ..d()
            }),
            "--post-rate"
        );
    }
}
