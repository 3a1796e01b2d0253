//! The reference EventSource (SSE) streaming and presence server of leakwatch, instrumented
//! end to end: the seed story's service rebuilt in Rust, with switches that re-create its two
//! leaks, a traffic simulator and the one-command demo.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use streaming_server::{config::ServeArgs, fixture::Fixture, server::{Server, Watching}};
//!
//! let config = ServeArgs::default().config()?;
//! let server = Server::start(config, Fixture::builtin(), leakwatch::Registry::global(), Watching::default()).await?;
//! println!("listening on {}", server.addr);
//! server.shutdown(std::time::Duration::from_secs(4)).await;
//! # Ok(()) }
//! ```
//!
//! Layers, outside in: `accept` (one accept loop; request head parsed with httparse, then the
//! socket goes to the stream path or to hyper/axum in `api`), `stream` (one task per stream
//! and the `Drop` guard that releases everything it holds), `hub` (ids, history, fan-out),
//! `presence` and `conversations` (who is online, who may know, the slow 1-to-1 lookup),
//! `faults` (the two seed bugs on a switch) and `instrument` (the leakwatch series and rules).
#![warn(missing_docs)]

pub mod accept;
pub mod api;
pub mod app;
pub mod config;
pub mod conversations;
pub mod demo;
pub mod faults;
pub mod fixture;
pub mod frame;
pub mod hub;
pub mod instrument;
pub mod lw;
pub mod presence;
pub mod raw;
pub mod request;
pub mod server;
pub mod simulate;
pub mod stream;
