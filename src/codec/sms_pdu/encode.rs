//! Encoding: SMS-SUBMIT (split into concatenated parts), SMS-DELIVER and
//! SMS-STATUS-REPORT (the modem simulator's side).

use super::*;

/// What to put in an SMS-SUBMIT.
#[derive(Debug, Clone)]
pub struct SubmitSpec {
    pub to: String,
    pub body: SubmitBody,
    pub srr: bool,
    pub validity: Option<Validity>,
    pub message_ref: u8,
    pub reject_duplicates: bool,
    /// TP-RP: a reply path is set.
    pub reply_path: bool,
    pub pid: u8,
    pub class: Option<u8>,
    /// Concatenation reference for multipart messages.
    pub concat_ref: u16,
    pub ref16: bool,
}

/// The body of an SMS-SUBMIT.
#[derive(Debug, Clone)]
pub enum SubmitBody {
    Gsm7(String, Shift),
    Ucs2(String),
    Binary(Vec<u8>, Option<Udh>),
}

/// One encoded part: the hex PDU (with an empty SMSC field, "use the stored one") and the TPDU
/// length `AT+CMGS` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPdu {
    pub pdu: Vec<u8>,
    pub tpdu_length: usize,
}

/// Encode an SMS-SUBMIT, split into concatenated parts when it does not fit one.
pub fn encode_submit(spec: &SubmitSpec) -> Result<Vec<EncodedPdu>, PduError> {
    let da = Address::from_text(&spec.to)?;
    let mut shift_udh = Udh::default();
    let (dcs_alpha, units): (u8, Vec<Vec<u8>>) = match &spec.body {
        SubmitBody::Gsm7(text, shift) => {
            if shift.locking != Language::Default {
                shift_udh.ies.push(crate::codec::udh::Ie {
                    id: crate::codec::udh::iei::LOCKING_SHIFT,
                    data: vec![shift.locking.id()],
                });
            }
            if shift.single != Language::Default {
                shift_udh.ies.push(crate::codec::udh::Ie {
                    id: crate::codec::udh::iei::SINGLE_SHIFT,
                    data: vec![shift.single.id()],
                });
            }
            // Split by characters so an escape sequence is never cut.
            let mut chars = Vec::new();
            for (i, ch) in text.chars().enumerate() {
                let mut s = Vec::new();
                let mut buf = [0u8; 4];
                shift.encode(ch.encode_utf8(&mut buf), &mut s).map_err(|_| PduError { offset: 0, what: format!("character {ch:?} at position {i} has no GSM encoding with these tables") })?;
                chars.push(s);
            }
            (0x00, chars)
        }
        SubmitBody::Ucs2(text) => (
            0x08,
            text.chars()
                .map(|c| ucs2::encode(c.encode_utf8(&mut [0u8; 4])))
                .collect(),
        ),
        SubmitBody::Binary(data, udh) => {
            if let Some(u) = udh {
                shift_udh = u.clone();
            }
            (0x04, data.iter().map(|&b| vec![b]).collect())
        }
    };
    let gsm = dcs_alpha == 0x00;
    let cost = |u: &Vec<u8>| u.len();
    let total: usize = units.iter().map(cost).sum();
    let cap = |udh_octets: usize| -> usize {
        let octets = 140 - udh_octets;
        if gsm {
            (octets * 8 - gsm7::fill_bits_after_udh(udh_octets) as usize) / 7
        } else {
            octets
        }
    };
    let base_udh = if shift_udh.is_empty() {
        0
    } else {
        shift_udh.len()
    };
    let parts: Vec<Vec<u8>> = if total <= cap(base_udh) {
        vec![units.concat()]
    } else {
        let concat_len = if spec.ref16 { 6 } else { 5 };
        let c = cap(base_udh.max(1) + concat_len);
        let mut parts = vec![Vec::new()];
        for u in &units {
            if parts.last().is_some_and(|p| p.len() + u.len() > c) {
                parts.push(Vec::new());
            }
            if let Some(p) = parts.last_mut() {
                p.extend_from_slice(u);
            }
        }
        parts
    };
    if parts.len() > 255 {
        return err(0, "message needs more than 255 parts");
    }
    let dcs = dcs_alpha | spec.class.map_or(0, |c| 0x10 | (c & 0x03));
    let n = parts.len();
    let mut out = Vec::with_capacity(n);
    for (i, body) in parts.iter().enumerate() {
        let mut udh = shift_udh.clone();
        if n > 1 {
            udh = udh.with_concat(Concat {
                reference: spec.concat_ref,
                bits: if spec.ref16 { 16 } else { 8 },
                total: n as u8,
                seq: i as u8 + 1,
            });
        }
        let udh_bytes = if udh.is_empty() {
            Vec::new()
        } else {
            udh.encode()
        };
        let vpf: u8 = match spec.validity {
            None => 0,
            Some(Validity::Relative(_)) => 2,
            Some(Validity::Enhanced(_)) => 1,
            Some(Validity::Absolute(_)) => 3,
        };
        let fo = 0x01
            | (spec.reject_duplicates as u8) << 2
            | vpf << 3
            | (spec.srr as u8) << 5
            | (!udh_bytes.is_empty() as u8) << 6
            | (spec.reply_path as u8) << 7;
        let mut t = vec![fo, spec.message_ref.wrapping_add(i as u8)];
        da.encode(&mut t);
        t.push(spec.pid);
        t.push(dcs);
        match &spec.validity {
            None => {}
            Some(Validity::Relative(vp)) => t.push(*vp),
            Some(Validity::Absolute(ts)) => t.extend(ts.encode()),
            Some(Validity::Enhanced(b)) => t.extend(b),
        }
        if gsm {
            let fill = gsm7::fill_bits_after_udh(udh_bytes.len());
            let udl = (udh_bytes.len() * 8).div_ceil(7) + body.len();
            t.push(udl as u8);
            t.extend(&udh_bytes);
            t.extend(gsm7::pack(body, fill));
        } else {
            t.push((udh_bytes.len() + body.len()) as u8);
            t.extend(&udh_bytes);
            t.extend(body);
        }
        let tpdu_length = t.len();
        let mut pdu = vec![0u8];
        pdu.extend(t);
        out.push(EncodedPdu { pdu, tpdu_length });
    }
    Ok(out)
}

impl Timestamp {
    /// A UTC timestamp for a Unix time in milliseconds.
    pub fn from_unix_ms(ms: i64) -> Timestamp {
        let ((y, m, d), (hour, minute, second)) = crate::time::utc_civil(ms);
        Timestamp {
            year: y as u16,
            month: m as u8,
            day: d as u8,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            tz_minutes: 0,
        }
    }
}

/// Encode an SMS-DELIVER (one part), with an empty SMSC field: what a modem hands over for a
/// received message. `udh` carries concatenation or port IEs. Used by the modem simulator and
/// tests; the gateway itself only decodes DELIVERs.
pub fn encode_deliver(
    from: &str,
    body: &SubmitBody,
    udh: Option<&Udh>,
    scts: Timestamp,
) -> Result<Vec<u8>, PduError> {
    let oa = Address::from_text(from)?;
    let udh_bytes = udh
        .filter(|u| !u.is_empty())
        .map(|u| u.encode())
        .unwrap_or_default();
    let mut t = vec![0x04 | if udh_bytes.is_empty() { 0 } else { 0x40 }];
    oa.encode(&mut t);
    t.push(0); // PID
    match body {
        SubmitBody::Gsm7(text, _) => {
            let sept = gsm7::to_septets(text).map_err(|e| PduError {
                offset: 0,
                what: e.to_string(),
            })?;
            let fill = gsm7::fill_bits_after_udh(udh_bytes.len());
            let udl = (udh_bytes.len() * 8).div_ceil(7) + sept.len();
            if udl > 160 {
                return err(0, "text does not fit one SMS-DELIVER");
            }
            t.push(0x00);
            t.extend(scts.encode());
            t.push(udl as u8);
            t.extend(&udh_bytes);
            t.extend(gsm7::pack(&sept, fill));
        }
        SubmitBody::Ucs2(text) => {
            let data = ucs2::encode(text);
            push_octets(&mut t, 0x08, scts, &udh_bytes, &data)?;
        }
        SubmitBody::Binary(data, _) => push_octets(&mut t, 0x04, scts, &udh_bytes, data)?,
    }
    let mut pdu = vec![0u8];
    pdu.extend(t);
    Ok(pdu)
}

pub(super) fn push_octets(
    t: &mut Vec<u8>,
    dcs: u8,
    scts: Timestamp,
    udh: &[u8],
    data: &[u8],
) -> Result<(), PduError> {
    if udh.len() + data.len() > 140 {
        return err(0, "data does not fit one SMS-DELIVER");
    }
    t.push(dcs);
    t.extend(scts.encode());
    t.push((udh.len() + data.len()) as u8);
    t.extend(udh);
    t.extend(data);
    Ok(())
}

/// Encode an SMS-STATUS-REPORT with an empty SMSC field (for the modem simulator and tests).
pub fn encode_status_report(
    mr: u8,
    recipient: &str,
    status: u8,
    scts: Timestamp,
    discharge: Timestamp,
) -> Result<Vec<u8>, PduError> {
    let ra = Address::from_text(recipient)?;
    let mut pdu = vec![0u8, 0x06, mr];
    ra.encode(&mut pdu);
    pdu.extend(scts.encode());
    pdu.extend(discharge.encode());
    pdu.push(status);
    Ok(pdu)
}
