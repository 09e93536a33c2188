#![no_main]
//! GSM 7-bit unpacker: any count and fill; what unpacks re-packs to the same septets.
use libfuzzer_sys::fuzz_target;
use postern::codec::gsm7;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let count = data[0] as usize * 2;
    let fill = data[1] % 8;
    let packed = &data[2..];
    let mut out = [0u8; 512];
    if let Ok(n) = gsm7::unpack_into(packed, count, fill, &mut out) {
        let septets = &out[..n];
        let mut s = String::new();
        gsm7::decode_septets(septets, &mut s);
        let repacked = gsm7::pack(septets, fill);
        let back = gsm7::unpack(&repacked, n, fill).expect("re-packed septets unpack");
        assert_eq!(back, septets);
    }
});
