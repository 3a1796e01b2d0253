//! Starting and stopping one server: listener, accept loop, reaper and watchdog.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leakwatch::Watchdog;
#[cfg(feature = "instrument")]
use leakwatch::runtime::TokioGauges;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use crate::fixture::{Directory, Fixture};
use crate::instrument::{self, Metrics};
use crate::lw::{Reaper, Registry};

/// A function every alert is handed to.
pub type AlertFn = Arc<dyn Fn(&leakwatch::Alert) + Send + Sync>;

/// How the server watches itself.
#[derive(Clone, Default)]
pub struct Watching {
    /// Sampling interval of the watchdog (`None`: no watchdog).
    pub interval: Option<Duration>,
    /// `--alert-webhook`.
    pub webhook: Option<String>,
    /// `--statsd`.
    pub statsd: Option<String>,
    /// `--record`.
    pub record: Option<PathBuf>,
    /// Log alerts through `tracing`.
    pub log_alerts: bool,
    /// Also hand every alert to this function (on the watchdog's hook thread).
    pub on_alert: Option<AlertFn>,
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The watchdog refused its settings.
    #[error("cannot start the watchdog: {0}")]
    Watchdog(#[from] leakwatch::watchdog::WatchdogError),
    /// The StatsD exporter refused its settings.
    #[error("cannot export to StatsD: {0}")]
    Statsd(#[from] leakwatch::statsd::StatsdError),
}

/// A running server.
pub struct Server {
    /// The shared state (for tests and the demo).
    pub app: Arc<App>,
    /// The bound address.
    pub addr: std::net::SocketAddr,
    watchdog: Option<Arc<Watchdog>>,
    reaper: Option<Reaper>,
    statsd: Option<leakwatch::statsd::StatsdExporter>,
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
    #[cfg(feature = "instrument")]
    _tokio: TokioGauges,
    _server_sockets: leakwatch::Gauge,
}

/// What a shutdown did.
#[derive(Clone, Copy, Debug)]
pub struct Stopped {
    /// Streams still open when the deadline passed (0 on a clean stop).
    pub streams_left: usize,
    /// How long it took.
    pub took: Duration,
}

impl Server {
    /// Starts a server on the current tokio runtime, counting in `registry`.
    pub async fn start(
        config: Config,
        fixture: Fixture,
        registry: &Registry,
        watching: Watching,
    ) -> Result<Server, StartError> {
        let metrics = Arc::new(Metrics::new(registry));
        #[cfg(feature = "instrument")]
        let tokio_gauges =
            leakwatch::runtime::watch_tokio(registry, &tokio::runtime::Handle::current(), "tokio");
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        // The kernel's own count of this server's sockets: the witness for "streams the app
        // thinks are open" (a client or exporter in the same process does not blur it).
        let port = addr.port();
        let server_sockets = registry.gauge(
            "server.sockets",
            leakwatch::gauge_at_most_every(instrument::SOCKET_READ_EVERY, move || {
                leakwatch::process::tcp_sockets_on_port(port)
            }),
        );
        let reap_interval = config.reap_interval;
        let (tx, rx) = watch::channel(false);
        let dir = Arc::new(Directory::new(fixture));
        let app = Arc::new(App::new(config, dir, metrics.clone(), rx));
        let reaper = reap_interval.map(|i| metrics.streams.start_reaper(i));
        // The uninstrumented build (no `instrument` feature) runs no watchdog, so no dashboard,
        // StatsD, recording or alerts either.
        #[cfg(not(feature = "instrument"))]
        let (statsd, watchdog): (_, Option<Arc<Watchdog>>) = {
            if watching.interval.is_some() {
                tracing::warn!("built without the `instrument` feature: no watchdog runs");
            }
            (None, None)
        };
        #[cfg(feature = "instrument")]
        let mut statsd = None;
        #[cfg(feature = "instrument")]
        let watchdog = match watching.interval {
            None => None,
            Some(interval) => {
                let mut b = Watchdog::builder().registry(registry).interval(interval);
                b = instrument::configure(b);
                if watching.log_alerts {
                    b = b.log_alerts();
                }
                if let Some(url) = &watching.webhook {
                    b = b.webhook(url.clone());
                }
                if let Some(path) = &watching.record {
                    b = b.record(path.clone());
                }
                if let Some(target) = &watching.statsd {
                    let exporter = leakwatch::statsd::StatsdExporter::builder(target)
                        .prefix("streaming-server")
                        .registry(registry)
                        .build()?;
                    b = b.on_sample(exporter.sampler()).hook(exporter.clone());
                    statsd = Some(exporter);
                }
                if let Some(hook) = watching.on_alert.clone() {
                    b = b.hook(move |a: &leakwatch::Alert| hook(a));
                }
                Some(Arc::new(b.start()?))
            }
        };
        if let Some(w) = &watchdog {
            *app.dashboard.lock() = Some(instrument::dashboard(w.clone()));
        }
        let router = crate::api::router(app.clone());
        let accept = tokio::spawn(crate::accept::accept_loop(app.clone(), listener, router));
        Ok(Server {
            app,
            addr,
            watchdog,
            reaper,
            statsd,
            shutdown: tx,
            accept,
            #[cfg(feature = "instrument")]
            _tokio: tokio_gauges,
            _server_sockets: server_sockets,
        })
    }

    /// The watchdog, if one runs.
    pub fn watchdog(&self) -> Option<&Watchdog> {
        self.watchdog.as_deref()
    }

    /// Closes every stream, waits up to `deadline` for them to drain, stops the reaper and the
    /// watchdog (which flushes its recording) and StatsD.
    pub async fn shutdown(self, deadline: Duration) -> Stopped {
        let start = Instant::now();
        let _ = self.shutdown.send(true);
        let _ = self.accept.await;
        let streams = &self.app.metrics.streams;
        while streams.open_count() > self.app.lost_streams() && start.elapsed() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Streams whose close was lost (close-race fault) are released now, as a process
        // exit would.
        let lost: Vec<_> = self.app.lost.lock().drain().map(|(_, g)| g).collect();
        drop(lost);
        let streams_left = streams.open_count();
        drop(self.reaper);
        drop(self.app.dashboard.lock().take());
        if let Some(mut w) = self.watchdog {
            // A dashboard request in flight may hold the watchdog a moment longer.
            let stop_by = Instant::now() + Duration::from_secs(1);
            let w = loop {
                match Arc::try_unwrap(w) {
                    Ok(w) => break Some(w),
                    Err(shared) if Instant::now() < stop_by => {
                        w = shared;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => break None,
                }
            };
            if let Some(w) = w {
                let _ = tokio::task::spawn_blocking(move || w.stop()).await;
            }
        }
        if let Some(s) = self.statsd {
            let _ = tokio::task::spawn_blocking(move || s.flush(Duration::from_secs(1))).await;
        }
        Stopped {
            streams_left,
            took: start.elapsed(),
        }
    }
}
