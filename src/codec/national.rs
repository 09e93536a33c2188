//! TS 23.038 national language shift tables (Annex A): locking shift tables replace the default
//! alphabet, single shift tables replace the extension table; a UDH information element (0x25
//! locking, 0x24 single shift, TS 23.040 §9.2.3.24.15/16) tells the receiver which are in use.
//! Implemented: Turkish (1: locking + single), Spanish (2: single only), Portuguese (3: locking
//! + single). Written by hand from the specification's tables.

use super::gsm7::{self, Unencodable, BASIC, ESC, EXTENSION};

/// National language identifiers (TS 23.038 §6.2.1.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Default,
    Turkish,
    Spanish,
    Portuguese,
}

impl Language {
    pub fn id(self) -> u8 {
        match self {
            Language::Default => 0,
            Language::Turkish => 1,
            Language::Spanish => 2,
            Language::Portuguese => 3,
        }
    }
    /// Unknown identifiers fall back to the default tables, as TS 23.038 asks of receivers.
    pub fn from_id(id: u8) -> Language {
        match id {
            1 => Language::Turkish,
            2 => Language::Spanish,
            3 => Language::Portuguese,
            _ => Language::Default,
        }
    }
    pub const NATIONAL: [Language; 3] =
        [Language::Turkish, Language::Spanish, Language::Portuguese];
}

/// A.3.1 Turkish locking shift table.
const TURKISH_LOCKING: [char; 128] = [
    '@', '£', '$', '¥', '€', 'é', 'ù', 'ı', 'ò', 'Ç', '\n', 'Ğ', 'ğ', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{a0}', 'Ş', 'ş', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    'İ', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    'ç', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// A.3.3 Portuguese locking shift table.
const PORTUGUESE_LOCKING: [char; 128] = [
    '@', '£', '$', '¥', 'ê', 'é', 'ú', 'í', 'ó', 'ç', '\n', 'Ô', 'ô', '\r', 'Á', 'á', //
    'Δ', '_', 'ª', 'Ç', 'À', '∞', '^', '\\', '€', 'Ó', '|', '\u{a0}', 'Â', 'â', 'Ê', 'É', //
    ' ', '!', '"', '#', 'º', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    'Í', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ã', 'Õ', 'Ú', 'Ü', '§', //
    '~', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ã', 'õ', '`', 'ü', 'à', //
];

/// A.2.1 Turkish single shift table.
const TURKISH_SINGLE: [(u8, char); 17] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x47, 'Ğ'),
    (0x49, 'İ'),
    (0x53, 'Ş'),
    (0x63, 'ç'),
    (0x65, '€'),
    (0x67, 'ğ'),
    (0x69, 'ı'),
    (0x73, 'ş'),
];

/// A.2.2 Spanish single shift table.
const SPANISH_SINGLE: [(u8, char); 19] = [
    (0x09, 'ç'),
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x41, 'Á'),
    (0x49, 'Í'),
    (0x4F, 'Ó'),
    (0x55, 'Ú'),
    (0x61, 'á'),
    (0x65, '€'),
    (0x69, 'í'),
    (0x6F, 'ó'),
    (0x75, 'ú'),
];

/// A.2.3 Portuguese single shift table.
const PORTUGUESE_SINGLE: [(u8, char); 35] = [
    (0x09, 'ç'),
    (0x0A, '\u{0c}'),
    (0x0B, 'Ô'),
    (0x0C, 'ô'),
    (0x0E, 'Á'),
    (0x0F, 'á'),
    (0x12, 'Φ'),
    (0x13, 'Γ'),
    (0x14, '^'),
    (0x15, 'Ω'),
    (0x16, 'Π'),
    (0x17, 'Ψ'),
    (0x18, 'Σ'),
    (0x19, 'Θ'),
    (0x1F, 'Ê'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x41, 'À'),
    (0x49, 'Í'),
    (0x4F, 'Ó'),
    (0x55, 'Ú'),
    (0x5B, 'Ã'),
    (0x5C, 'Õ'),
    (0x61, 'Â'),
    (0x65, '€'),
    (0x69, 'í'),
    (0x6F, 'ó'),
    (0x75, 'ú'),
    (0x7B, 'ã'),
    (0x7C, 'õ'),
];

/// The table pair a message is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub locking: Language,
    pub single: Language,
}

impl Shift {
    pub const DEFAULT: Shift = Shift {
        locking: Language::Default,
        single: Language::Default,
    };

    fn locking_table(self) -> &'static [char; 128] {
        match self.locking {
            Language::Turkish => &TURKISH_LOCKING,
            Language::Portuguese => &PORTUGUESE_LOCKING,
            _ => &BASIC,
        }
    }

    fn single_table(self) -> &'static [(u8, char)] {
        match self.single {
            Language::Turkish => &TURKISH_SINGLE,
            Language::Spanish => &SPANISH_SINGLE,
            Language::Portuguese => &PORTUGUESE_SINGLE,
            Language::Default => &EXTENSION,
        }
    }

    /// UDH octets the shift IEs take (3 per non-default table).
    pub fn udh_octets(self) -> usize {
        3 * (self.locking != Language::Default) as usize
            + 3 * (self.single != Language::Default) as usize
    }

    fn lookup(self, ch: char) -> Option<gsm7::Septets> {
        if self == Shift::DEFAULT {
            return gsm7::lookup(ch);
        }
        if ch != '\u{a0}' {
            if let Some(i) = self.locking_table().iter().position(|&c| c == ch) {
                return Some(gsm7::Septets::One(i as u8));
            }
        }
        self.single_table()
            .iter()
            .find(|&&(_, c)| c == ch)
            .map(|&(s, _)| gsm7::Septets::Escaped(s))
    }

    /// Septets `text` needs with these tables.
    pub fn septet_len(self, text: &str) -> Result<usize, Unencodable> {
        let mut n = 0;
        for (index, ch) in text.chars().enumerate() {
            n += self.lookup(ch).ok_or(Unencodable { index, ch })?.len();
        }
        Ok(n)
    }

    /// Append the septets of `text`.
    pub fn encode(self, text: &str, out: &mut Vec<u8>) -> Result<(), Unencodable> {
        for (index, ch) in text.chars().enumerate() {
            match self.lookup(ch).ok_or(Unencodable { index, ch })? {
                gsm7::Septets::One(s) => out.push(s),
                gsm7::Septets::Escaped(s) => {
                    out.push(ESC);
                    out.push(s);
                }
            }
        }
        Ok(())
    }

    /// Decode septets. An escape to a septet the single shift table lacks decodes as the
    /// locking table's character (TS 23.038 §6.2.1.1).
    pub fn decode(self, septets: &[u8], out: &mut String) {
        gsm7::decode_with_tables(septets, self.locking_table(), self.single_table(), out)
    }
}

/// The GSM table pair for `text`: the default alphabet whenever it can encode the text (every
/// handset has it); otherwise the cheapest national shift among `allowed` (single shift, then
/// locking + single), counting the UDH the shift needs. `None` when no pair encodes it (send
/// UCS-2). Returns the pair and its cost in septets.
pub fn choose(text: &str, allowed: &[Language]) -> Option<(Shift, usize)> {
    if let Ok(n) = Shift::DEFAULT.septet_len(text) {
        return Some((Shift::DEFAULT, n));
    }
    let mut candidates = Vec::new();
    for &l in allowed {
        candidates.push(Shift {
            locking: Language::Default,
            single: l,
        });
    }
    for &l in allowed {
        if matches!(l, Language::Turkish | Language::Portuguese) {
            candidates.push(Shift {
                locking: l,
                single: l,
            });
        }
    }
    candidates
        .into_iter()
        .filter_map(|s| {
            s.septet_len(text)
                .ok()
                .map(|n| (s, n + (s.udh_octets() * 8).div_ceil(7)))
        })
        .min_by_key(|&(_, cost)| cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turkish_round_trip_and_choice() {
        let t = "Işık ğüzel Şeker çay €";
        assert!(!gsm7::encodable(t));
        let (shift, _) = choose(t, &Language::NATIONAL).unwrap();
        let mut s = Vec::new();
        shift.encode(t, &mut s).unwrap();
        let mut back = String::new();
        shift.decode(&s, &mut back);
        assert_eq!(back, t);
        assert_eq!(shift.locking, Language::Turkish);
    }

    #[test]
    fn spanish_single_shift_is_enough() {
        let t = "Buenos días, ¿qué tal? Canción";
        let (shift, _) = choose(t, &Language::NATIONAL).unwrap();
        assert_eq!(
            shift,
            Shift {
                locking: Language::Default,
                single: Language::Spanish
            }
        );
        let mut s = Vec::new();
        shift.encode(t, &mut s).unwrap();
        assert!(s.contains(&ESC));
        let mut back = String::new();
        shift.decode(&s, &mut back);
        assert_eq!(back, t);
    }

    #[test]
    fn portuguese_and_fallback() {
        let t = "Informações: não, você";
        let (shift, _) = choose(t, &Language::NATIONAL).unwrap();
        let mut s = Vec::new();
        shift.encode(t, &mut s).unwrap();
        let mut back = String::new();
        shift.decode(&s, &mut back);
        assert_eq!(back, t);
        assert!(choose("Привет", &Language::NATIONAL).is_none());
        assert_eq!(
            choose("plain", &Language::NATIONAL).unwrap().0,
            Shift::DEFAULT
        );
    }
}
