//! Pure, I/O-free codecs: GSM 03.38 (with national language shifts), UCS-2/Latin-1, SMS
//! segmenting, TS 23.040 PDUs and UDH. Used by the API (to measure messages), and by the SMPP
//! and modem connectors.

pub mod form_data;
pub mod gsm7;
pub mod national;
pub mod reassembly;
pub mod segment;
pub mod sms_pdu;
pub mod ucs2;
pub mod udh;
pub mod wbxml;
pub mod wbxml_tables;
pub mod xform;

pub use segment::{measure, Coding, Measure};
