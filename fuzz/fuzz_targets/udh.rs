#![no_main]
//! UDH parser: a parsed UDH re-encodes to exactly the octets it was read from.
use libfuzzer_sys::fuzz_target;
use postern::codec::udh::Udh;

fuzz_target!(|data: &[u8]| {
    if let Ok((u, n)) = Udh::parse(data) {
        assert_eq!(u.encode(), &data[..n]);
        let _ = (u.concat(), u.ports(), u.shifts());
    }
});
