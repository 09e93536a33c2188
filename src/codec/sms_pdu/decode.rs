//! Decoding: SMS-DELIVER, SMS-SUBMIT and SMS-STATUS-REPORT as modems give them, and their
//! JSON view.

use super::*;

/// A decoded TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    /// `mms` is the TP-MMS bit as sent: false means more messages are waiting at the SC.
    Deliver {
        mms: bool,
        lp: bool,
        sri: bool,
        rp: bool,
        originator: Address,
        pid: u8,
        dcs: Dcs,
        scts: Timestamp,
        ud: UserData,
    },
    Submit {
        rd: bool,
        vpf: u8,
        srr: bool,
        rp: bool,
        mr: u8,
        destination: Address,
        pid: u8,
        dcs: Dcs,
        validity: Option<Validity>,
        ud: UserData,
    },
    StatusReport {
        mms: bool,
        lp: bool,
        srq: bool,
        mr: u8,
        recipient: Address,
        scts: Timestamp,
        discharge: Timestamp,
        status: u8,
        pid: Option<u8>,
        dcs: Option<Dcs>,
        ud: Option<UserData>,
    },
}

/// A PDU as a modem gives it: the SMSC address, then the TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub smsc: Option<Address>,
    pub tpdu: Tpdu,
    /// Octets after the SMSC field (what `AT+CMGS=<n>` counts).
    pub tpdu_length: usize,
}

/// What TP-ST means (TS 23.040 §9.2.3.15).
pub fn status_meaning(st: u8) -> (&'static str, &'static str) {
    match st {
        0x00 => ("delivered", "received by the SME"),
        0x01 => ("delivered", "forwarded, delivery not confirmed"),
        0x02 => ("delivered", "replaced by the SC"),
        0x20..=0x2F => ("pending", "temporary error, SC still trying"),
        0x40..=0x4F => ("failed", "permanent error, SC not trying any more"),
        0x60..=0x6F => ("failed", "temporary error, SC not trying any more"),
        _ => ("unknown", "reserved or SC-specific status"),
    }
}

/// Decode a PDU with its SMSC prefix (PDU mode `+CMGR`, `+CMGL`, `+CMT`, `+CDS`).
pub fn decode(b: &[u8]) -> Result<Sms, PduError> {
    let mut r = Reader { b, pos: 0 };
    let sca_len = r.u8("SMSC length")? as usize;
    let smsc = if sca_len == 0 {
        None
    } else {
        let toa = r.u8("SMSC type of address")?;
        let digits = r.take(sca_len - 1, "SMSC address")?;
        if digits.is_empty() {
            None
        } else {
            let ton = (toa >> 4) & 0x07;
            let d = bcd_decode(digits, digits.len() * 2);
            Some(Address {
                number: if ton == 1 { format!("+{d}") } else { d },
                ton,
                npi: toa & 0x0F,
                length: sca_len as u8,
            })
        }
    };
    let start = r.pos;
    let tpdu = decode_tpdu_at(&mut r)?;
    if r.pos < b.len() {
        return err(
            r.pos,
            format!("{} octets after the end of the TPDU", b.len() - r.pos),
        );
    }
    Ok(Sms {
        smsc,
        tpdu,
        tpdu_length: b.len() - start,
    })
}

/// Decode a TPDU without SMSC prefix.
pub fn decode_tpdu(b: &[u8]) -> Result<Tpdu, PduError> {
    let mut r = Reader { b, pos: 0 };
    let t = decode_tpdu_at(&mut r)?;
    if r.pos < b.len() {
        return err(
            r.pos,
            format!("{} octets after the end of the TPDU", b.len() - r.pos),
        );
    }
    Ok(t)
}

pub(super) fn decode_tpdu_at(r: &mut Reader) -> Result<Tpdu, PduError> {
    let fo_at = r.pos;
    let fo = r.u8("first octet")?;
    let udhi = fo & 0x40 != 0;
    match fo & 0x03 {
        0 => {
            let originator = read_address(r, "TP-OA")?;
            let pid = r.u8("TP-PID")?;
            let dcs = Dcs::parse(r.u8("TP-DCS")?);
            let scts = read_timestamp(r, "TP-SCTS")?;
            let ud = read_user_data(r, dcs, udhi)?;
            Ok(Tpdu::Deliver {
                mms: fo & 0x04 != 0,
                lp: fo & 0x08 != 0,
                sri: fo & 0x20 != 0,
                rp: fo & 0x80 != 0,
                originator,
                pid,
                dcs,
                scts,
                ud,
            })
        }
        1 => {
            let mr = r.u8("TP-MR")?;
            let destination = read_address(r, "TP-DA")?;
            let pid = r.u8("TP-PID")?;
            let dcs = Dcs::parse(r.u8("TP-DCS")?);
            let vpf = (fo >> 3) & 0x03;
            let validity = match vpf {
                0 => None,
                2 => Some(Validity::Relative(r.u8("TP-VP")?)),
                3 => Some(Validity::Absolute(read_timestamp(r, "TP-VP")?)),
                _ => {
                    let b = r.take(7, "TP-VP (enhanced)")?;
                    let mut a = [0u8; 7];
                    a.copy_from_slice(b);
                    Some(Validity::Enhanced(a))
                }
            };
            let ud = read_user_data(r, dcs, udhi)?;
            Ok(Tpdu::Submit {
                rd: fo & 0x04 != 0,
                vpf,
                srr: fo & 0x20 != 0,
                rp: fo & 0x80 != 0,
                mr,
                destination,
                pid,
                dcs,
                validity,
                ud,
            })
        }
        2 => {
            let mr = r.u8("TP-MR")?;
            let recipient = read_address(r, "TP-RA")?;
            let scts = read_timestamp(r, "TP-SCTS")?;
            let discharge = read_timestamp(r, "TP-DT")?;
            let status = r.u8("TP-ST")?;
            // TP-PI and what it announces are optional (TS 23.040 §9.2.2.3).
            let (mut pid, mut dcs, mut ud) = (None, None, None);
            if r.pos < r.b.len() {
                let pi = r.u8("TP-PI")?;
                if pi & 0x01 != 0 {
                    pid = Some(r.u8("TP-PID")?);
                }
                if pi & 0x02 != 0 {
                    dcs = Some(Dcs::parse(r.u8("TP-DCS")?));
                }
                if pi & 0x04 != 0 {
                    ud = Some(read_user_data(r, dcs.unwrap_or(Dcs::parse(0)), udhi)?);
                }
            }
            Ok(Tpdu::StatusReport {
                mms: fo & 0x04 != 0,
                lp: fo & 0x08 != 0,
                srq: fo & 0x20 != 0,
                mr,
                recipient,
                scts,
                discharge,
                status,
                pid,
                dcs,
                ud,
            })
        }
        _ => err(
            fo_at,
            format!("TP-MTI 3 (reserved) in first octet 0x{fo:02x}"),
        ),
    }
}

pub(super) fn ud_json(v: &mut Value, ud: &UserData) {
    v["udl"] = json!(ud.udl);
    v["udh"] = match &ud.udh {
        None => Value::Null,
        Some(u) => {
            let mut h = json!({"hex": hex::encode(&ud.udh_raw), "length": ud.udh_raw.len().saturating_sub(1), "ieis": u.ies.iter().map(|i| i.id).collect::<Vec<_>>()});
            if let Some(c) = u.concat() {
                h["concat"] =
                    json!({"ref": c.reference, "ref_bits": c.bits, "total": c.total, "seq": c.seq});
            }
            if let Some((d, s)) = u.ports() {
                h["ports"] = json!({"destination": d, "source": s});
            }
            h
        }
    };
    if let Some(t) = &ud.text {
        v["text"] = json!(t);
    }
    if let Some(d) = &ud.data {
        v["data_hex"] = json!(hex::encode(d));
    }
}

impl Sms {
    /// Every field as JSON (for `postern pdu decode` and the conformance tests).
    pub fn to_json(&self) -> Value {
        let mut v = self.tpdu.to_json();
        v["smsc"] = match &self.smsc {
            Some(a) => json!({"number": a.number, "ton": a.ton, "npi": a.npi}),
            None => json!({"number": null}),
        };
        v["tpdu_length"] = json!(self.tpdu_length);
        v
    }
}

impl Tpdu {
    pub fn to_json(&self) -> Value {
        match self {
            Tpdu::Deliver {
                mms,
                lp,
                sri,
                rp,
                originator,
                pid,
                dcs,
                scts,
                ud,
            } => {
                let mut v = json!({"type": "SMS-DELIVER", "mms": mms, "more_messages": !mms, "lp": lp, "sri": sri, "rp": rp, "udhi": ud.udh.is_some(),
                    "originator": originator.json(), "pid": pid, "dcs": dcs.raw, "alphabet": dcs.name(), "message_class": dcs.class, "scts": scts.json()});
                ud_json(&mut v, ud);
                v
            }
            Tpdu::Submit {
                rd,
                vpf,
                srr,
                rp,
                mr,
                destination,
                pid,
                dcs,
                validity,
                ud,
            } => {
                let mut v = json!({"type": "SMS-SUBMIT", "rd": rd, "vpf": vpf, "srr": srr, "rp": rp, "udhi": ud.udh.is_some(), "message_ref": mr,
                    "destination": destination.json(), "pid": pid, "dcs": dcs.raw, "alphabet": dcs.name(), "message_class": dcs.class});
                if let Some(val) = validity {
                    v["validity"] = val.json();
                }
                ud_json(&mut v, ud);
                v
            }
            Tpdu::StatusReport {
                mms,
                lp,
                srq,
                mr,
                recipient,
                scts,
                discharge,
                status,
                pid,
                dcs,
                ud,
            } => {
                let (class, meaning) = status_meaning(*status);
                let mut v = json!({"type": "SMS-STATUS-REPORT", "mms": mms, "more_messages": !mms, "lp": lp, "srq": srq, "message_ref": mr, "recipient": recipient.json(),
                    "scts": scts.json(), "discharge_time": discharge.json(), "status": status, "status_class": class, "status_text": meaning, "pid": pid, "dcs": dcs.map(|d| d.raw)});
                if let Some(ud) = ud {
                    ud_json(&mut v, ud);
                }
                v
            }
        }
    }
}
