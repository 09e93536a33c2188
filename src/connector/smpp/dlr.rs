//! SMPP delivery receipts: the text form (`id:… sub:… dlvrd:… submit date:… done date:… stat:…
//! err:… text:…`, SMPP 3.4 Appendix B, with the variants seen in the field: any key case,
//! missing fields, `Text:`, extra spaces, dates with or without seconds) and carrier message-id
//! normalisation (hex ↔ decimal, leading zeros, case) so that a receipt finds its message.
//! rusmpp 0.4 has no receipt parser; this one is written by hand.

use crate::model::State;
use serde::Serialize;

/// A parsed receipt text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptText {
    pub id: Option<String>,
    pub sub: Option<String>,
    pub dlvrd: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (or with `:SS` when the receipt has seconds).
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    pub text: Option<String>,
}

const KEYS: [&str; 8] = [
    "id",
    "sub",
    "dlvrd",
    "submit date",
    "done date",
    "stat",
    "err",
    "text",
];

impl ReceiptText {
    /// JSON view: `sub`, `dlvrd` and `err` as numbers when they are digits.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        for k in ["sub", "dlvrd", "err"] {
            if let Some(n) = v[k].as_str().and_then(|s| s.parse::<u64>().ok()) {
                v[k] = serde_json::json!(n);
            }
        }
        v
    }
}

/// Parse a receipt body. `None` when it has neither an id nor a stat.
pub fn parse(body: &str) -> Option<ReceiptText> {
    let lower = body.to_ascii_lowercase();
    // Find each key at a word start followed by ':' (`submit date` may also be `submit_date`).
    let mut found: Vec<(usize, usize, &str)> = Vec::new(); // (key start, value start, key)
    for key in KEYS {
        for variant in [key.to_string(), key.replace(' ', "_")] {
            let mut from = 0;
            while let Some(i) = lower[from..].find(&variant) {
                let start = from + i;
                let at_word = start == 0 || !lower.as_bytes()[start - 1].is_ascii_alphanumeric();
                let after = &lower[start + variant.len()..];
                let colon = after.len() - after.trim_start().len();
                if at_word && after.trim_start().starts_with(':') {
                    if !found.iter().any(|(s, _, _)| *s == start) {
                        found.push((start, start + variant.len() + colon + 1, key));
                    }
                    break;
                }
                from = start + variant.len();
            }
        }
    }
    // "text:" ends the receipt: later keys inside the text are not keys.
    found.sort_by_key(|(s, _, _)| *s);
    if let Some(t) = found.iter().position(|(_, _, k)| *k == "text") {
        found.truncate(t + 1);
    }
    let mut r = ReceiptText::default();
    for (n, &(_, vstart, key)) in found.iter().enumerate() {
        let vend = found.get(n + 1).map_or(body.len(), |(s, _, _)| *s);
        let raw = body.get(vstart..vend).unwrap_or("");
        // `text:` is a fixed 20-character field: kept exactly, trailing spaces included.
        let v = if key == "text" {
            raw.to_string()
        } else {
            raw.split_whitespace().next().unwrap_or("").to_string()
        };
        let slot = match key {
            "id" => &mut r.id,
            "sub" => &mut r.sub,
            "dlvrd" => &mut r.dlvrd,
            "submit date" => &mut r.submit_date,
            "done date" => &mut r.done_date,
            "stat" => &mut r.stat,
            "err" => &mut r.err,
            _ => &mut r.text,
        };
        if slot.is_none() {
            *slot = Some(match key {
                "submit date" | "done date" => format_date(&v).unwrap_or(v),
                _ => v,
            });
        }
    }
    (r.id.is_some() || r.stat.is_some()).then_some(r)
}

/// The `YYMMDDhhmm` (UTC) form receipt texts use for `submit date` and `done date`.
pub fn receipt_date(ms: i64) -> String {
    let s = crate::time::rfc3339(ms);
    format!(
        "{}{}{}{}{}",
        &s[2..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16]
    )
}

/// `YYMMDDhhmm[ss]` -> `20YY-MM-DDThh:mm[:ss]`.
fn format_date(v: &str) -> Option<String> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d = |r: std::ops::Range<usize>| v.get(r);
    match v.len() {
        10 => Some(format!(
            "20{}-{}-{}T{}:{}",
            d(0..2)?,
            d(2..4)?,
            d(4..6)?,
            d(6..8)?,
            d(8..10)?
        )),
        12 => Some(format!(
            "20{}-{}-{}T{}:{}:{}",
            d(0..2)?,
            d(2..4)?,
            d(4..6)?,
            d(6..8)?,
            d(8..10)?,
            d(10..12)?
        )),
        _ => None,
    }
}

/// The message state a receipt `stat` (or `message_state` TLV) means. `None` for
/// intermediate states (ENROUTE, ACCEPTD) that are not final.
pub fn stat_state(stat: &str) -> Option<State> {
    match stat.trim().to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" => Some(State::Delivered),
        "EXPIRED" => Some(State::Expired),
        "UNDELIV" | "UNDELIVERABLE" | "DELETED" | "UNKNOWN" => Some(State::Undelivered),
        "REJECTD" | "REJECTED" => Some(State::Failed),
        _ => None,
    }
}

/// SMPP `message_state` TLV values (SMPP 3.4 §5.2.28).
pub fn message_state(v: u8) -> Option<State> {
    match v {
        2 => Some(State::Delivered),
        3 => Some(State::Expired),
        4 | 5 | 7 => Some(State::Undelivered), // deleted, undeliverable, unknown
        8 => Some(State::Failed),              // rejected
        _ => None,                             // enroute, accepted, skipped
    }
}

/// How a carrier writes message ids in receipts compared with `submit_sm_resp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    /// Compare as given, ignoring case and leading zeros.
    #[default]
    AsIs,
    /// `submit_sm_resp` gives hex, receipts decimal.
    HexToDecimal,
    /// `submit_sm_resp` gives decimal, receipts hex.
    DecimalToHex,
}

/// Normalise an id from `submit_sm_resp` or a receipt to the form stored in the remote index:
/// lowercase, leading zeros stripped, and, per carrier, hex/decimal made uniform (we store the
/// decimal form for the hex/decimal carriers).
pub fn normalize_id(id: &str, format: IdFormat, from_receipt: bool) -> String {
    let t = id.trim();
    let converted = match (format, from_receipt) {
        (IdFormat::HexToDecimal, false) => u128::from_str_radix(t, 16).ok().map(|v| v.to_string()),
        (IdFormat::DecimalToHex, true) => u128::from_str_radix(t, 16).ok().map(|v| v.to_string()),
        _ => None,
    };
    let s = converted.unwrap_or_else(|| t.to_ascii_lowercase());
    let stripped = s.trim_start_matches('0');
    if stripped.is_empty() && !s.is_empty() {
        "0".to_string()
    } else {
        stripped.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_variants() {
        let r = parse("id:1a2b3c4d sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:Hello world").unwrap();
        assert_eq!(r.id.as_deref(), Some("1a2b3c4d"));
        assert_eq!(r.submit_date.as_deref(), Some("2025-01-01T12:00"));
        assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(r.text.as_deref(), Some("Hello world"));
        let r = parse("ID:42 SUB:1 DLVRD:0 SUBMIT_DATE:250101120030 DONE_DATE:250101120131 STAT:UNDELIV ERR:034 Text:stat:x id:y").unwrap();
        assert_eq!(r.to_json()["err"], 34);
        assert_eq!(
            (r.id.as_deref(), r.err.as_deref(), r.text.as_deref()),
            (Some("42"), Some("034"), Some("stat:x id:y"))
        );
        assert_eq!(r.done_date.as_deref(), Some("2025-01-01T12:01:31"));
        assert!(parse("hello there").is_none());
        assert_eq!(
            parse("id:7 stat:EXPIRED").unwrap().stat.as_deref(),
            Some("EXPIRED")
        );
        assert_eq!(stat_state("delivrd"), Some(State::Delivered));
        assert_eq!(stat_state("ENROUTE"), None);
    }

    #[test]
    fn ids() {
        assert_eq!(normalize_id("000ABC", IdFormat::AsIs, false), "abc");
        assert_eq!(normalize_id("ff", IdFormat::HexToDecimal, false), "255");
        assert_eq!(normalize_id("255", IdFormat::HexToDecimal, true), "255");
        assert_eq!(normalize_id("255", IdFormat::DecimalToHex, false), "255");
        assert_eq!(normalize_id("FF", IdFormat::DecimalToHex, true), "255");
        assert_eq!(normalize_id("000", IdFormat::AsIs, true), "0");
    }
}
