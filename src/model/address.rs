//! Addresses: the typed [`Address`] every channel uses, and the checks of the SMS channel's
//! destination (E.164 or a configured national format) and sender (E.164, short code, or
//! alphanumeric of at most 11 GSM characters).

use crate::codec::gsm7;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where a message goes or comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Address {
    /// A phone number (E.164 with `+`) or a short code (digits).
    Msisdn(String),
    /// An alphanumeric SMS sender.
    Alphanumeric(String),
    Email(String),
    /// An XMPP address.
    Jid(String),
    /// An HTTP endpoint.
    Url(String),
    /// A Postern user (an inbox).
    User(String),
}

impl Address {
    pub fn as_str(&self) -> &str {
        match self {
            Address::Msisdn(s)
            | Address::Alphanumeric(s)
            | Address::Email(s)
            | Address::Jid(s)
            | Address::Url(s)
            | Address::User(s) => s,
        }
    }
    /// An SMS address as it is: `+` and digits, or digits, is a number; anything else is an
    /// alphanumeric sender.
    pub fn sms(s: impl Into<String>) -> Address {
        let s = s.into();
        let digits = s.strip_prefix('+').unwrap_or(&s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            Address::Msisdn(s)
        } else {
            Address::Alphanumeric(s)
        }
    }
}

/// An address reads as its text (`+447700900123`, `alerts@example.org`).
impl std::ops::Deref for Address {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("empty number")]
    Empty,
    #[error("{0:?} is not an E.164 number (+ and 8-15 digits)")]
    NotE164(String),
    #[error(
        "sender {0:?} is not an E.164 number, a short code (3-8 digits) or 1-11 GSM characters"
    )]
    BadSender(String),
}

/// How national numbers are turned into E.164.
#[derive(Debug, Clone, Default)]
pub struct NumberPlan {
    pub country_code: Option<String>,
    pub trunk_prefix: String,
}

fn is_e164(s: &str) -> bool {
    match s.strip_prefix('+') {
        Some(d) => {
            (8..=15).contains(&d.len())
                && d.bytes().all(|b| b.is_ascii_digit())
                && !d.starts_with('0')
        }
        None => false,
    }
}

impl NumberPlan {
    /// Normalise a destination to E.164: spaces, dashes, dots and parentheses are dropped, `00`
    /// becomes `+`, and with a country code a national number (trunk prefix + digits) is
    /// converted.
    pub fn destination(&self, raw: &str) -> Result<String, AddressError> {
        let raw_trimmed = raw.trim();
        let mut cleaned = String::with_capacity(raw_trimmed.len());
        cleaned.extend(raw_trimmed.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')));
        if cleaned.is_empty() {
            return Err(AddressError::Empty);
        }
        let candidate = if cleaned.starts_with('+') {
            cleaned
        } else if let Some(rest) = cleaned.strip_prefix("00") {
            format!("+{rest}")
        } else if let (Some(cc), Some(national)) = (
            &self.country_code,
            cleaned.strip_prefix(self.trunk_prefix.as_str()),
        ) {
            if self.trunk_prefix.is_empty() {
                return Err(AddressError::NotE164(raw.to_string()));
            }
            format!("+{cc}{national}")
        } else {
            return Err(AddressError::NotE164(raw.to_string()));
        };
        if is_e164(&candidate) {
            Ok(candidate)
        } else {
            Err(AddressError::NotE164(raw.to_string()))
        }
    }
}

/// Check a sender: E.164, a short code, or alphanumeric (≤ 11 GSM 03.38 characters).
pub fn validate_sender(s: &str) -> Result<(), AddressError> {
    if is_e164(s) {
        return Ok(());
    }
    if (3..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    match gsm7::septet_len(s) {
        Ok(n) if !s.is_empty() && n <= 11 && s.chars().count() <= 11 && !s.starts_with('+') => {
            Ok(())
        }
        _ => Err(AddressError::BadSender(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let plain = NumberPlan::default();
        assert_eq!(plain.destination("+447700900123").unwrap(), "+447700900123");
        assert_eq!(
            plain.destination("+44 7700-900123").unwrap(),
            "+447700900123"
        );
        assert_eq!(
            plain.destination("00447700900123").unwrap(),
            "+447700900123"
        );
        assert!(plain.destination("07700900123").is_err());
        assert!(plain.destination("+1234567").is_err());
        assert!(plain.destination("+1234567890123456").is_err());
        assert!(plain.destination("+44770090012a").is_err());
        assert!(plain.destination("").is_err());
        let uk = NumberPlan {
            country_code: Some("44".into()),
            trunk_prefix: "0".into(),
        };
        assert_eq!(uk.destination("07700900123").unwrap(), "+447700900123");
    }

    #[test]
    fn senders() {
        assert!(validate_sender("Postern").is_ok());
        assert!(validate_sender("+447700900123").is_ok());
        assert!(validate_sender("12345").is_ok());
        assert!(validate_sender("TwelveChars!").is_err());
        assert!(validate_sender("").is_err());
        assert!(validate_sender("Ünïcødé`").is_err());
    }
}
