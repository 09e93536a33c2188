//! Reading the modem's answers: identity lines, `+CREG`/`+CSQ` values, storage indices, and
//! status-report states.

use super::*;

/// The value after `PREFIX:` in the first line that has it.
pub(super) fn field<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim())
}

/// A bare identification answer (`AT+CGMI` may answer `+CGMI: "huawei"` or `huawei`).
pub(super) fn ident(lines: &[String], prefix: &str) -> Option<String> {
    let l = lines.iter().find(|l| !l.trim().is_empty())?;
    let v = l
        .strip_prefix(prefix)
        .unwrap_or(l)
        .trim()
        .trim_matches('"')
        .trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// Registration state of a `+CREG:`/`+CGREG:`/`+CEREG:` line: the query answer is `n,stat,…`,
/// the URC `stat,…`.
pub fn reg_stat(value: &str, query: bool) -> Option<u8> {
    let mut it = value.split(',').map(|x| x.trim());
    if query {
        it.next();
    }
    it.next()?.parse().ok()
}

/// dBm from `+CSQ: <rssi>,<ber>` (27.007: -113 + 2·rssi; 99 unknown).
pub fn csq_dbm(value: &str) -> Option<i32> {
    let rssi: i32 = value.split(',').next()?.trim().parse().ok()?;
    (0..=31).contains(&rssi).then_some(-113 + 2 * rssi)
}

/// `"SM",3` → ("SM", 3).
pub(super) fn mem_index(value: &str) -> Option<(String, u32)> {
    let (m, i) = value.split_once(',')?;
    Some((
        m.trim().trim_matches('"').to_string(),
        i.trim().parse().ok()?,
    ))
}

/// TP-ST → final state (None while the SC is still trying).
pub fn status_state(st: u8) -> Option<(State, Option<String>)> {
    match st {
        0x00..=0x1F => Some((State::Delivered, None)),
        0x20..=0x3F => None,
        0x46 => Some((State::Expired, Some(format!("{st:02x}")))),
        _ => Some((State::Undelivered, Some(format!("{st:02x}")))),
    }
}

pub(super) fn digits(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_digit()).collect()
}
