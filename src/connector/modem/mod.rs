//! GSM/LTE modem banks: the AT response parser (pure), the hardware database, the AT engine over
//! a serial line, one task per modem (lifecycle, send, receive, health), the bank connector, and
//! the modem simulator used by `postern modem-sim` and the tests.

pub mod at;
pub mod config;
pub mod bank;
pub mod device;
pub mod engine;
pub mod hwdb;
