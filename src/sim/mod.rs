//! Simulators of the peers Postern talks to, for tests, benchmarks and trying things out:
//! an SMSC (`postern smsc-sim`), a GSM modem on a pseudo-terminal (`postern modem-sim`), and an
//! HTTP receiver of callbacks.
//! They share no code with the connectors they exercise beyond the wire codecs.

#[cfg(feature = "server")]
pub mod http;
pub mod modem;
pub mod smsc;
