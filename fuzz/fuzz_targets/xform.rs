#![no_main]
//! XForms submissions given as XML or WBXML.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = postern::codec::xform::decode(data) {
        let _ = f.to_json();
    }
});
