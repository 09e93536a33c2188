//! `postern pdu|gsm7|wbxml|xform …`: the codecs on files and standard input.

use anyhow::Result;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use crate::*;

/// Exit code for bad input data (sysexits EX_DATAERR).
pub(crate) const EXIT_DATA: u8 = 65;

pub(crate) fn data_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_DATA)
}

/// Read a file or stdin; a file of hex digits is decoded to bytes.
pub(crate) fn read_input(file: Option<&PathBuf>) -> std::io::Result<Vec<u8>> {
    let raw = match file {
        Some(p) if p.as_os_str() != "-" => std::fs::read(p)?,
        _ => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            v
        }
    };
    let trimmed: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !trimmed.is_empty()
        && trimmed.len() % 2 == 0
        && trimmed.iter().all(|b| b.is_ascii_hexdigit())
    {
        if let Ok(b) = hex::decode(&trimmed) {
            return Ok(b);
        }
    }
    Ok(raw)
}

pub(crate) fn parse_vp(s: &str) -> Option<u64> {
    let (n, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.trim().len()),
    );
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => return None,
    })
}

/// Print a decoder's result, or its error as one line with exit code 65.
pub(crate) fn emit<T, E: std::fmt::Display>(
    r: std::result::Result<T, E>,
    show: impl FnOnce(T) -> Result<String>,
) -> Result<ExitCode> {
    match r {
        Ok(v) => {
            println!("{}", show(v)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(data_error(e)),
    }
}

pub(crate) fn run_codec(cmd: Cmd) -> Result<ExitCode> {
    use postern::codec::{national, sms_pdu, wbxml, xform};
    match cmd {
        Cmd::Pdu {
            cmd: PduCmd::Decode { hex: h, tpdu },
        } => {
            let clean: String = h.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = match hex::decode(&clean) {
                Ok(b) => b,
                Err(e) => return Ok(data_error(format!("not hex: {e}"))),
            };
            let v = if tpdu {
                sms_pdu::decode_tpdu(&bytes).map(|t| t.to_json())
            } else {
                sms_pdu::decode(&bytes).map(|s| s.to_json())
            };
            emit(v, |v| Ok(serde_json::to_string_pretty(&v)?))
        }
        Cmd::Pdu {
            cmd:
                PduCmd::Encode {
                    to,
                    text,
                    from: _,
                    srr,
                    vp,
                    coding,
                    mr,
                    reference,
                },
        } => {
            let validity = match vp {
                None => None,
                Some(v) => match parse_vp(&v) {
                    Some(secs) => Some(sms_pdu::Validity::Relative(sms_pdu::relative_vp(secs))),
                    None => {
                        return Ok(data_error(format!(
                            "--vp {v:?}: use e.g. 30m, 12h, 1d, 2w or seconds"
                        )))
                    }
                },
            };
            let body = match coding.as_str() {
                "ucs2" => sms_pdu::SubmitBody::Ucs2(text),
                "gsm7" => sms_pdu::SubmitBody::Gsm7(text, national::Shift::DEFAULT),
                "auto" => match national::choose(&text, &national::Language::NATIONAL) {
                    Some((shift, _)) => sms_pdu::SubmitBody::Gsm7(text, shift),
                    None => sms_pdu::SubmitBody::Ucs2(text),
                },
                c => {
                    return Ok(data_error(format!(
                        "--coding {c:?}: use auto, gsm7 or ucs2"
                    )))
                }
            };
            let spec = sms_pdu::SubmitSpec {
                to,
                body,
                srr,
                validity,
                message_ref: mr,
                reject_duplicates: false,
                reply_path: false,
                pid: 0,
                class: None,
                concat_ref: reference,
                ref16: false,
            };
            match sms_pdu::encode_submit(&spec) {
                Ok(parts) => {
                    for p in parts {
                        println!("{} {}", hex::encode_upper(&p.pdu), p.tpdu_length);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(data_error(e)),
            }
        }
        Cmd::Wbxml {
            cmd: WbxmlCmd::Decode { file },
        } => {
            let bytes = read_input(file.as_ref())?;
            emit(wbxml::decode(&bytes), |d| Ok(d.to_xml()))
        }
        Cmd::Xform {
            cmd: XformCmd::Decode { file },
        } => {
            let bytes = read_input(file.as_ref())?;
            emit(xform::decode(&bytes), |f| {
                Ok(serde_json::to_string_pretty(&f.to_json())?)
            })
        }
        Cmd::Smpp {
            cmd: SmppCmd::Decode { hex: h },
        } => {
            let clean: String = h
                .chars()
                .filter(|c| !c.is_whitespace() && *c != ':')
                .collect();
            let bytes = match hex::decode(&clean) {
                Ok(b) => b,
                Err(e) => return Ok(data_error(format!("not hex: {e}"))),
            };
            emit(postern::connector::smpp::pdu_view::view(&bytes), |v| {
                Ok(serde_json::to_string_pretty(&v)?)
            })
        }
        _ => Ok(ExitCode::from(2)),
    }
}
