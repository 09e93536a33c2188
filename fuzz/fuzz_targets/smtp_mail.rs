#![no_main]
//! Mail received by the SMTP listener: MIME parsing, bounce (DSN) reading and the SMS made of a
//! mail never panic, and an SMS that is made fits the segments asked for.
use libfuzzer_sys::fuzz_target;
use postern::connector::smtp_server::config::SmsBody;
use postern::connector::smtp_server::sms_of_mail;

fuzz_target!(|data: &[u8]| {
    let _ = postern::model::email::address(&String::from_utf8_lossy(data));
    let Some(mail) = mail_parser::MessageParser::default().parse(data) else { return };
    let _ = postern::connector::smtp_server::dsn::read(&mail, data);
    for (body, max) in [(SmsBody::Subject, 1), (SmsBody::Text, 3), (SmsBody::SubjectAndText, 2)] {
        if let Ok((_, sms)) = sms_of_mail(&mail, body, max) {
            assert!(sms.segments as usize <= max);
        }
    }
});
