//! The messaging core: accepts validated messages into the outbox (acknowledging after the
//! group commit), runs a dispatcher and a state actor per shard, matches receipts to messages,
//! stores inbound messages, and owns the callback worker. The message model, addresses,
//! request validation and routing build without the outbox (feature `server` off).

pub mod router;

#[cfg(feature = "server")]
mod apply;
#[cfg(feature = "server")]
pub mod callbacks;
#[cfg(feature = "server")]
mod core;
#[cfg(feature = "server")]
mod dedup;
#[cfg(feature = "server")]
pub mod dispatch;
#[cfg(feature = "server")]
pub mod early;
#[cfg(feature = "server")]
mod forward;
#[cfg(feature = "server")]
mod intake;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
mod turn;

#[cfg(feature = "server")]
pub use self::core::*;
