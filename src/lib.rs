//! Postern: a high-throughput SMS and message gateway. One core (validate, route, durable
//! sharded outbox, dispatch) with connectors; see DESIGN.md for the architecture.

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod app;
pub mod check;
pub mod codec;
pub mod config;
pub mod connector;
pub mod hub;
pub mod metrics;
pub mod model;
#[cfg(feature = "server")]
pub mod outbox;
pub mod sdnotify;
pub mod secret;
pub mod sim;
#[cfg(feature = "server")]
pub mod templates;
#[cfg(feature = "server")]
pub mod webhooks;
pub mod time;
