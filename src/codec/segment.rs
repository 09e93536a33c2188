//! Measuring and splitting text into SMS segments (TS 23.040 §9.2.3.24.1 concatenation).
//!
//! A single SMS carries 140 octets of user data: 160 GSM septets or 70 UCS-2 code units. Each
//! part of a concatenated message gives up 6 octets (8-bit reference) or 7 (16-bit reference)
//! to the UDH: 153/67/134 or 152/66/133. An escape sequence or a surrogate pair is never split.

use super::{gsm7, ucs2};

/// The coding a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    /// GSM 03.38 default alphabet (TP-DCS 0x00).
    Gsm7,
    /// UCS-2 / UTF-16BE (TP-DCS 0x08).
    Ucs2,
    /// 8-bit data (TP-DCS 0x04).
    Binary,
}

/// Octets of user data in one SMS.
pub const USER_DATA_OCTETS: usize = 140;

/// Size of the concatenation reference in the UDH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcatRef {
    Bits8,
    Bits16,
}

impl ConcatRef {
    /// UDH octets used by the concatenation IE, UDHL included.
    pub const fn udh_octets(self) -> usize {
        match self {
            ConcatRef::Bits8 => 6,
            ConcatRef::Bits16 => 7,
        }
    }
}

/// Capacity of one segment in the coding's units (septets, UTF-16 units or octets).
pub const fn capacity(coding: Coding, udh_octets: usize) -> usize {
    let octets = USER_DATA_OCTETS - udh_octets;
    match coding {
        Coding::Gsm7 => (octets * 8 - gsm7::fill_bits_after_udh(udh_octets) as usize) / 7,
        Coding::Ucs2 => octets / 2,
        Coding::Binary => octets,
    }
}

/// What a text costs to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub coding: Coding,
    /// Septets (GSM) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

/// Choose the cheapest coding for `text` (GSM 03.38 when every character has an encoding,
/// else UCS-2) and count its segments with 8-bit concatenation references.
pub fn measure(text: &str) -> Measure {
    // The whole text is walked once when it fits one SMS (nearly always), twice otherwise.
    let (coding, units) = match gsm7::septet_len(text) {
        Ok(units) => (Coding::Gsm7, units),
        Err(_) => (Coding::Ucs2, ucs2::unit_len(text)),
    };
    Measure { coding, units, segments: segments(text, coding, units) }
}

/// `text` cut (at a character) to fit `max` segments.
pub fn fit(text: &str, max: usize) -> String {
    if measure(text).segments <= max {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let s: String = chars[..mid].iter().collect();
        if measure(&s).segments <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    chars[..lo].iter().collect()
}

/// Number of segments `text` takes in `coding` (8-bit concatenation reference).
pub fn count(text: &str, coding: Coding) -> usize {
    segments(text, coding, units(text, coding))
}

/// Segments of a text of `units` in `coding`: the parts are walked only when it needs more
/// than one SMS.
fn segments(text: &str, coding: Coding, units: usize) -> usize {
    if units <= capacity(coding, 0) {
        1
    } else {
        parts(text, coding, ConcatRef::Bits8, |_| {})
    }
}

/// Split `text` into the parts it is sent as. One part if it fits a single SMS. Each part is a
/// `&str` slice of `text`; a character is never cut, so escapes and surrogate pairs stay whole.
/// For `Coding::Binary` the text's UTF-8 bytes are measured.
pub fn split(text: &str, coding: Coding, reference: ConcatRef) -> Vec<&str> {
    let total = units(text, coding);
    if total <= capacity(coding, 0) {
        return vec![text];
    }
    let mut out = Vec::with_capacity(total / capacity(coding, reference.udh_octets()) + 1);
    parts(text, coding, reference, |p| out.push(p));
    out
}

/// What one character costs in `coding` (an unencodable one counts as an escape in GSM).
fn cost(ch: char, coding: Coding) -> usize {
    match coding {
        Coding::Gsm7 => gsm7::lookup(ch).map_or(2, |s| s.len()),
        Coding::Ucs2 => ch.len_utf16(),
        Coding::Binary => ch.len_utf8(),
    }
}

fn units(text: &str, coding: Coding) -> usize {
    text.chars().map(|ch| cost(ch, coding)).sum()
}

/// Cut a text too long for one SMS into concatenated parts, handing each to `part`; returns
/// how many there are.
fn parts<'t>(text: &'t str, coding: Coding, reference: ConcatRef, mut part: impl FnMut(&'t str)) -> usize {
    let cap = capacity(coding, reference.udh_octets());
    let mut n = 0;
    let mut start = 0;
    let mut used = 0;
    for (i, ch) in text.char_indices() {
        let c = cost(ch, coding);
        if used + c > cap {
            part(&text[start..i]);
            n += 1;
            start = i;
            used = 0;
        }
        used += c;
    }
    if start < text.len() {
        part(&text[start..]);
        n += 1;
    }
    n.max(1)
}

/// Split binary data into parts of at most `capacity(Binary, udh)` octets.
pub fn split_binary(data: &[u8], reference: ConcatRef) -> Vec<&[u8]> {
    if data.len() <= USER_DATA_OCTETS {
        return vec![data];
    }
    data.chunks(capacity(Coding::Binary, reference.udh_octets()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_at_a_character_to_the_segments() {
        let long = "é".repeat(500);
        let cut = fit(&long, 2);
        assert!(measure(&cut).segments <= 2 && cut.chars().count() > 100);
        assert_eq!(fit("short", 1), "short");
    }

    #[test]
    fn capacities() {
        assert_eq!(capacity(Coding::Gsm7, 0), 160);
        assert_eq!(capacity(Coding::Gsm7, 6), 153);
        assert_eq!(capacity(Coding::Gsm7, 7), 152);
        assert_eq!(capacity(Coding::Ucs2, 0), 70);
        assert_eq!(capacity(Coding::Ucs2, 6), 67);
        assert_eq!(capacity(Coding::Binary, 6), 134);
    }

    #[test]
    fn measure_counts() {
        assert_eq!(measure(&"a".repeat(160)).segments, 1);
        assert_eq!(measure(&"a".repeat(161)).segments, 2);
        assert_eq!(measure(&"a".repeat(306)).segments, 2);
        assert_eq!(measure(&"a".repeat(307)).segments, 3);
        // extension chars count twice
        assert_eq!(measure(&"€".repeat(80)).segments, 1);
        assert_eq!(measure(&"€".repeat(81)).segments, 2);
        let m = measure("привет");
        assert_eq!((m.coding, m.units, m.segments), (Coding::Ucs2, 6, 1));
        assert_eq!(measure(&"ж".repeat(71)).segments, 2);
        assert_eq!(measure("").segments, 1);
    }

    #[test]
    fn never_splits_escape_or_surrogate() {
        let t = format!("{}€", "a".repeat(152)) + &"b".repeat(10);
        let p = split(&t, Coding::Gsm7, ConcatRef::Bits8);
        assert_eq!(p[0], "a".repeat(152)); // € would need septets 153-154
        let t = format!("{}😀x", "a".repeat(66)) + &"b".repeat(10);
        let p = split(&t, Coding::Ucs2, ConcatRef::Bits8);
        assert_eq!(p[0], "a".repeat(66));
        assert!(p[1].starts_with('😀'));
    }

    /// Counting (without building the parts) agrees with splitting, across the boundaries.
    #[test]
    fn counts_agree_with_splits() {
        for unit in ["a", "€", "ж", "😀", "a€"] {
            for n in [0, 1, 69, 70, 71, 80, 81, 134, 153, 160, 161, 306, 307, 459, 460] {
                let t = unit.repeat(n);
                for coding in [Coding::Gsm7, Coding::Ucs2, Coding::Binary] {
                    let parts = split(&t, coding, ConcatRef::Bits8);
                    assert_eq!(count(&t, coding), parts.len(), "{unit:?} x {n} in {coding:?}");
                    assert_eq!(parts.concat(), t);
                }
                let m = measure(&t);
                assert_eq!(m.segments, split(&t, m.coding, ConcatRef::Bits8).len(), "{unit:?} x {n}");
            }
        }
    }
}
