#![no_main]
//! SMPP PDU field view and receipt parser (bytes pasted by operators, or received from peers).
use libfuzzer_sys::fuzz_target;
use postern::connector::smpp::{dlr, pdu_view};

fuzz_target!(|data: &[u8]| {
    let _ = pdu_view::view(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(r) = dlr::parse(s) {
            let _ = r.to_json();
        }
    }
});
