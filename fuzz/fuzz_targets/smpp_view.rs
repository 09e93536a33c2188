#![no_main]
//! SMPP PDUs from peers and operators: the field view and receipt parser (`postern smpp
//! decode`), and the fields the server and client read from rusmpp's decoded submit_sm and
//! deliver_sm (`sm_fields`), with the text decoding that follows.
use libfuzzer_sys::fuzz_target;
use postern::connector::smpp::sm_fields::SmFields;
use postern::connector::smpp::{dlr, pdu_view};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let _ = pdu_view::view(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(r) = dlr::parse(s) {
            let _ = r.to_json();
        }
    }
    let mut buf = bytes::BytesMut::from(data);
    if let Ok(Some(cmd)) = rusmpp::tokio_codec::CommandCodec::new().decode(&mut buf) {
        let f = match cmd.pdu() {
            Some(rusmpp::Pdu::SubmitSm(sm)) => SmFields::of_submit(sm),
            Some(rusmpp::Pdu::DeliverSm(sm)) => SmFields::of_deliver(sm),
            _ => return,
        };
        let (_, payload) = f.split_udh();
        if let Some(t) = pdu_view::short_message_text(f.data_coding, payload) {
            let _ = dlr::parse(&t);
        }
    }
});
