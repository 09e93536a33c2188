//! TS 23.040 transfer-layer PDUs, written by hand (no maintained crate covers decode and encode
//! with UDH, fill bits and national shifts): decode SMS-DELIVER, SMS-SUBMIT and
//! SMS-STATUS-REPORT as modems give them in PDU mode (SMSC address first), and encode
//! SMS-SUBMIT, split into concatenated parts. Every error names the octet offset.

mod decode;
mod encode;

pub use decode::*;
pub use encode::*;

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
