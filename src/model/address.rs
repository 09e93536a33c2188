//! Addresses: the typed [`Address`] every channel uses, and the checks of the SMS channel's
//! destination (E.164 or a configured national format) and sender (E.164, short code, or
//! alphanumeric of at most 11 GSM characters).

use crate::codec::gsm7;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use super::phone::{Invalid, NumberType, Plans};

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
    /// Where a social post goes: `public`, `unlisted`, `followers` (an audience), `@user` or
    /// `@user@instance` (a mention, sent direct), `dm:<account id>` (a direct message).
    Social(String),
}

impl Address {
    pub fn as_str(&self) -> &str {
        match self {
            Address::Msisdn(s)
            | Address::Alphanumeric(s)
            | Address::Email(s)
            | Address::Jid(s)
            | Address::Url(s)
            | Address::User(s)
            | Address::Social(s) => s,
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

/// An address reads as its text (`+447400123123`, `alerts@example.org`).
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
    #[error("{0:?} has no country calling code")]
    NoCountry(String),
    #[error("{0:?} is not a number in the numbering plan of +{1}")]
    NotInPlan(String, u16),
    #[error("{0:?} is a {1:?} number, not one of the allowed types {2:?}")]
    NumberType(String, NumberType, Vec<NumberType>),
    #[error(
        "sender {0:?} is not an E.164 number, a short code (3-8 digits) or 1-11 GSM characters"
    )]
    BadSender(String),
}

/// How national numbers are turned into E.164, and how E.164 numbers are checked.
#[derive(Debug, Clone, Default)]
pub struct NumberPlan {
    pub country_code: Option<String>,
    pub trunk_prefix: String,
    pub check: NumberCheck,
}

/// How far a destination number is checked (`api.sms_number_check`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NumberCheck {
    /// Valid in its country's plan (libphonenumber's metadata), of one of the types if given
    /// (`api.sms_number_types`).
    #[default]
    Plan,
    PlanTypes(Vec<NumberType>),
    /// Only the E.164 shape: `+` and 8–15 digits (for ranges the metadata does not know yet).
    Shape,
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
        if !is_e164(&candidate) {
            return Err(AddressError::NotE164(raw.to_string()));
        }
        let types = match &self.check {
            NumberCheck::Shape => return Ok(candidate),
            NumberCheck::Plan => &[][..],
            NumberCheck::PlanTypes(t) => t.as_slice(),
        };
        match Plans::get().classify(&candidate) {
            Ok(t) if types.is_empty() || types.contains(&t) => Ok(candidate),
            Ok(t) => Err(AddressError::NumberType(raw.to_string(), t, types.to_vec())),
            Err(Invalid::NoCountry) => Err(AddressError::NoCountry(raw.to_string())),
            Err(Invalid::NotInPlan(cc)) => Err(AddressError::NotInPlan(raw.to_string(), cc)),
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
        let plain = NumberPlan { check: NumberCheck::Shape, ..NumberPlan::default() };
        assert_eq!(plain.destination("+447400123123").unwrap(), "+447400123123");
        assert_eq!(
            plain.destination("+44 7400-123123").unwrap(),
            "+447400123123"
        );
        // The shape check passes a number outside every plan (Ofcom's drama range).
        assert!(plain.destination("+447700900123").is_ok());
        assert_eq!(
            plain.destination("00447400123123").unwrap(),
            "+447400123123"
        );
        assert!(plain.destination("07400123123").is_err());
        assert!(plain.destination("+1234567").is_err());
        assert!(plain.destination("+1234567890123456").is_err());
        assert!(plain.destination("+44740012312a").is_err());
        assert!(plain.destination("").is_err());
        let uk = NumberPlan {
            country_code: Some("44".into()),
            trunk_prefix: "0".into(),
            check: NumberCheck::Shape,
        };
        assert_eq!(uk.destination("07400123123").unwrap(), "+447400123123");
    }

    #[test]
    fn destinations_in_the_plan() {
        let plan = NumberPlan { country_code: Some("44".into()), trunk_prefix: "0".into(), ..NumberPlan::default() };
        assert_eq!(plan.destination("07400 123456").unwrap(), "+447400123456");
        assert_eq!(plan.destination("+447700900123"), Err(AddressError::NotInPlan("+447700900123".into(), 44)));
        assert_eq!(plan.destination("+999999999"), Err(AddressError::NoCountry("+999999999".into())));
        let mobiles = NumberPlan { check: NumberCheck::PlanTypes(vec![NumberType::Mobile]), ..NumberPlan::default() };
        assert!(mobiles.destination("+447400123456").is_ok());
        assert!(matches!(mobiles.destination("+442079460000"), Err(AddressError::NumberType(_, NumberType::FixedLine, _))));
    }

    #[test]
    fn senders() {
        assert!(validate_sender("Postern").is_ok());
        assert!(validate_sender("+447400123123").is_ok());
        assert!(validate_sender("12345").is_ok());
        assert!(validate_sender("TwelveChars!").is_err());
        assert!(validate_sender("").is_err());
        assert!(validate_sender("Ünïcødé`").is_err());
    }
}
