#![no_main]
//! hwdb entries and modem-sim transcripts are files an operator supplies (`hwdb_dir`,
//! `--transcript`): any text must give entries or precise errors, never a panic.
use libfuzzer_sys::fuzz_target;
use postern::connector::modem::hwdb;
use postern::sim::modem::parse_transcript;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = hwdb::parse("fuzz", text) {
        // A valid entry matches itself by its own identification strings.
        let db = hwdb::Hwdb { entries: vec![p.clone()] };
        let _ = db.find(None, p.identify.cgmi.first().map(String::as_str), p.identify.cgmm.first().map(String::as_str));
    }
    let _ = parse_transcript(text);
});
