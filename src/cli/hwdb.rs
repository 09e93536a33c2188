//! `postern hwdb …`: the modem hardware database (list, show, match, check).

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use crate::*;

pub(crate) fn load_hwdb(dir: Option<&PathBuf>) -> Result<postern::connector::modem::hwdb::Hwdb, ExitCode> {
    use postern::connector::modem::hwdb::Hwdb;
    match dir {
        None => Ok(Hwdb::embedded()),
        Some(d) => Hwdb::load_dir(d).map_err(|errs| {
            for e in &errs {
                eprintln!("error: {e}");
            }
            ExitCode::from(EXIT_DATA)
        }),
    }
}

pub(crate) fn run_hwdb(cmd: HwdbCmd) -> Result<ExitCode> {
    match cmd {
        HwdbCmd::List { dir } => {
            let db = match load_hwdb(dir.as_ref()) {
                Ok(d) => d,
                Err(c) => return Ok(c),
            };
            for p in &db.entries {
                let usb: Vec<String> = p
                    .usb
                    .iter()
                    .map(|u| format!("{}:{}", u.vid, u.pid))
                    .collect();
                println!(
                    "{:<20} {:<10} {:<34} {:<11} {}",
                    p.id,
                    p.vendor,
                    p.model,
                    format!("{:?}", p.support).to_lowercase(),
                    usb.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        HwdbCmd::Match {
            usb,
            cgmi,
            cgmm,
            dir,
        } => {
            let db = match load_hwdb(dir.as_ref()) {
                Ok(d) => d,
                Err(c) => return Ok(c),
            };
            let ids = match usb.as_deref().map(|u| u.split_once(':')) {
                None => None,
                Some(Some((v, p))) if v.len() == 4 && p.len() == 4 => {
                    Some((v.to_string(), p.to_string()))
                }
                Some(_) => return Ok(data_error("--usb takes vid:pid in hex, e.g. 12d1:1506")),
            };
            let (p, by) = db.find(
                ids.as_ref().map(|(v, p)| (v.as_str(), p.as_str())),
                cgmi.as_deref(),
                cgmm.as_deref(),
            );
            println!(
                "{}",
                serde_json::json!({"id": p.id, "vendor": p.vendor, "model": p.model, "matched_by": by, "support": p.support, "quirks": p.quirks})
            );
            Ok(ExitCode::SUCCESS)
        }
        HwdbCmd::Check { dir } => {
            use postern::connector::modem::hwdb::{parse, Hwdb, EMBEDDED};
            let n = match &dir {
                Some(d) => match Hwdb::load_dir(d) {
                    Ok(db) => db.entries.len(),
                    Err(errs) => {
                        for e in &errs {
                            eprintln!("error: {e}");
                        }
                        return Ok(ExitCode::from(EXIT_DATA));
                    }
                },
                None => {
                    let mut bad = false;
                    for (stem, text) in EMBEDDED {
                        if let Err(errs) = parse(stem, text) {
                            bad = true;
                            errs.iter().for_each(|e| eprintln!("error: {e}"));
                        }
                    }
                    if bad {
                        return Ok(ExitCode::from(EXIT_DATA));
                    }
                    EMBEDDED.len()
                }
            };
            println!("{n} entries, all valid");
            Ok(ExitCode::SUCCESS)
        }
    }
}
