//! SMPP: delivery-receipt parsing and the PDU field view (pure); the carrier client, the server
//! for downstream ESMEs and the SMSC simulator build on rusmpp 0.4.

pub mod dlr;
pub mod pdu_view;
pub mod client;
pub mod server;
pub mod sim;
pub mod tls;
