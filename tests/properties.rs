//! Property tests: round trips through every codec with random input, and reassembly of random
//! permutations with duplicates.

use postern::codec::reassembly::{PartBody, PartInfo, Reassembler};
use postern::codec::segment::{self, Coding, ConcatRef};
use postern::codec::{gsm7, national, sms_pdu, ucs2, udh, wbxml};
use proptest::prelude::*;

fn gsm_char() -> impl Strategy<Value = char> {
    let mut chars: Vec<char> = gsm7::BASIC
        .iter()
        .copied()
        .filter(|&c| c != '\u{a0}')
        .collect();
    chars.extend(gsm7::EXTENSION.iter().map(|&(_, c)| c));
    proptest::sample::select(chars)
}

fn gsm_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(gsm_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gsm7_pack_unpack(text in gsm_text(400), fill in 0u8..7) {
        let septets = gsm7::to_septets(&text).unwrap();
        let packed = gsm7::pack(&septets, fill);
        prop_assert_eq!(packed.len(), gsm7::packed_len(septets.len(), fill));
        let back = gsm7::unpack(&packed, septets.len(), fill).unwrap();
        prop_assert_eq!(&back, &septets);
        prop_assert_eq!(gsm7::septets_to_string(&back), text);
    }

    #[test]
    fn ucs2_round_trip(text in "\\PC{0,200}") {
        prop_assert_eq!(ucs2::decode(&ucs2::encode(&text)).unwrap(), text);
    }

    #[test]
    fn national_round_trip(text in proptest::collection::vec(proptest::sample::select("IşıkğüzelŞekerçay€ĞİabcXYZ 019.,".chars().collect::<Vec<_>>()), 0..200)) {
        let text: String = text.into_iter().collect();
        let (shift, _) = national::choose(&text, &national::Language::NATIONAL).unwrap();
        let mut s = Vec::new();
        shift.encode(&text, &mut s).unwrap();
        let mut back = String::new();
        shift.decode(&s, &mut back);
        prop_assert_eq!(back, text);
    }

    #[test]
    fn segments_rejoin_and_fit(text in "\\PC{1,600}", ref16 in any::<bool>()) {
        let r = if ref16 { ConcatRef::Bits16 } else { ConcatRef::Bits8 };
        let m = segment::measure(&text);
        let parts = segment::split(&text, m.coding, r);
        prop_assert_eq!(parts.concat(), text.clone());
        if parts.len() > 1 {
            let cap = segment::capacity(m.coding, r.udh_octets());
            for p in &parts {
                let units = match m.coding { Coding::Gsm7 => gsm7::septet_len(p).unwrap(), _ => ucs2::unit_len(p) };
                prop_assert!(units <= cap);
            }
        }
    }

    #[test]
    fn submit_pdus_decode_back(text in "\\PC{1,500}", mr in any::<u8>(), reference in any::<u16>(), ref16 in any::<bool>(), srr in any::<bool>()) {
        let body = match national::choose(&text, &[]) {
            Some((shift, _)) => sms_pdu::SubmitBody::Gsm7(text.clone(), shift),
            None => sms_pdu::SubmitBody::Ucs2(text.clone()),
        };
        let spec = sms_pdu::SubmitSpec { to: "+447400123123".into(), body, srr, validity: Some(sms_pdu::Validity::Relative(167)), message_ref: mr, reject_duplicates: false, reply_path: false, pid: 0, class: None, concat_ref: reference, ref16 };
        let parts = sms_pdu::encode_submit(&spec).unwrap();
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            prop_assert!(p.tpdu_length <= 164);
            let d = sms_pdu::decode(&p.pdu).unwrap().to_json();
            prop_assert_eq!(d["tpdu_length"].as_u64().unwrap() as usize, p.tpdu_length);
            prop_assert_eq!(d["message_ref"].as_u64().unwrap() as u8, mr.wrapping_add(i as u8));
            if parts.len() > 1 {
                prop_assert_eq!(d["udh"]["concat"]["seq"].as_u64().unwrap() as usize, i + 1);
                prop_assert_eq!(d["udh"]["concat"]["total"].as_u64().unwrap() as usize, parts.len());
                prop_assert_eq!(d["udh"]["concat"]["ref"].as_u64().unwrap() as u16, if ref16 { reference } else { reference & 0xFF });
            }
            joined.push_str(d["text"].as_str().unwrap());
        }
        prop_assert_eq!(joined, text);
    }

    #[test]
    fn udh_round_trip(ies in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..10)) {
        let u = udh::Udh { ies: ies.into_iter().map(|(id, data)| udh::Ie { id, data }).collect() };
        let enc = u.encode();
        let (back, n) = udh::Udh::parse(&enc).unwrap();
        prop_assert_eq!(n, enc.len());
        prop_assert_eq!(back, u);
    }

    #[test]
    fn reassembly_of_permutations_with_duplicates(n in 2u8..12, seed in any::<u64>(), dups in proptest::collection::vec(0usize..12, 0..6)) {
        let parts: Vec<String> = (1..=n).map(|i| format!("<{i}>")).collect();
        let mut order: Vec<usize> = (0..n as usize).collect();
        let mut x = seed;
        for i in (1..order.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (x >> 33) as usize % (i + 1));
        }
        for d in dups {
            let at = d % order.len();
            order.insert(at, order[d % order.len()]);
        }
        let mut r = Reassembler::new(60_000, 1000);
        let mut done = Vec::new();
        for (t, &i) in order.iter().enumerate() {
            let info = PartInfo { reference: 9, total: n, seq: i as u8 + 1 };
            done.extend(r.add("+1", "+2", info, PartBody::Text(parts[i].clone()), t as i64).unwrap());
        }
        prop_assert_eq!(done.len(), 1);
        prop_assert_eq!(&done[0].body, &PartBody::Text(parts.concat()));
        prop_assert_eq!(r.pending(), 0);
    }

    #[test]
    fn wbxml_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = wbxml::decode(&data);
    }

    #[test]
    fn sms_pdu_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = sms_pdu::decode(&data);
        let _ = sms_pdu::decode_tpdu(&data);
    }
}
