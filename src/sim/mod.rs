//! Simulators of the peers Postern talks to, for tests, benchmarks and trying things out:
//! an SMSC (`postern smsc-sim`) and a GSM modem on a pseudo-terminal (`postern modem-sim`).
//! They share no code with the connectors they exercise beyond the wire codecs.

pub mod modem;
pub mod smsc;
