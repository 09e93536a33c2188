//! GSM/LTE modem banks. So far: the AT response parser (pure); the serial driver, bank
//! supervision and the hardware database come next (issue 5).

pub mod at;
