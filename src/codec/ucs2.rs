//! UCS-2 / UTF-16BE (SMS data coding 0x08, with surrogate pairs for characters beyond the BMP)
//! and Latin-1 (SMPP data_coding 3).

use thiserror::Error;

/// Errors decoding UTF-16BE or encoding Latin-1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Ucs2Error {
    #[error("UTF-16 data has an odd length ({0} octets)")]
    OddLength(usize),
    #[error("unpaired surrogate 0x{unit:04X} at octet {offset}")]
    UnpairedSurrogate { offset: usize, unit: u16 },
    #[error("character {ch:?} at position {index} has no Latin-1 encoding")]
    NotLatin1 { index: usize, ch: char },
}

/// UTF-16 code units `text` needs (a character beyond the BMP counts 2).
pub fn unit_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Append `text` as UTF-16BE.
pub fn encode_into(text: &str, out: &mut Vec<u8>) {
    out.reserve(text.len() * 2);
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_be_bytes());
    }
}

/// `text` as UTF-16BE.
pub fn encode(text: &str) -> Vec<u8> {
    let mut v = Vec::new();
    encode_into(text, &mut v);
    v
}

/// Decode UTF-16BE strictly: an odd length or an unpaired surrogate is an error.
pub fn decode(bytes: &[u8]) -> Result<String, Ucs2Error> {
    if bytes.len() % 2 != 0 {
        return Err(Ucs2Error::OddLength(bytes.len()));
    }
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    let mut out = String::with_capacity(bytes.len() / 2);
    for (i, r) in char::decode_utf16(units).enumerate() {
        match r {
            Ok(c) => out.push(c),
            Err(e) => {
                // Find the offending unit's octet offset: count units consumed so far.
                let consumed: usize = out.chars().map(char::len_utf16).sum();
                let _ = i;
                return Err(Ucs2Error::UnpairedSurrogate {
                    offset: consumed * 2,
                    unit: e.unpaired_surrogate(),
                });
            }
        }
    }
    Ok(out)
}

/// Decode UTF-16BE leniently (U+FFFD for unpaired surrogates, a trailing odd octet dropped):
/// for display of peer data that must never be refused.
pub fn decode_lossy(bytes: &[u8]) -> String {
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Encode as ISO-8859-1.
pub fn encode_latin1(text: &str) -> Result<Vec<u8>, Ucs2Error> {
    text.chars()
        .enumerate()
        .map(|(index, ch)| u8::try_from(ch as u32).map_err(|_| Ucs2Error::NotLatin1 { index, ch }))
        .collect()
}

/// Decode ISO-8859-1 (every octet is a character).
pub fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrogate_pairs() {
        let s = "a😀";
        assert_eq!(unit_len(s), 3);
        let b = encode(s);
        assert_eq!(hex::encode(&b), "0061d83dde00");
        assert_eq!(decode(&b).unwrap(), s);
        assert!(matches!(
            decode(&b[..4]),
            Err(Ucs2Error::UnpairedSurrogate { offset: 2, .. })
        ));
        assert!(matches!(decode(&b[..3]), Err(Ucs2Error::OddLength(3))));
    }

    #[test]
    fn latin1() {
        assert_eq!(encode_latin1("café").unwrap(), b"caf\xe9");
        assert!(encode_latin1("€").is_err());
        assert_eq!(decode_latin1(b"caf\xe9"), "café");
    }
}
