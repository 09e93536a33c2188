#![no_main]
//! `multipart/form-data` bodies of `POST /v1/messages`: parsing never panics, and what it
//! returns keeps its promises (a message part, non-empty files, at most MAX_FILES of them).
use libfuzzer_sys::fuzz_target;
use postern::codec::form_data::{parse, MAX_FILES};

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(form) = futures::executor::block_on(parse(body, "multipart/form-data; boundary=XyZ")) {
        assert!(form.files.len() <= MAX_FILES);
        assert!(form.files.iter().all(|f| !f.bytes.is_empty() && f.filename.is_some()));
    }
    // The message templates renderer with fuzzed sources and params.
    if let Ok(src) = std::str::from_utf8(data) {
        let mut spec = postern::model::template::TemplateSpec { name: "f".into(), text: Some(src.into()), ..Default::default() };
        let _ = spec.check("en");
    }
});
