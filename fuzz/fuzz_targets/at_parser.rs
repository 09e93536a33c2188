#![no_main]
//! AT response parser: arbitrary bytes in arbitrary chunks, with and without a pending command
//! (and a pending prompt); chunking must not change what is recognised.
use libfuzzer_sys::fuzz_target;
use postern::connector::modem::at::AtParser;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let mode = data[0] % 4;
    let input = &data[1..];
    let setup = |p: &mut AtParser| match mode {
        0 => {}
        1 => p.command("AT+CMGS=23", true),
        2 => p.command_ending_on_answer("AT+CPIN?"),
        _ => p.command("AT+CREG?", false),
    };
    let make = || AtParser::new(&["^RSSI:", "+WIND:"], &["COMMAND NOT SUPPORT"]).with_two_line(&["^XD:".to_string()]);
    let mut whole = make();
    setup(&mut whole);
    let a = whole.feed(input);
    let mut bytewise = make();
    setup(&mut bytewise);
    let b: Vec<_> = input.iter().flat_map(|x| bytewise.feed(&[*x])).collect();
    assert_eq!(a, b);
});
