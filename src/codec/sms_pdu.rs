//! TS 23.040 transfer-layer PDUs, written by hand (no maintained crate covers decode and encode
//! with UDH, fill bits and national shifts): decode SMS-DELIVER, SMS-SUBMIT and
//! SMS-STATUS-REPORT as modems give them in PDU mode (SMSC address first), and encode
//! SMS-SUBMIT, split into concatenated parts. Every error names the octet offset.

use super::gsm7;
use super::national::{Language, Shift};
use super::ucs2;
use super::udh::{Concat, Udh};
use serde_json::{json, Value};
use thiserror::Error;

/// A PDU that cannot be decoded, with the offset of the octet at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at octet {offset}: {what}")]
pub struct PduError {
    pub offset: usize,
    pub what: String,
}

fn err<T>(offset: usize, what: impl Into<String>) -> Result<T, PduError> {
    Err(PduError {
        offset,
        what: what.into(),
    })
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &str) -> Result<u8, PduError> {
        let v = *self.b.get(self.pos).ok_or_else(|| PduError {
            offset: self.pos,
            what: format!("{what}: unexpected end of PDU"),
        })?;
        self.pos += 1;
        Ok(v)
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PduError> {
        if self.pos + n > self.b.len() {
            return err(
                self.pos,
                format!("{what}: needs {n} octets, {} left", self.b.len() - self.pos),
            );
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
}

/// An address (TP-OA, TP-DA, TP-RA, or the SMSC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `+digits` for international numbers, the text for alphanumeric ones.
    pub number: String,
    pub ton: u8,
    pub npi: u8,
    /// The address-length octet (semi-octets; octets for the SMSC field).
    pub length: u8,
}

impl Address {
    fn json(&self) -> Value {
        json!({"number": self.number, "ton": self.ton, "npi": self.npi, "length": self.length})
    }

    /// Parse `+digits`, `digits` or alphanumeric text for encoding.
    pub fn from_text(s: &str) -> Result<Address, PduError> {
        let bad = |what: &str| err(0, format!("address {s:?}: {what}"));
        if let Some(d) = s.strip_prefix('+') {
            if d.is_empty() || d.len() > 20 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return bad("not an international number");
            }
            return Ok(Address {
                number: s.to_string(),
                ton: 1,
                npi: 1,
                length: d.len() as u8,
            });
        }
        if !s.is_empty()
            && s.len() <= 20
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        {
            return Ok(Address {
                number: s.to_string(),
                ton: 0,
                npi: 1,
                length: s.len() as u8,
            });
        }
        match gsm7::septet_len(s) {
            Ok(n) if n > 0 && n <= 11 => Ok(Address {
                number: s.to_string(),
                ton: 5,
                npi: 0,
                length: ((n * 7).div_ceil(4)) as u8,
            }),
            _ => bad("not a number or an alphanumeric address of 1-11 GSM characters"),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.length);
        out.push(0x80 | (self.ton << 4) | (self.npi & 0x0F));
        if self.ton == 5 {
            let septets = gsm7::to_septets(&self.number).unwrap_or_default();
            out.extend(gsm7::pack(&septets, 0));
        } else {
            out.extend(bcd_encode(self.number.trim_start_matches('+')));
        }
    }
}

fn bcd_digit(n: u8) -> Option<char> {
    match n {
        0..=9 => Some((b'0' + n) as char),
        0xA => Some('*'),
        0xB => Some('#'),
        0xC => Some('a'),
        0xD => Some('b'),
        0xE => Some('c'),
        _ => None,
    }
}

fn bcd_encode(digits: &str) -> Vec<u8> {
    let nib = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'*' => 0xA,
        b'#' => 0xB,
        _ => 0xF,
    };
    digits
        .as_bytes()
        .chunks(2)
        .map(|p| nib(p[0]) | (p.get(1).map_or(0xF, |&c| nib(c)) << 4))
        .collect()
}

fn bcd_decode(b: &[u8], digits: usize) -> String {
    let mut s = String::with_capacity(digits);
    for &o in b {
        for n in [o & 0x0F, o >> 4] {
            if s.len() < digits {
                if let Some(c) = bcd_digit(n) {
                    s.push(c);
                }
            }
        }
    }
    s
}

fn read_address(r: &mut Reader, what: &str) -> Result<Address, PduError> {
    let length = r.u8(what)?;
    let toa = r.u8(what)?;
    let (ton, npi) = ((toa >> 4) & 0x07, toa & 0x0F);
    let octets = (length as usize).div_ceil(2);
    let start = r.pos;
    let b = r.take(octets, what)?;
    let number = if ton == 5 {
        let septets = length as usize * 4 / 7;
        let mut buf = vec![0u8; septets];
        gsm7::unpack_into(b, septets, 0, &mut buf).map_err(|e| PduError {
            offset: start,
            what: format!("{what}: {e}"),
        })?;
        gsm7::septets_to_string(&buf)
    } else {
        let d = bcd_decode(b, length as usize);
        if ton == 1 {
            format!("+{d}")
        } else {
            d
        }
    };
    Ok(Address {
        number,
        ton,
        npi,
        length,
    })
}

/// A service-centre timestamp (TS 23.040 §9.2.3.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Offset from UTC in minutes.
    pub tz_minutes: i32,
}

impl Timestamp {
    fn local(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
    /// Milliseconds since the Unix epoch; `None` for a date that does not exist.
    pub fn unix_ms(&self) -> Option<i64> {
        crate::time::civil_to_ms(
            (self.year as i16, self.month as i8, self.day as i8),
            (self.hour as i8, self.minute as i8, self.second as i8),
            self.tz_minutes,
        )
    }
    fn utc(&self) -> Option<String> {
        let s = crate::time::rfc3339(self.unix_ms()?);
        Some(format!("{}Z", &s[..19]))
    }
    fn json(&self) -> Value {
        json!({"local": self.local(), "tz_offset_minutes": self.tz_minutes, "utc": self.utc()})
    }
    fn encode(&self) -> [u8; 7] {
        let sw = |v: u8| ((v % 10) << 4) | (v / 10);
        let q = (self.tz_minutes.unsigned_abs() / 15) as u8;
        let tz = ((q % 10) << 4) | (q / 10) | if self.tz_minutes < 0 { 0x08 } else { 0 };
        [
            sw((self.year % 100) as u8),
            sw(self.month),
            sw(self.day),
            sw(self.hour),
            sw(self.minute),
            sw(self.second),
            tz,
        ]
    }
}

fn read_timestamp(r: &mut Reader, what: &str) -> Result<Timestamp, PduError> {
    let start = r.pos;
    let b = r.take(7, what)?;
    let digit = |o: u8, i: usize| -> Result<u8, PduError> {
        let (lo, hi) = (o & 0x0F, o >> 4);
        if lo > 9 || hi > 9 {
            return err(
                start + i,
                format!("{what}: octet 0x{o:02x} is not two BCD digits"),
            );
        }
        Ok(lo * 10 + hi)
    };
    let yy = digit(b[0], 0)?;
    let ts = Timestamp {
        year: if yy >= 90 {
            1900 + yy as u16
        } else {
            2000 + yy as u16
        },
        month: digit(b[1], 1)?,
        day: digit(b[2], 2)?,
        hour: digit(b[3], 3)?,
        minute: digit(b[4], 4)?,
        second: digit(b[5], 5)?,
        // 7th octet: low nibble is the tens digit with bit 3 as the sign, high nibble the units.
        tz_minutes: {
            let o = b[6];
            let q = ((o & 0x07) * 10 + (o >> 4)) as i32 * 15;
            if o & 0x08 != 0 {
                -q
            } else {
                q
            }
        },
    };
    if !(1..=12).contains(&ts.month)
        || !(1..=31).contains(&ts.day)
        || ts.hour > 23
        || ts.minute > 59
        || ts.second > 59
    {
        return err(start, format!("{what}: not a valid date/time"));
    }
    Ok(ts)
}

/// TP-Validity-Period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    Relative(u8),
    Absolute(Timestamp),
    /// Enhanced format (7 octets, TS 23.040 §9.2.3.12.3).
    Enhanced([u8; 7]),
}

/// Seconds a relative TP-VP octet means (TS 23.040 §9.2.3.12.1).
pub fn relative_seconds(vp: u8) -> u64 {
    let vp = vp as u64;
    match vp {
        0..=143 => (vp + 1) * 300,
        144..=167 => 12 * 3600 + (vp - 143) * 1800,
        168..=196 => (vp - 166) * 86_400,
        _ => (vp - 192) * 7 * 86_400,
    }
}

/// The smallest relative TP-VP octet that covers `seconds`.
pub fn relative_vp(seconds: u64) -> u8 {
    let min = seconds.div_ceil(60);
    if min <= 720 {
        (min.div_ceil(5).max(1) - 1) as u8
    } else if min <= 1440 {
        (143 + (min - 720).div_ceil(30)) as u8
    } else if seconds <= 30 * 86_400 {
        (166 + seconds.div_ceil(86_400)) as u8
    } else {
        (192 + seconds.div_ceil(7 * 86_400)).min(255) as u8
    }
}

impl Validity {
    fn json(&self) -> Value {
        match self {
            Validity::Relative(vp) => {
                json!({"format": "relative", "vp": vp, "seconds": relative_seconds(*vp)})
            }
            Validity::Absolute(t) => {
                let mut v = t.json();
                v["format"] = json!("absolute");
                v
            }
            Validity::Enhanced(b) => {
                let seconds = match b[0] & 0x07 {
                    1 => Some(relative_seconds(b[1])),
                    2 => Some(b[1] as u64),
                    3 => {
                        let d = |o: u8| (o & 0x0F) as u64 * 10 + (o >> 4) as u64;
                        Some(d(b[1]) * 3600 + d(b[2]) * 60 + d(b[3]))
                    }
                    _ => None,
                };
                json!({"format": "enhanced", "hex": hex::encode(b), "seconds": seconds})
            }
        }
    }
}

/// The alphabet a TP-DCS selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    Bit8,
    Ucs2,
}

/// TP-Data-Coding-Scheme (TS 23.038 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dcs {
    pub raw: u8,
    pub alphabet: Alphabet,
    pub class: Option<u8>,
    pub compressed: bool,
}

impl Dcs {
    pub fn parse(raw: u8) -> Dcs {
        let (alphabet, class, compressed) = match raw >> 4 {
            0x0..=0x7 => {
                let alphabet = match (raw >> 2) & 0x03 {
                    1 => Alphabet::Bit8,
                    2 => Alphabet::Ucs2,
                    _ => Alphabet::Gsm7,
                };
                (
                    alphabet,
                    (raw & 0x10 != 0).then_some(raw & 0x03),
                    raw & 0x20 != 0,
                )
            }
            0xC | 0xD => (Alphabet::Gsm7, None, false),
            0xE => (Alphabet::Ucs2, None, false),
            0xF => (
                if raw & 0x04 != 0 {
                    Alphabet::Bit8
                } else {
                    Alphabet::Gsm7
                },
                Some(raw & 0x03),
                false,
            ),
            _ => (Alphabet::Gsm7, None, false), // reserved groups: treat as the default alphabet
        };
        Dcs {
            raw,
            alphabet,
            class,
            compressed,
        }
    }
    fn name(&self) -> &'static str {
        match self.alphabet {
            Alphabet::Gsm7 => "gsm7",
            Alphabet::Bit8 => "8bit",
            Alphabet::Ucs2 => "ucs2",
        }
    }
}

/// Decoded TP-User-Data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub udl: u8,
    pub udh: Option<Udh>,
    pub udh_raw: Vec<u8>,
    /// GSM or UCS-2 text.
    pub text: Option<String>,
    /// 8-bit (or compressed) data.
    pub data: Option<Vec<u8>>,
}

fn read_user_data(r: &mut Reader, dcs: Dcs, udhi: bool) -> Result<UserData, PduError> {
    let udl_at = r.pos;
    let udl = r.u8("TP-UDL")?;
    let septets = dcs.alphabet == Alphabet::Gsm7 && !dcs.compressed;
    let octets = if septets {
        (udl as usize * 7).div_ceil(8)
    } else {
        udl as usize
    };
    if octets > 140 {
        return err(
            udl_at,
            format!("TP-UDL {udl} is more than 140 octets of user data"),
        );
    }
    let ud_at = r.pos;
    let ud = r.take(octets, "TP-UD")?;
    let (udh, udh_len) = if udhi {
        let (u, n) = Udh::parse(ud).map_err(|e| PduError {
            offset: ud_at,
            what: format!("UDH: {e}"),
        })?;
        (Some(u), n)
    } else {
        (None, 0)
    };
    let udh_raw = ud[..udh_len].to_vec();
    let mut out = UserData {
        udl,
        udh,
        udh_raw,
        text: None,
        data: None,
    };
    if septets {
        let header_septets = (udh_len * 8).div_ceil(7);
        let count = (udl as usize).checked_sub(header_septets).ok_or(PduError {
            offset: udl_at,
            what: format!("TP-UDL {udl} septets is shorter than the {udh_len}-octet UDH"),
        })?;
        let fill = gsm7::fill_bits_after_udh(udh_len);
        let mut buf = [0u8; 160];
        let buf = buf.get_mut(..count).ok_or(PduError {
            offset: udl_at,
            what: "more than 160 septets".into(),
        })?;
        gsm7::unpack_into(&ud[udh_len..], count, fill, buf).map_err(|e| PduError {
            offset: ud_at + udh_len,
            what: e.to_string(),
        })?;
        let shift = match out.udh.as_ref().map(|u| u.shifts()) {
            Some((l, s)) => Shift {
                locking: Language::from_id(l.unwrap_or(0)),
                single: Language::from_id(s.unwrap_or(0)),
            },
            None => Shift::DEFAULT,
        };
        let mut text = String::with_capacity(count);
        shift.decode(buf, &mut text);
        out.text = Some(text);
    } else if dcs.alphabet == Alphabet::Ucs2 && !dcs.compressed {
        out.text = Some(ucs2::decode_lossy(&ud[udh_len..]));
    } else {
        out.data = Some(ud[udh_len..].to_vec());
    }
    Ok(out)
}

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

fn decode_tpdu_at(r: &mut Reader) -> Result<Tpdu, PduError> {
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

fn ud_json(v: &mut Value, ud: &UserData) {
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
                shift_udh.ies.push(super::udh::Ie {
                    id: super::udh::iei::LOCKING_SHIFT,
                    data: vec![shift.locking.id()],
                });
            }
            if shift.single != Language::Default {
                shift_udh.ies.push(super::udh::Ie {
                    id: super::udh::iei::SINGLE_SHIFT,
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

fn push_octets(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_submit_and_round_trip() {
        let b = hex::decode("07911326040000F011000B911346610089F600000005C8329BFD06").unwrap();
        let s = decode(&b).unwrap();
        let v = s.to_json();
        assert_eq!(v["text"], "Hello");
        assert_eq!(v["destination"]["number"], "+31641600986");
        assert_eq!(v["tpdu_length"], 19);
        let spec = SubmitSpec {
            to: "+31641600986".into(),
            body: SubmitBody::Gsm7("Hello".into(), Shift::DEFAULT),
            srr: false,
            validity: Some(Validity::Relative(0)),
            message_ref: 0,
            reject_duplicates: false,
            reply_path: false,
            pid: 0,
            class: None,
            concat_ref: 0,
            ref16: false,
        };
        let e = encode_submit(&spec).unwrap();
        assert_eq!(
            hex::encode_upper(&e[0].pdu[1..]),
            "11000B911346610089F600000005C8329BFD06"
        );
        assert_eq!(e[0].tpdu_length, 19);
    }

    #[test]
    fn errors_name_offsets() {
        let e = decode(&hex::decode("07911326040000F011000B9113").unwrap()).unwrap_err();
        assert_eq!(e.offset, 12);
        assert!(decode(&[]).is_err());
        assert!(decode(&[0x00, 0x03]).is_err());
    }

    #[test]
    fn relative_vp_round_trip() {
        for vp in 0..=255u8 {
            assert_eq!(relative_vp(relative_seconds(vp)), vp, "{vp}");
        }
    }
}
