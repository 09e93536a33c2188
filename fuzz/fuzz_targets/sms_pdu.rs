#![no_main]
//! TS 23.040 PDU decoder: with and without the SMSC field; a decoded PDU also renders as JSON.
use libfuzzer_sys::fuzz_target;
use postern::codec::sms_pdu;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = sms_pdu::decode(data) {
        let _ = s.to_json();
    }
    if let Ok(t) = sms_pdu::decode_tpdu(data) {
        let _ = t.to_json();
    }
});
