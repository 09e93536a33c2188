//! The AT response parser, pure and I/O-free so it can be fed byte by byte and fuzzed (written
//! by hand: no crate handles the quirks of real modems). A line framer tolerant of `\r\r\n`,
//! bare `\n` and blank lines, with the SMS prompt special case (`> ` with or without the space,
//! with or without a line end, V.250 / TS 27.005 §3.5.1); then a classifier: final results
//! (`OK`, `ERROR`, `+CME ERROR`, `+CMS ERROR` numeric or text, dial results, vendor tokens),
//! command echo, one-line URCs by prefix table (unless the pending command expects that prefix),
//! two-line `+CMT`/`+CDS`/`+CBM` URCs with their PDU line, and response lines of the pending
//! command.

/// Error value of `+CME ERROR` / `+CMS ERROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrValue {
    Numeric(u16),
    Text(String),
    Empty,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalResult {
    Ok,
    Error,
    Cme(ErrValue),
    Cms(ErrValue),
    /// `NO CARRIER`, `BUSY`, `NO ANSWER`, `NO DIALTONE`, `COMMAND NOT SUPPORT`, `MODEM ERROR: n`
    /// and hwdb `extra_final_error` tokens.
    Other(String),
}

/// Something the parser recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The pending command finished; `lines` are its response lines (echo and URCs removed).
    Final {
        result: FinalResult,
        lines: Vec<String>,
    },
    /// The `> ` prompt of `AT+CMGS`/`AT+CMGW`: send the PDU and Ctrl-Z now.
    Prompt,
    /// An unsolicited result code; `pdu` is the second line of `+CMT:`/`+CDS:`/`+CBM:`.
    Urc { line: String, pdu: Option<String> },
    /// A line that belongs to no command (no command pending, not a known URC).
    Stray(String),
    /// A line longer than the limit was dropped.
    Overlong,
}

struct Pending {
    echo: String,
    expects: String,
    wants_prompt: bool,
    /// Finish on the expected line itself (`cpin-no-ok`: `+CPIN: READY` with no `OK`).
    final_on_expected: bool,
    lines: Vec<String>,
}

/// URC prefixes known everywhere; hwdb entries add their own.
pub const DEFAULT_URCS: &[&str] = &[
    "+CMTI:",
    "+CDSI:",
    "+CBMI:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "RING",
    "+CRING:",
    "+CLIP:",
    "+CUSD:",
    "+CPIN:",
    "+CSQ:",
    "^RSSI:",
    "^HCSQ:",
    "^BOOT:",
    "^MODE:",
    "^SRVST:",
    "^SIMST:",
    "^NWTIME:",
    "^DSFLOWRPT:",
    "^SYSSTART",
    "^CEND:",
    "^ORIG:",
    "^CONF:",
    "^CONN:",
    "RDY",
    "SMS Ready",
    "SMS DONE",
    "Call Ready",
    "+QIND:",
    "+QUSIM:",
    "+CIEV:",
    "+STIN:",
    "^SIND:",
];

const TWO_LINE: &[&str] = &["+CMT:", "+CDS:", "+CBM:"];

/// The parser.
pub struct AtParser {
    buf: Vec<u8>,
    pending: Option<Pending>,
    /// A two-line URC waiting for its PDU line.
    two_line: Option<String>,
    urcs: Vec<String>,
    extra_final: Vec<String>,
    two_line_extra: Vec<String>,
    max_line: usize,
}

impl Default for AtParser {
    fn default() -> Self {
        AtParser::new(&[], &[])
    }
}

/// The response prefix a command's answer lines carry: `AT+CREG?` -> `+CREG:`.
pub fn expected_prefix(cmd: &str) -> String {
    let body = cmd.trim().get(2..).unwrap_or("");
    let end = body.find(['=', '?']).unwrap_or(body.len());
    let name = &body[..end];
    if name.starts_with('+')
        || name.starts_with('^')
        || name.starts_with('$')
        || name.starts_with('*')
    {
        format!("{name}:")
    } else {
        String::new()
    }
}

fn err_value(v: &str) -> ErrValue {
    let v = v.trim();
    if v.is_empty() {
        ErrValue::Empty
    } else if let Ok(n) = v.parse() {
        ErrValue::Numeric(n)
    } else {
        ErrValue::Text(v.to_string())
    }
}

impl AtParser {
    /// A parser with extra URC prefixes and extra final error tokens (from hwdb).
    pub fn new(extra_urcs: &[&str], extra_final: &[&str]) -> Self {
        let mut urcs: Vec<String> = DEFAULT_URCS.iter().map(|s| s.to_string()).collect();
        urcs.extend(extra_urcs.iter().map(|s| s.to_string()));
        AtParser {
            buf: Vec::new(),
            pending: None,
            two_line: None,
            urcs,
            extra_final: extra_final.iter().map(|s| s.to_string()).collect(),
            two_line_extra: Vec::new(),
            max_line: 8192,
        }
    }

    /// Vendor URCs followed by one data line (hwdb `urc.two_line`).
    pub fn with_two_line(mut self, prefixes: &[String]) -> Self {
        self.two_line_extra = prefixes.to_vec();
        self.urcs.extend(prefixes.iter().cloned());
        self
    }

    /// A command whose answer ends on its expected line, with no final result (`cpin-no-ok`).
    pub fn command_ending_on_answer(&mut self, cmd: &str) {
        self.command(cmd, false);
        if let Some(p) = self.pending.as_mut() {
            p.final_on_expected = !p.expects.is_empty();
        }
    }

    /// A command was written; its answer is expected now. `wants_prompt` for `AT+CMGS=`.
    pub fn command(&mut self, cmd: &str, wants_prompt: bool) {
        self.pending = Some(Pending {
            echo: cmd.trim().to_string(),
            expects: expected_prefix(cmd),
            wants_prompt,
            final_on_expected: false,
            lines: Vec::new(),
        });
    }

    /// Is a command waiting for its final result?
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Forget the pending command (timeout); what arrives for it later is stray.
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    fn final_result(&self, line: &str) -> Option<FinalResult> {
        match line {
            "OK" => return Some(FinalResult::Ok),
            "ERROR" => return Some(FinalResult::Error),
            "NO CARRIER" | "BUSY" | "NO ANSWER" | "NO DIALTONE" | "COMMAND NOT SUPPORT" => {
                return Some(FinalResult::Other(line.to_string()))
            }
            _ => {}
        }
        if let Some(v) = line.strip_prefix("+CME ERROR:") {
            return Some(FinalResult::Cme(err_value(v)));
        }
        if let Some(v) = line.strip_prefix("+CMS ERROR:") {
            return Some(FinalResult::Cms(err_value(v)));
        }
        if line.starts_with("MODEM ERROR:") || self.extra_final.iter().any(|t| t == line) {
            return Some(FinalResult::Other(line.to_string()));
        }
        None
    }

    fn classify(&mut self, line: String, out: &mut Vec<Event>) {
        if let Some(header) = self.two_line.take() {
            out.push(Event::Urc {
                line: header,
                pdu: Some(line),
            });
            return;
        }
        if let Some(p) = &self.pending {
            if line == p.echo {
                return; // echo before ATE0 took effect
            }
        }
        if let Some(result) = self.final_result(&line) {
            match self.pending.take() {
                Some(p) => out.push(Event::Final {
                    result,
                    lines: p.lines,
                }),
                None => out.push(Event::Stray(line)),
            }
            return;
        }
        let expected = self
            .pending
            .as_ref()
            .is_some_and(|p| !p.expects.is_empty() && line.starts_with(p.expects.as_str()));
        if expected && self.pending.as_ref().is_some_and(|p| p.final_on_expected) {
            if let Some(mut p) = self.pending.take() {
                p.lines.push(line);
                out.push(Event::Final {
                    result: FinalResult::Ok,
                    lines: p.lines,
                });
            }
            return;
        }
        if !expected {
            if TWO_LINE.iter().any(|t| line.starts_with(t))
                || self
                    .two_line_extra
                    .iter()
                    .any(|t| line.starts_with(t.as_str()))
            {
                self.two_line = Some(line);
                return;
            }
            if self.urcs.iter().any(|u| line.starts_with(u.as_str())) {
                out.push(Event::Urc { line, pdu: None });
                return;
            }
        }
        match self.pending.as_mut() {
            Some(p) => p.lines.push(line),
            None => out.push(Event::Stray(line)),
        }
    }

    /// Feed bytes as they arrive (any split); returns what became complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if !self.buf.is_empty() {
                    let line = String::from_utf8_lossy(&self.buf).trim().to_string();
                    self.buf.clear();
                    if !line.is_empty() {
                        self.classify(line, &mut out);
                    }
                }
                continue;
            }
            if self.buf.len() >= self.max_line {
                self.buf.clear();
                out.push(Event::Overlong);
            }
            self.buf.push(b);
            // The prompt has no line end: recognise it as soon as it arrives.
            if self.buf == b">"
                && self.pending.as_ref().is_some_and(|p| p.wants_prompt)
                && self.two_line.is_none()
            {
                self.buf.clear();
                if let Some(p) = self.pending.as_mut() {
                    p.wants_prompt = false;
                }
                out.push(Event::Prompt);
            } else if self.buf == b" " {
                // the space after "> " (or stray leading blanks) carries nothing
                self.buf.clear();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed a transcript whole and split at every byte position: the events must not change.
    fn all_splits(setup: impl Fn(&mut AtParser), input: &[u8]) -> Vec<Event> {
        let mut p = AtParser::default();
        setup(&mut p);
        let whole = p.feed(input);
        for cut in 0..=input.len() {
            let mut q = AtParser::default();
            setup(&mut q);
            let mut ev = q.feed(&input[..cut]);
            ev.extend(q.feed(&input[cut..]));
            assert_eq!(ev, whole, "split at {cut}");
        }
        let mut q = AtParser::default();
        setup(&mut q);
        let bytewise: Vec<Event> = input.iter().flat_map(|b| q.feed(&[*b])).collect();
        assert_eq!(bytewise, whole, "byte by byte");
        whole
    }

    #[test]
    fn ok_with_lines_echo_and_trailing_urc() {
        let ev = all_splits(
            |p| p.command("AT+CSQ", false),
            b"AT+CSQ\r\r\n+CSQ: 18,99\r\n\r\nOK\r\n\r\n+CMTI: \"ME\",1\r\n",
        );
        assert_eq!(
            ev,
            vec![
                Event::Final {
                    result: FinalResult::Ok,
                    lines: vec!["+CSQ: 18,99".into()]
                },
                Event::Urc {
                    line: "+CMTI: \"ME\",1".into(),
                    pdu: None
                },
            ]
        );
    }

    #[test]
    fn errors_numeric_text_empty_and_vendor() {
        for (input, want) in [
            (
                &b"\r\n+CMS ERROR: 500\r\n"[..],
                FinalResult::Cms(ErrValue::Numeric(500)),
            ),
            (
                b"\r\n+CME ERROR: SIM busy\r\n",
                FinalResult::Cme(ErrValue::Text("SIM busy".into())),
            ),
            (b"\r\n+CME ERROR:\r\n", FinalResult::Cme(ErrValue::Empty)),
            (
                b"\r\nCOMMAND NOT SUPPORT\r\n",
                FinalResult::Other("COMMAND NOT SUPPORT".into()),
            ),
            (b"ERROR\n", FinalResult::Error),
        ] {
            let ev = all_splits(|p| p.command("AT+CLAC", false), input);
            assert_eq!(
                ev,
                vec![Event::Final {
                    result: want,
                    lines: vec![]
                }]
            );
        }
    }

    #[test]
    fn prompt_with_and_without_space_and_urc_before_it() {
        for input in [
            &b"\r\n> "[..],
            b"\r\n>",
            b"\r\n>\r\n",
            b"\r\n+CREG: 1\r\n\r\n> ",
        ] {
            let ev = all_splits(|p| p.command("AT+CMGS=23", true), input);
            assert_eq!(
                ev.last(),
                Some(&Event::Prompt),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // then the send's own answer
        let mut p = AtParser::default();
        p.command("AT+CMGS=23", true);
        assert_eq!(p.feed(b"\r\n> "), vec![Event::Prompt]);
        assert_eq!(
            p.feed(b"\r\n+CMGS: 12\r\n\r\nOK\r\n"),
            vec![Event::Final {
                result: FinalResult::Ok,
                lines: vec!["+CMGS: 12".into()]
            }]
        );
    }

    #[test]
    fn expected_prefix_is_not_a_urc_but_a_stray_one_is() {
        let ev = all_splits(
            |p| p.command("AT+CREG?", false),
            b"\r\n^RSSI: 17\r\n+CREG: 0,1\r\n\r\nOK\r\n",
        );
        assert_eq!(
            ev,
            vec![
                Event::Urc {
                    line: "^RSSI: 17".into(),
                    pdu: None
                },
                Event::Final {
                    result: FinalResult::Ok,
                    lines: vec!["+CREG: 0,1".into()]
                },
            ]
        );
        let ev = all_splits(|_| {}, b"\r\n+CREG: 5\r\n");
        assert_eq!(
            ev,
            vec![Event::Urc {
                line: "+CREG: 5".into(),
                pdu: None
            }]
        );
    }

    #[test]
    fn two_line_urcs_and_cmgr_pdu_lines() {
        let ev = all_splits(
            |_| {},
            b"\r\n+CMT: ,24\r\n07911326040000F0040B911346610089F60000425060708090000\r\n",
        );
        assert_eq!(
            ev,
            vec![Event::Urc {
                line: "+CMT: ,24".into(),
                pdu: Some("07911326040000F0040B911346610089F60000425060708090000".into())
            }]
        );
        let ev = all_splits(
            |p| p.command("AT+CMGR=1", false),
            b"\r\n+CMGR: 0,,24\r\n0791ABCD\r\n\r\nOK\r\n",
        );
        assert_eq!(
            ev,
            vec![Event::Final {
                result: FinalResult::Ok,
                lines: vec!["+CMGR: 0,,24".into(), "0791ABCD".into()]
            }]
        );
    }

    #[test]
    fn cpin_without_ok_and_vendor_two_line_urcs() {
        let ev = all_splits(
            |p| p.command_ending_on_answer("AT+CPIN?"),
            b"\r\n+CPIN: READY\r\n\r\nOK\r\n",
        );
        assert_eq!(
            ev,
            vec![
                Event::Final {
                    result: FinalResult::Ok,
                    lines: vec!["+CPIN: READY".into()]
                },
                Event::Stray("OK".into())
            ]
        );
        let mut p = AtParser::default().with_two_line(&["^XDATA:".to_string()]);
        assert_eq!(
            p.feed(b"\r\n^XDATA: 3\r\nABC\r\n"),
            vec![Event::Urc {
                line: "^XDATA: 3".into(),
                pdu: Some("ABC".into())
            }]
        );
    }

    #[test]
    fn stray_results_and_overlong_lines() {
        let mut p = AtParser::default();
        assert_eq!(p.feed(b"\r\nOK\r\n"), vec![Event::Stray("OK".into())]);
        let mut long = vec![b'A'; 9000];
        long.extend(b"\r\n");
        assert!(p.feed(&long).contains(&Event::Overlong));
        assert_eq!(expected_prefix("AT^SYSINFO"), "^SYSINFO:");
        assert_eq!(expected_prefix("ATE0"), "");
    }
}
