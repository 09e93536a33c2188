#![no_main]
//! WBXML decoder; whatever decodes must also render as XML that our XML parser reads back.
use libfuzzer_sys::fuzz_target;
use postern::codec::{wbxml, xform};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = wbxml::decode(data) {
        let xml = d.to_xml();
        let _ = xform::from_element(&d.root);
        let _ = xform::parse_xml(&xml);
    }
    let _ = wbxml::find_in_sms(data, Some(2948));
});
