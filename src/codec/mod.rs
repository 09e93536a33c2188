//! Pure, I/O-free codecs: GSM 03.38, UCS-2/Latin-1 and SMS segmenting. Used by the API (to
//! measure messages), and by the SMPP and modem connectors.

pub mod gsm7;
pub mod segment;
pub mod ucs2;

pub use segment::{measure, Coding, Measure};
