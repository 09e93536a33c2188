//! Phone numbers checked against libphonenumber's metadata (the `phonenumber` crate's copy of
//! Google's `PhoneNumberMetadata.xml`): an E.164 number is valid when its national part matches
//! a number type of its country's plan (`+44 7400 123123`, Ofcom's drama range, does not;
//! `+999999999` has no country).
//!
//! Why not `phonenumber::parse` + `is_valid`: they take ~23 µs a number on this machine (every
//! regex goes through a mutex-guarded cache keyed by the pattern text), a core's worth at the
//! API's rates. The crate's metadata is used as is; what is written here is the classifier,
//! libphonenumber's `getNumberType` over regexes compiled once per region (on first use), which
//! takes well under a microsecond. Input is already E.164 (see [`super::address::NumberPlan`]).

use parking_lot::RwLock;
use phonenumber::metadata::{Database, Descriptor, Metadata};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The number types of libphonenumber that `api.sms_number_types` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    FixedLine,
    Mobile,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
}

/// A pattern as the metadata file has it, laid out over lines, without its white space
/// (libphonenumber's build strips it too).
fn compact(pattern: &str) -> String {
    pattern.chars().filter(|c| !c.is_whitespace()).collect()
}

/// One descriptor of a region: its lengths and its anchored pattern.
struct Pattern {
    lengths: Vec<u16>,
    re: Regex,
}

impl Pattern {
    fn of(d: &Descriptor) -> Option<Pattern> {
        let re = Regex::new(&format!("^(?:{})$", compact(d.national_number().as_str()))).ok()?;
        Some(Pattern { lengths: d.possible_length().to_vec(), re })
    }

    fn matches(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.re.is_match(national)
    }
}

/// A region's plan, compiled.
struct Region {
    leading: Option<Regex>,
    general: Option<Pattern>,
    /// In libphonenumber's order of precedence.
    special: Vec<(NumberType, Pattern)>,
    fixed: Option<Pattern>,
    mobile: Option<Pattern>,
    /// The fixed and mobile patterns are the same text (many plans cannot tell them apart).
    same: bool,
}

impl Region {
    fn compile(meta: &Metadata) -> Region {
        let d = meta.descriptors();
        let special = [
            (NumberType::PremiumRate, d.premium_rate()),
            (NumberType::TollFree, d.toll_free()),
            (NumberType::SharedCost, d.shared_cost()),
            (NumberType::Voip, d.voip()),
            (NumberType::PersonalNumber, d.personal_number()),
            (NumberType::Pager, d.pager()),
            (NumberType::Uan, d.uan()),
            (NumberType::Voicemail, d.voicemail()),
        ]
        .into_iter()
        .filter_map(|(t, d)| Some((t, Pattern::of(d?)?)))
        .collect();
        Region {
            leading: meta.leading_digits().and_then(|p| Regex::new(&format!("^(?:{})", compact(p.as_str()))).ok()),
            general: Pattern::of(d.general()),
            special,
            fixed: d.fixed_line().and_then(Pattern::of),
            mobile: d.mobile().and_then(Pattern::of),
            same: d.fixed_line().map(|x| x.national_number().as_str())
                == d.mobile().map(|x| x.national_number().as_str()),
        }
    }

    /// libphonenumber's `getNumberTypeHelper`.
    fn number_type(&self, national: &str) -> Option<NumberType> {
        if !self.general.as_ref()?.matches(national) {
            return None;
        }
        if let Some((t, _)) = self.special.iter().find(|(_, p)| p.matches(national)) {
            return Some(*t);
        }
        let fixed = self.fixed.as_ref().is_some_and(|p| p.matches(national));
        let mobile = self.mobile.as_ref().is_some_and(|p| p.matches(national));
        match (fixed, mobile) {
            (true, true) => Some(NumberType::FixedLineOrMobile),
            (true, false) if self.same => Some(NumberType::FixedLineOrMobile),
            (true, false) => Some(NumberType::FixedLine),
            (false, true) => Some(NumberType::Mobile),
            (false, false) => None,
        }
    }
}

/// Why a number is not in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// No country calling code starts the number.
    NoCountry,
    /// The country is known (its code is given), the number is not in its plan.
    NotInPlan(u16),
}

/// The metadata, with regions compiled as they are met.
pub struct Plans {
    db: &'static Database,
    compiled: RwLock<HashMap<String, Arc<Region>>>,
}

static PLANS: LazyLock<Plans> =
    LazyLock::new(|| Plans { db: &phonenumber::metadata::DATABASE, compiled: RwLock::new(HashMap::new()) });

impl Plans {
    /// The process's one copy.
    pub fn get() -> &'static Plans {
        &PLANS
    }

    fn region(&self, id: &str) -> Option<Arc<Region>> {
        if let Some(r) = self.compiled.read().get(id) {
            return Some(r.clone());
        }
        let meta = self.db.by_id(id)?;
        let r = Arc::new(Region::compile(meta));
        self.compiled.write().insert(id.to_string(), r.clone());
        Some(r)
    }

    /// The type of an E.164 number (`+` and digits), or why it has none.
    pub fn classify(&self, e164: &str) -> Result<NumberType, Invalid> {
        let digits = e164.strip_prefix('+').ok_or(Invalid::NoCountry)?;
        // Country calling codes are prefix-free: the first of 1, 2, 3 digits that is one is it.
        for n in 1..=3.min(digits.len()) {
            let Ok(code) = digits[..n].parse::<u16>() else { break };
            let Some(regions) = self.db.region(&code) else { continue };
            let national = &digits[n..];
            let not_in_plan = Invalid::NotInPlan(code);
            if let [only] = regions.as_slice() {
                // "001": non-geographic entities (+800, +882, …), filed by their code.
                let id = if *only == "001" {
                    self.db.by_code(&code).and_then(|m| m.first().map(|m| m.id().to_string()))
                } else {
                    Some(only.to_string())
                };
                let region = id.and_then(|id| self.region(&id)).ok_or(not_in_plan.clone())?;
                return region.number_type(national).ok_or(not_in_plan);
            }
            // Shared codes (+1, +7, +44, …): the region whose leading digits match, or the
            // first whose plan has the number.
            for id in regions {
                let Some(region) = self.region(id) else { continue };
                match &region.leading {
                    Some(leading) if leading.is_match(national) => {
                        return region.number_type(national).ok_or(not_in_plan)
                    }
                    Some(_) => {}
                    None => {
                        if let Some(t) = region.number_type(national) {
                            return Ok(t);
                        }
                    }
                }
            }
            return Err(not_in_plan);
        }
        Err(Invalid::NoCountry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_libphonenumber() {
        let p = Plans::get();
        assert_eq!(p.classify("+447400123456"), Ok(NumberType::Mobile));
        assert_eq!(p.classify("+447700900123"), Err(Invalid::NotInPlan(44)));
        assert_eq!(p.classify("+999999999"), Err(Invalid::NoCountry));
        assert_eq!(p.classify("+14155550123"), Ok(NumberType::FixedLineOrMobile));
        assert_eq!(p.classify("+33612345678"), Ok(NumberType::Mobile));
        assert_eq!(p.classify("+4915123456789"), Ok(NumberType::Mobile));
        assert_eq!(p.classify("+79161234567"), Ok(NumberType::Mobile));
        assert_eq!(p.classify("+442079460000"), Ok(NumberType::FixedLine));
        assert_eq!(p.classify("+448001111111"), Ok(NumberType::TollFree));
        // Jersey shares +44; its own plan decides.
        assert_eq!(p.classify("+447797123456"), Ok(NumberType::Mobile));
    }

    #[test]
    fn agrees_with_the_crate_where_libphonenumber_would() {
        let p = Plans::get();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for cc in ["1", "44", "33", "49", "7", "234", "91", "86", "55", "880", "61"] {
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let national = (x % 10u64.pow(9 + (x % 3) as u32)).to_string();
                let n = format!("+{cc}{national}");
                let Ok(parsed) = phonenumber::parse(None, &n) else {
                    assert!(p.classify(&n).is_err(), "{n}");
                    continue;
                };
                // The crate strips a national prefix even from an international number when
                // what is left has no valid length (+7 8…: libphonenumber keeps it); such
                // numbers are not compared.
                if parsed.national().to_string() != national {
                    continue;
                }
                // Never laxer than the crate. It can be laxer than libphonenumber: it takes a
                // pattern that matches a prefix of the number (+86 3505830215|6), where
                // libphonenumber, and this classifier, match the whole number.
                if p.classify(&n).is_ok() {
                    assert!(phonenumber::is_valid(&parsed), "{n}");
                }
            }
        }
        // Every region's own example mobile and fixed-line numbers are valid.
        let mut checked = 0;
        for meta in phonenumber::metadata::DATABASE.iter() {
            for d in [meta.descriptors().mobile(), meta.descriptors().fixed_line()].into_iter().flatten() {
                if let Some(ex) = d.example() {
                    let n = format!("+{}{ex}", meta.country_code());
                    let crate_says = phonenumber::parse(None, &n).map(|n| phonenumber::is_valid(&n)).unwrap_or(false);
                    assert_eq!(p.classify(&n).is_ok(), crate_says, "{n} ({})", meta.id());
                    checked += 1;
                }
            }
        }
        assert!(checked > 400, "{checked}");
    }
}
