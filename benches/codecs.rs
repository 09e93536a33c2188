//! Codec throughput (criterion): GSM 7-bit pack + unpack of septets, SMS-DELIVER decode, WBXML
//! decode of a small XForms submission. `cargo bench --bench codecs`; figures in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use postern::codec::{gsm7, sms_pdu, wbxml};
use std::hint::black_box;

fn gsm7_bench(c: &mut Criterion) {
    // 64 KiB of septets: mixed text, packed with no fill and with a UDH's fill bits.
    let text = "Postern delivers every message: €uro {prices} [today] ~ 100% @home. ".repeat(1000);
    let septets = gsm7::to_septets(&text).unwrap();
    let septets = &septets[..65_536];
    let mut packed = vec![0u8; gsm7::packed_len(septets.len(), 6)];
    let mut unpacked = vec![0u8; septets.len()];
    let mut g = c.benchmark_group("gsm7");
    g.throughput(Throughput::Bytes(septets.len() as u64));
    g.bench_function("pack+unpack 64KiB septets, fill 0", |b| {
        b.iter(|| {
            let n = gsm7::pack_into(black_box(septets), 0, &mut packed);
            gsm7::unpack_into(black_box(&packed[..n]), septets.len(), 0, &mut unpacked).unwrap();
        })
    });
    g.bench_function("pack+unpack 64KiB septets, fill 6", |b| {
        b.iter(|| {
            let n = gsm7::pack_into(black_box(septets), 6, &mut packed);
            gsm7::unpack_into(black_box(&packed[..n]), septets.len(), 6, &mut unpacked).unwrap();
        })
    });
    g.finish();
}

fn pdu_bench(c: &mut Criterion) {
    // A 160-character SMS-DELIVER as a modem prints it (SMSC prefix included).
    let text: String = "The quick brown fox jumps over the lazy dog 0123456789 "
        .repeat(3)
        .chars()
        .take(160)
        .collect();
    let septets = gsm7::to_septets(&text).unwrap();
    // SMSC, first octet, OA, PID, DCS, SCTS; then UDL = 160 septets and the packed text.
    let mut pdu = hex::decode("07911326040000F0040B911346610089F6000042506070809000").unwrap();
    pdu.push(160);
    pdu.extend(gsm7::pack(&septets, 0));
    assert_eq!(
        sms_pdu::decode(&pdu).unwrap().to_json()["text"],
        text.as_str()
    );
    let mut g = c.benchmark_group("sms_pdu");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode 160-char SMS-DELIVER", |b| {
        b.iter(|| sms_pdu::decode(black_box(&pdu)).unwrap())
    });
    g.finish();
}

fn wbxml_bench(c: &mut Criterion) {
    // A literal-tag XForms instance of about 140 octets.
    let mut doc = vec![0x03, 0x01, 0x6a];
    let strings = [
        "data",
        "id",
        "household",
        "name",
        "age",
        "village",
        "meta",
        "instanceID",
    ];
    let mut tbl = Vec::new();
    let mut idx = Vec::new();
    for s in strings {
        idx.push(tbl.len() as u8);
        tbl.extend_from_slice(s.as_bytes());
        tbl.push(0);
    }
    doc.push(tbl.len() as u8);
    doc.extend(&tbl);
    doc.extend([0xC4, idx[0], 0x04, idx[1], 0x83, idx[2], 0x01]); // <data id="household">
    for (tag, val) in [(3, "Amina Yusuf"), (4, "34"), (5, "Kijiji cha Juu")] {
        doc.extend([0x44, idx[tag], 0x03]);
        doc.extend(val.as_bytes());
        doc.extend([0x00, 0x01]);
    }
    doc.extend([0x44, idx[6], 0x44, idx[7], 0x03]);
    doc.extend(b"uuid:6f1c2a8e-0b7d-4c5e-9a3f");
    doc.extend([0x00, 0x01, 0x01, 0x01]);
    assert!(doc.len() >= 140, "{} octets", doc.len());
    let d = wbxml::decode(&doc).unwrap();
    assert_eq!(d.root.name, "data");
    let mut g = c.benchmark_group("wbxml");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("decode {}-octet XForms instance", doc.len()), |b| {
        b.iter(|| wbxml::decode(black_box(&doc)).unwrap())
    });
    g.finish();
}

/// The AT response parser over a modem session's worth of bytes: a signal query with a URC in
/// the middle, a send (prompt and result), and an `AT+CMGL=4` listing of 10 PDUs.
fn at_parser_bench(c: &mut Criterion) {
    use postern::connector::modem::at::AtParser;
    let pdu = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07";
    let mut listing = String::new();
    for i in 0..10 {
        listing.push_str(&format!("\r\n+CMGL: {i},1,,39\r\n{pdu}\r\n"));
    }
    listing.push_str("\r\nOK\r\n");
    let csq = b"\r\n^RSSI: 17\r\n\r\n+CSQ: 17,99\r\n\r\nOK\r\n\r\n+CMTI: \"SM\",3\r\n";
    let (prompt, result) = (b"\r\n> ", b"\r\n+CMGS: 12\r\n\r\nOK\r\n");
    let total = (csq.len() + prompt.len() + result.len() + listing.len()) as u64;
    let mut g = c.benchmark_group("at_parser");
    g.throughput(Throughput::Bytes(total));
    g.bench_function("session", |b| {
        let mut p = AtParser::new(&["^RSSI:"], &[]);
        b.iter(|| {
            let mut n = 0;
            p.command("AT+CSQ", false);
            n += p.feed(csq).len();
            p.command("AT+CMGS=23", true);
            n += p.feed(prompt).len();
            n += p.feed(result).len();
            p.command("AT+CMGL=4", false);
            n += p.feed(listing.as_bytes()).len();
            std::hint::black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, gsm7_bench, pdu_bench, wbxml_bench, at_parser_bench);
criterion_main!(benches);
