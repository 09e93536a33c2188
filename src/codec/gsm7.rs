//! GSM 03.38 / TS 23.038 default alphabet: text <-> septets, and septet packing.
//!
//! Written by hand: no maintained crate covers the extension table, fill bits after a UDH and a
//! zero-allocation packer together. Septets are one per `u8` (the "unpacked" form SMPP uses);
//! packing is LSB-first as TS 23.038 §6.1.2.1.1 defines, with `fill_bits` zero bits before the
//! first septet (TS 23.040 §9.2.3.24: padding so the septets start on a septet boundary after
//! the UDH).

use thiserror::Error;

/// The escape septet that selects the extension table (TS 23.038 §6.2.1.1).
pub const ESC: u8 = 0x1B;

/// Default alphabet, septet -> char. 0x1B (ESC) maps to NBSP only as a placeholder: the
/// decoder treats it as an escape and never emits it.
pub const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{a0}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// Extension table (after ESC), TS 23.038 §6.2.1.1: (septet, char).
pub const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// A character with no GSM 03.38 representation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("character {ch:?} at position {index} has no GSM 03.38 encoding")]
pub struct Unencodable {
    /// Char index (not byte index) in the input text.
    pub index: usize,
    pub ch: char,
}

/// Errors from unpacking septets.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnpackError {
    #[error("{septets} septets after {fill_bits} fill bits need {needed} octets, only {available} given")]
    TooShort {
        septets: usize,
        fill_bits: u8,
        needed: usize,
        available: usize,
    },
    #[error("output buffer holds {capacity} septets, {septets} needed")]
    OutputTooSmall { septets: usize, capacity: usize },
    #[error("fill bits must be 0..=6, got {0}")]
    BadFill(u8),
}

/// How a char encodes: one basic septet, or ESC + one extension septet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Septets {
    One(u8),
    Escaped(u8),
}

impl Septets {
    pub fn len(self) -> usize {
        match self {
            Septets::One(_) => 1,
            Septets::Escaped(_) => 2,
        }
    }
}

/// Look up how `ch` encodes in the default alphabet + extension table.
#[inline]
pub fn lookup(ch: char) -> Option<Septets> {
    let c = ch as u32;
    // Fast path: ASCII letters, digits and most punctuation map to themselves.
    if (0x20..0x7F).contains(&c) {
        let b = c as u8;
        return match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => Some(Septets::One(b)),
            b' ' | b'!' | b'"' | b'#' | b'%' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b','
            | b'-' | b'.' | b'/' | b':' | b';' | b'<' | b'=' | b'>' | b'?' => Some(Septets::One(b)),
            b'@' => Some(Septets::One(0x00)),
            b'$' => Some(Septets::One(0x02)),
            b'_' => Some(Septets::One(0x11)),
            b'^' => Some(Septets::Escaped(0x14)),
            b'{' => Some(Septets::Escaped(0x28)),
            b'}' => Some(Septets::Escaped(0x29)),
            b'\\' => Some(Septets::Escaped(0x2F)),
            b'[' => Some(Septets::Escaped(0x3C)),
            b'~' => Some(Septets::Escaped(0x3D)),
            b']' => Some(Septets::Escaped(0x3E)),
            b'|' => Some(Septets::Escaped(0x40)),
            _ => None, // '`' has no GSM encoding
        };
    }
    if ch == '\u{a0}' {
        return None; // the ESC placeholder is not a character
    }
    if let Some(i) = BASIC.iter().position(|&b| b == ch) {
        return Some(Septets::One(i as u8));
    }
    EXTENSION
        .iter()
        .find(|&&(_, e)| e == ch)
        .map(|&(s, _)| Septets::Escaped(s))
}

/// Number of septets `text` needs, or the first character that cannot be encoded.
pub fn septet_len(text: &str) -> Result<usize, Unencodable> {
    let mut n = 0;
    for (index, ch) in text.chars().enumerate() {
        n += lookup(ch).ok_or(Unencodable { index, ch })?.len();
    }
    Ok(n)
}

/// True when every character of `text` has a GSM 03.38 encoding.
pub fn encodable(text: &str) -> bool {
    septet_len(text).is_ok()
}

/// Append the unpacked septets of `text` (one per byte, ESC sequences included) to `out`.
pub fn encode_septets(text: &str, out: &mut Vec<u8>) -> Result<(), Unencodable> {
    out.reserve(text.len());
    for (index, ch) in text.chars().enumerate() {
        match lookup(ch).ok_or(Unencodable { index, ch })? {
            Septets::One(s) => out.push(s),
            Septets::Escaped(s) => {
                out.push(ESC);
                out.push(s);
            }
        }
    }
    Ok(())
}

/// Convenience: the unpacked septets of `text`.
pub fn to_septets(text: &str) -> Result<Vec<u8>, Unencodable> {
    let mut v = Vec::with_capacity(text.len());
    encode_septets(text, &mut v)?;
    Ok(v)
}

/// Decode unpacked septets to text. The high bit of each byte is ignored (SMPP peers sometimes
/// set it). An ESC followed by a septet with no extension meaning decodes as that septet's basic
/// character, as TS 23.038 §6.2.1.1 asks of receivers; a trailing lone ESC decodes as a space.
pub fn decode_septets(septets: &[u8], out: &mut String) {
    decode_with_tables(septets, &BASIC, &EXTENSION, out)
}

/// Decode with a given locking table and single-shift (extension) table; the national
/// language tables use this too.
pub fn decode_with_tables(
    septets: &[u8],
    locking: &[char; 128],
    single: &[(u8, char)],
    out: &mut String,
) {
    out.reserve(septets.len());
    let mut i = 0;
    while i < septets.len() {
        let s = septets[i] & 0x7F;
        if s == ESC {
            match septets.get(i + 1).map(|b| b & 0x7F) {
                Some(next) => {
                    let ext = single.iter().find(|&&(x, _)| x == next).map(|&(_, c)| c);
                    out.push(ext.unwrap_or(locking[next as usize]));
                    i += 2;
                }
                None => {
                    out.push(' ');
                    i += 1;
                }
            }
        } else {
            out.push(locking[s as usize]);
            i += 1;
        }
    }
}

/// Convenience: decode unpacked septets to a new `String`.
pub fn septets_to_string(septets: &[u8]) -> String {
    let mut s = String::with_capacity(septets.len());
    decode_septets(septets, &mut s);
    s
}

/// Octets needed to pack `septets` septets after `fill_bits` fill bits.
#[inline]
pub const fn packed_len(septets: usize, fill_bits: u8) -> usize {
    (septets * 7 + fill_bits as usize).div_ceil(8)
}

/// Pack septets LSB-first into `out`, starting with `fill_bits` zero bits. Returns the octets
/// written; spare bits of the last octet are zero. Panics only if `out` is shorter than
/// [`packed_len`], which is the caller's contract (no allocation happens here).
///
/// Eight septets are 56 bits, exactly 7 octets, so the bit offset inside every 7-octet group is
/// the same (`fill_bits`): whole groups go through one 64-bit word each.
pub fn pack_into(septets: &[u8], fill_bits: u8, out: &mut [u8]) -> usize {
    let len = packed_len(septets.len(), fill_bits);
    let out = &mut out[..len];
    let f = (fill_bits % 7) as u32;
    let mut o = 0;
    let mut rest = septets;
    // Bits of the previous group above its 56 - f that spill into the next octet group.
    let mut carry: u64 = 0;
    while rest.len() >= 8 {
        let mut acc = 0u64;
        for (k, &s) in rest[..8].iter().enumerate() {
            acc |= ((s & 0x7F) as u64) << (7 * k);
        }
        let word = (acc << f) | carry;
        out[o..o + 7].copy_from_slice(&word.to_le_bytes()[..7]);
        carry = if f == 0 { 0 } else { acc >> (56 - f) };
        o += 7;
        rest = &rest[8..];
    }
    let mut acc: u32 = carry as u32;
    let mut bits: u32 = f;
    for &s in rest {
        acc |= ((s & 0x7F) as u32) << bits;
        bits += 7;
        if bits >= 8 {
            out[o] = acc as u8;
            o += 1;
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out[o] = acc as u8;
        o += 1;
    }
    debug_assert_eq!(o, len);
    o
}

/// Pack into a new vector.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let mut v = vec![0; packed_len(septets.len(), fill_bits)];
    pack_into(septets, fill_bits, &mut v);
    v
}

/// Unpack `count` septets from `packed`, skipping `fill_bits` leading bits, into `out`.
/// Returns `count`. Never allocates.
pub fn unpack_into(
    packed: &[u8],
    count: usize,
    fill_bits: u8,
    out: &mut [u8],
) -> Result<usize, UnpackError> {
    if fill_bits > 6 {
        return Err(UnpackError::BadFill(fill_bits));
    }
    let needed = packed_len(count, fill_bits);
    if packed.len() < needed {
        return Err(UnpackError::TooShort {
            septets: count,
            fill_bits,
            needed,
            available: packed.len(),
        });
    }
    if out.len() < count {
        return Err(UnpackError::OutputTooSmall {
            septets: count,
            capacity: out.len(),
        });
    }
    let src = &packed[..needed];
    let f = fill_bits as u32;
    let mut i = 0;
    let mut byte = 0;
    // Whole groups of 8 septets through a 64-bit word (needs 8 readable octets).
    while count - i >= 8 && byte + 8 <= src.len() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&src[byte..byte + 8]);
        let w = u64::from_le_bytes(b) >> f;
        for k in 0..8 {
            out[i + k] = ((w >> (7 * k)) & 0x7F) as u8;
        }
        i += 8;
        byte += 7;
    }
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut skip = f;
    let mut bytes = src[byte..].iter();
    while i < count {
        while bits < 7 + skip {
            // `needed` guarantees enough input octets for `count` septets.
            let Some(&b) = bytes.next() else {
                return Err(UnpackError::TooShort {
                    septets: count,
                    fill_bits,
                    needed,
                    available: packed.len(),
                });
            };
            acc |= (b as u32) << bits;
            bits += 8;
        }
        if skip > 0 {
            acc >>= skip;
            bits -= skip;
            skip = 0;
        }
        out[i] = (acc & 0x7F) as u8;
        acc >>= 7;
        bits -= 7;
        i += 1;
    }
    Ok(count)
}

/// Unpack into a new vector.
pub fn unpack(packed: &[u8], count: usize, fill_bits: u8) -> Result<Vec<u8>, UnpackError> {
    let mut v = vec![0; count];
    unpack_into(packed, count, fill_bits, &mut v)?;
    Ok(v)
}

/// Fill bits needed after a UDH of `udh_octets` octets (UDHL included) so that the septets
/// start on a septet boundary (TS 23.040 §9.2.3.24).
pub const fn fill_bits_after_udh(udh_octets: usize) -> u8 {
    if udh_octets == 0 {
        0
    } else {
        ((7 - (udh_octets * 8) % 7) % 7) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_basic_char_round_trips() {
        for (i, &ch) in BASIC.iter().enumerate() {
            if i as u8 == ESC {
                continue;
            }
            assert_eq!(lookup(ch), Some(Septets::One(i as u8)), "{ch:?}");
        }
        for &(s, ch) in &EXTENSION {
            assert_eq!(lookup(ch), Some(Septets::Escaped(s)), "{ch:?}");
        }
    }

    #[test]
    fn unencodable_is_an_error_not_a_question_mark() {
        let e = septet_len("ok `x").unwrap_err();
        assert_eq!(e, Unencodable { index: 3, ch: '`' });
        assert!(septet_len("€uro {x}").is_ok());
        assert_eq!(septet_len("€").unwrap(), 2);
    }

    #[test]
    fn pack_known() {
        // "Hi" from the conformance vectors
        assert_eq!(pack(&to_septets("Hi").unwrap(), 0), vec![0xc8, 0x34]);
        assert_eq!(
            hex::encode(pack(&to_septets("1234567").unwrap(), 0)),
            "31d98c56b3dd00"
        );
    }

    #[test]
    fn unpack_rejects_short_input() {
        assert!(matches!(
            unpack(&[0x31], 3, 0),
            Err(UnpackError::TooShort { .. })
        ));
        assert!(matches!(
            unpack(&[0x31], 1, 7),
            Err(UnpackError::BadFill(7))
        ));
    }
}
