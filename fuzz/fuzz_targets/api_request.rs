#![no_main]
//! HTTP API bodies: JSON -> MessageRequest -> validation never panics.
use libfuzzer_sys::fuzz_target;
use postern::model::request::SmsConfig;
use postern::model::address::NumberPlan;
use postern::model::request::{validate, MessageRequest, Rules};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<MessageRequest>(data) else { return };
    let sms = SmsConfig::default();
    let plan = NumberPlan { country_code: Some("44".into()), trunk_prefix: "0".into(), ..NumberPlan::default() };
    let rules = Rules { sms: &sms, plan: &plan, default_validity_s: 3600, templates: &postern::model::template::NoTemplates };
    let _ = validate(req, &rules);
});
