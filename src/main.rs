//! The `postern` command line.

/// mimalloc instead of glibc's malloc: the gateway allocates per request and per message on
/// several threads; glibc's malloc/free took about 16% of the CPU under load (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use postern::config::Config;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code for a bad configuration (EX_CONFIG is 78; sysexits' EX_USAGE 64 is what operators'
/// tooling here expects for "fix your input").
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "postern",
    version,
    about = "High-throughput SMS and message gateway"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (the embedded default configuration when no file is given).
    Serve {
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration without starting anything; report every problem.
    CheckConfig { file: Option<PathBuf> },
    /// Read a secret on stdin, print its hash for config files (API keys, passwords).
    HashPassword,
    /// Send a message through a running gateway's API.
    Send {
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "POSTERN_API")]
        api: String,
        #[arg(long, env = "POSTERN_API_KEY")]
        key: Option<String>,
    },
    /// Show a message's state; without an id, every connector (and each modem of a bank).
    Status {
        id: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "POSTERN_API")]
        api: String,
        #[arg(long, env = "POSTERN_API_KEY")]
        key: Option<String>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// SMS PDUs (TS 23.040): decode hex to JSON, or encode an SMS-SUBMIT.
    Pdu {
        #[command(subcommand)]
        cmd: PduCmd,
    },
    /// WAP Binary XML.
    Wbxml {
        #[command(subcommand)]
        cmd: WbxmlCmd,
    },
    /// XForms submissions (WBXML or XML) to JSON.
    Xform {
        #[command(subcommand)]
        cmd: XformCmd,
    },
    /// Run an SMPP SMSC simulator (for tests, benchmarks, and trying links without an operator).
    SmscSim {
        #[arg(long, default_value = "127.0.0.1:2775")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "postern")]
        system_id: String,
        #[arg(long, default_value = "secret")]
        password: String,
        /// Message id format: hex or decimal.
        #[arg(long, default_value = "hex")]
        id_format: String,
        /// Delay before each submit_sm_resp.
        #[arg(long, default_value_t = 0)]
        ack_delay_ms: u64,
        /// Delay from submit to delivery receipt.
        #[arg(long, default_value_t = 100)]
        dlr_delay_ms: u64,
        /// Weights of DELIVRD,UNDELIV,REJECTD,EXPIRED receipts.
        #[arg(long, default_value = "100,0,0,0")]
        dlr_mix: String,
        /// Receipts as tlv, text or both.
        #[arg(long, default_value = "both")]
        dlr_as: String,
        /// Answer every Nth submit with ESME_RTHROTTLED (0 = never).
        #[arg(long, default_value_t = 0)]
        throttle_every: u64,
        /// Drop each connection after N PDUs (0 = never).
        #[arg(long, default_value_t = 0)]
        drop_after: u64,
        /// Drop after a random count between N/2 and 3N/2 PDUs instead (with --drop-after N).
        #[arg(long)]
        drop_jitter: bool,
        /// Throttle each submit with this probability in percent (e.g. 1 = 1%).
        #[arg(long, default_value_t = 0.0)]
        throttle_percent: f64,
        /// Each submit_sm_resp waits a further random 0..N ms (uneven slow acks).
        #[arg(long, default_value_t = 0)]
        ack_jitter_ms: u64,
        /// Send each receipt before the submit_sm_resp of its message.
        #[arg(long)]
        dlr_before_resp: bool,
        /// Refuse every bind (ESME_RBINDFAIL).
        #[arg(long)]
        refuse_binds: bool,
        /// Answer binds with ESME_RALYBND.
        #[arg(long)]
        already_bound: bool,
        /// MO messages per second to each receiving session.
        #[arg(long, default_value_t = 0.0)]
        mo_rate: f64,
        #[arg(long, default_value = "hello from the simulator")]
        mo_text: String,
        /// Send each MO in N concatenated parts (out of order).
        #[arg(long, default_value_t = 1)]
        mo_parts: u8,
    },
    /// SMPP PDUs.
    Smpp {
        #[command(subcommand)]
        cmd: SmppCmd,
    },
    /// The hardware database of modems (`hwdb/`).
    Hwdb {
        #[command(subcommand)]
        cmd: HwdbCmd,
    },
    /// Run simulated GSM modems on pseudo-terminals (prints each device path); control lines on
    /// stdin: mo FROM TEXT | mo-silent FROM TEXT | mo-binary FROM HEX [PORT] | fail PREFIX CODE |
    /// hang | hang-after-pdu | signal N | register N | sent  (prefix with "N:" for modem N).
    ModemSim {
        /// Reproduce the quirks of this hwdb entry.
        #[arg(long, default_value = "generic")]
        profile: String,
        /// How many modems.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Make symlinks DIR/modem0, DIR/modem1, ... to the devices.
        #[arg(long, value_name = "DIR")]
        link_dir: Option<PathBuf>,
        /// The SIM asks for this PIN.
        #[arg(long)]
        pin: Option<String>,
        /// Delay from a send to its status report.
        #[arg(long, default_value_t = 200)]
        dlr_delay_ms: u64,
        /// Time the "network" takes for each AT+CMGS.
        #[arg(long, default_value_t = 0)]
        send_delay_ms: u64,
        /// Control lines to run first (same language as stdin; "wait MS" pauses).
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// Replay a byte transcript instead ("> command" expected, "< line" answered, "<< raw").
        #[arg(long, value_name = "FILE", conflicts_with_all = ["script", "count"])]
        transcript: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum HwdbCmd {
    /// One line per entry: id, vendor, model, support, USB ids.
    List {
        /// A folder of entries instead of the built-in ones.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Which entry a modem gets: by USB id, then by its AT+CGMI/AT+CGMM answers.
    Match {
        /// vid:pid, e.g. 12d1:1506
        #[arg(long)]
        usb: Option<String>,
        #[arg(long)]
        cgmi: Option<String>,
        #[arg(long)]
        cgmm: Option<String>,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Validate entries (schema, quirk vocabulary, consistency rules); exit 65 on any problem.
    Check {
        /// A folder to check instead of the built-in entries.
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SmppCmd {
    /// Print every field of one SMPP PDU (header, parameters, TLVs, parsed receipt) as JSON.
    Decode { hex: String },
}

#[derive(Subcommand)]
enum PduCmd {
    /// Decode a PDU with its SMSC prefix (as `AT+CMGR`/`+CMGL` print it); prints every field.
    Decode {
        hex: String,
        /// The hex has no SMSC field.
        #[arg(long)]
        tpdu: bool,
    },
    /// Encode an SMS-SUBMIT; prints one hex PDU per part and the `AT+CMGS` length.
    Encode {
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
        /// Alphanumeric sender is not part of SMS-SUBMIT; accepted for symmetry and ignored.
        #[arg(long)]
        from: Option<String>,
        /// Request a status report.
        #[arg(long)]
        srr: bool,
        /// Relative validity: 30m, 12h, 1d, 2w, or seconds.
        #[arg(long)]
        vp: Option<String>,
        /// auto (GSM 03.38 when possible, national shift tables next, else UCS-2), gsm7, ucs2.
        #[arg(long, default_value = "auto")]
        coding: String,
        /// TP-MR of the first part.
        #[arg(long, default_value_t = 0)]
        mr: u8,
        /// Concatenation reference for multipart messages.
        #[arg(long, default_value_t = 0)]
        reference: u16,
    },
}

#[derive(Subcommand)]
enum WbxmlCmd {
    /// Decode a WBXML document (file, or - for stdin; hex text is accepted too) to XML.
    Decode { file: Option<PathBuf> },
}

#[derive(Subcommand)]
enum XformCmd {
    /// Decode a form submission (WBXML or XML; file or - for stdin) to JSON.
    Decode { file: Option<PathBuf> },
}

/// Exit code for bad input data (sysexits EX_DATAERR).
const EXIT_DATA: u8 = 65;

fn data_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_DATA)
}

/// Read a file or stdin; a file of hex digits is decoded to bytes.
fn read_input(file: Option<&PathBuf>) -> std::io::Result<Vec<u8>> {
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

fn parse_vp(s: &str) -> Option<u64> {
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
fn emit<T, E: std::fmt::Display>(
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

fn run_codec(cmd: Cmd) -> Result<ExitCode> {
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    Config::load(path.map(|p| p.as_path())).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Serve { config } => {
            let cfg = match load_config(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { file } => match load_config(file.as_ref()) {
            Ok(cfg) => {
                println!(
                    "configuration OK: {} connector(s), {} route(s), outbox at {}",
                    cfg.connectors.len(),
                    cfg.routes.len(),
                    cfg.outbox.path.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        Cmd::HashPassword => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            let secret = s.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                return Err(anyhow!("empty secret on stdin"));
            }
            println!("{}", postern::secret::hash_secret(secret));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Send {
            to,
            text,
            from,
            api,
            key,
        } => {
            let mut body = serde_json::json!({"to": to, "text": text});
            if let Some(f) = from {
                body["from"] = f.into();
            }
            let (status, v) = http(
                "POST",
                &format!("{api}/v1/messages"),
                key.as_deref(),
                Some(body.to_string()),
            )?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(if status < 300 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Status { id: None, api, key } => {
            let (status, v) = http("GET", &format!("{api}/v1/connectors"), key.as_deref(), None)?;
            print_connectors(&v);
            Ok(if status < 300 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Hwdb { cmd } => run_hwdb(cmd),
        Cmd::ModemSim {
            profile,
            count,
            link_dir,
            pin,
            dlr_delay_ms,
            send_delay_ms,
            script,
            transcript,
        } => run_modem_sim(
            profile,
            count,
            link_dir,
            pin,
            dlr_delay_ms,
            send_delay_ms,
            script,
            transcript,
        ),
        Cmd::Status {
            id: Some(id),
            api,
            key,
        } => {
            let (status, v) = http(
                "GET",
                &format!("{api}/v1/messages/{id}"),
                key.as_deref(),
                None,
            )?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(if status < 300 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::DefaultConfig => {
            print!("{}", postern::config::EMBEDDED_DEFAULT);
            Ok(ExitCode::SUCCESS)
        }
        cmd @ (Cmd::Pdu { .. } | Cmd::Wbxml { .. } | Cmd::Xform { .. } | Cmd::Smpp { .. }) => {
            run_codec(cmd)
        }
        Cmd::SmscSim {
            listen,
            system_id,
            password,
            id_format,
            ack_delay_ms,
            dlr_delay_ms,
            dlr_mix,
            dlr_as,
            throttle_every,
            drop_after,
            drop_jitter,
            throttle_percent,
            ack_jitter_ms,
            dlr_before_resp,
            refuse_binds,
            already_bound,
            mo_rate,
            mo_text,
            mo_parts,
        } => {
            use postern::connector::smpp::sim::{DlrAs, SimConfig, SimIdFormat, SmscSim};
            let mix: Vec<u32> = dlr_mix
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            let Ok(dlr_mix) = <[u32; 4]>::try_from(mix) else {
                return Ok(data_error(
                    "--dlr-mix takes four weights: DELIVRD,UNDELIV,REJECTD,EXPIRED",
                ));
            };
            let cfg = SimConfig {
                listen,
                system_id,
                password,
                id_format: if id_format == "decimal" {
                    SimIdFormat::Decimal
                } else {
                    SimIdFormat::Hex
                },
                ack_delay: Duration::from_millis(ack_delay_ms),
                dlr_delay: Duration::from_millis(dlr_delay_ms),
                dlr_mix,
                dlr_as: match dlr_as.as_str() {
                    "tlv" => DlrAs::Tlv,
                    "text" => DlrAs::Text,
                    _ => DlrAs::Both,
                },
                throttle_every,
                drop_after,
                refuse_binds,
                already_bound,
                mo_rate,
                mo_text,
                mo_parts,
                slow_first: 0,
                ack_jitter: Duration::from_millis(ack_jitter_ms),
                throttle_chance: (throttle_percent / 100.0).clamp(0.0, 1.0),
                drop_jitter,
                dlr_before_resp,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let sim = SmscSim::start(cfg).await?;
                println!("SMSC simulator listening on smpp://{}", sim.addr);
                let c = sim.counters.clone();
                let mut last = 0u64;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = tokio::signal::ctrl_c() => break,
                    }
                    use std::sync::atomic::Ordering::Relaxed;
                    let submits = c.submits.load(Relaxed);
                    println!(
                        "binds {} submits {} ({} /s) throttled {} receipts {} acked {} mo {} nacks {} first_ms {} last_ms {} distinct {} unanswered {}",
                        c.binds.load(Relaxed), submits, submits - last, c.throttled.load(Relaxed), c.receipts.load(Relaxed),
                        c.receipt_acks.load(Relaxed), c.mo.load(Relaxed), c.nacks.load(Relaxed),
                        c.first_submit_ms.load(Relaxed), c.last_submit_ms.load(Relaxed),
                        c.distinct.load(Relaxed), sim.unanswered()
                    );
                    last = submits;
                }
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `postern status`: a line per connector, and one per modem of a bank.
fn print_connectors(v: &serde_json::Value) {
    let list = v["connectors"]
        .as_array()
        .or(v.as_array())
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    for c in list {
        println!(
            "{:<16} {:<12} up={} inflight={}/{}",
            s(&c["name"]),
            s(&c["type"]),
            s(&c["up"]),
            s(&c["inflight"]),
            s(&c["window"])
        );
        for m in c["detail"]["modems"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            println!(
                "  {:<14} {:<11} {:<20} imei={} operator={} signal={}dBm sent={} failed={} received={} resets={} queue={}",
                s(&m["path"]).rsplit('/').next().unwrap_or(""), s(&m["state"]), s(&m["profile"]), s(&m["imei"]), s(&m["operator"]),
                s(&m["signal_dbm"]), s(&m["sent"]), s(&m["failed"]), s(&m["received"]), s(&m["resets"]), s(&m["queue"])
            );
        }
    }
}

fn load_hwdb(dir: Option<&PathBuf>) -> Result<postern::connector::modem::hwdb::Hwdb, ExitCode> {
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

fn run_hwdb(cmd: HwdbCmd) -> Result<ExitCode> {
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

#[allow(clippy::too_many_arguments)]
fn run_modem_sim(
    profile: String,
    count: u32,
    link_dir: Option<PathBuf>,
    pin: Option<String>,
    dlr_delay_ms: u64,
    send_delay_ms: u64,
    script: Option<PathBuf>,
    transcript: Option<PathBuf>,
) -> Result<ExitCode> {
    use postern::connector::modem::hwdb::{Hwdb, Profile};
    use postern::connector::modem::sim::{parse_transcript, replay, SimModem, SimSettings};
    use std::io::Write;
    let prof = if profile == "generic" {
        Profile::generic()
    } else {
        match Hwdb::embedded().get(&profile) {
            Some(p) => p.clone(),
            None => {
                return Ok(data_error(format!(
                    "no hwdb entry {profile:?} (see `postern hwdb list`)"
                )))
            }
        }
    };
    if let Some(d) = &link_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if let Some(t) = transcript {
            let text =
                std::fs::read_to_string(&t).with_context(|| format!("reading {}", t.display()))?;
            let steps = match parse_transcript(&text) {
                Ok(s) => s,
                Err(e) => return Ok(data_error(format!("{}: {e}", t.display()))),
            };
            let link = link_dir.as_ref().map(|d| d.join("modem0"));
            let (path, task) = replay(steps, link.as_deref()).await?;
            println!("{}", path.display());
            std::io::stdout().flush()?;
            return Ok(match task.await? {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => data_error(e),
            });
        }
        let mut sims = Vec::new();
        for i in 0..count {
            let mut s = SimSettings::new(prof.clone(), i);
            s.pin = pin.clone();
            s.dlr_delay = Duration::from_millis(dlr_delay_ms);
            s.send_delay = Duration::from_millis(send_delay_ms);
            let link = link_dir.as_ref().map(|d| d.join(format!("modem{i}")));
            let sim = SimModem::start(s, link.as_deref())?;
            println!("{}", sim.path.display());
            sims.push(sim);
        }
        std::io::stdout().flush()?;
        let run = |line: &str| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return;
            }
            let (target, cmd) = match line.split_once(':') {
                Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => {
                    (n.parse::<usize>().ok(), rest.trim())
                }
                _ => (None, line),
            };
            for (i, sim) in sims.iter().enumerate() {
                if target.is_some_and(|t| t != i) {
                    continue;
                }
                match sim.control(cmd) {
                    Ok(r) => println!("{i}: {r}"),
                    Err(e) => eprintln!("{i}: error: {e}"),
                }
            }
        };
        if let Some(f) = script {
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            for line in text.lines() {
                if let Some(ms) = line
                    .trim()
                    .strip_prefix("wait ")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                } else {
                    run(line);
                }
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdin_open = true;
        loop {
            tokio::select! {
                l = rx.recv(), if stdin_open => match l {
                    Some(l) => run(&l),
                    None => stdin_open = false,
                },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        for s in &sims {
            s.unplug();
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// One HTTP request to the API, answered as (status, JSON).
fn http(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<String>,
) -> Result<(u16, serde_json::Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = req.body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))?;
        let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
            .await
            .context("timed out")?
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok((status, v))
    })
}

async fn serve(cfg: Config) -> Result<()> {
    let grace = Duration::from_secs(20);
    let gw = postern::app::Gateway::start(cfg).await?;
    let addr = gw.api_addr;
    println!("Postern is up.");
    println!("  API:     http://{addr}/v1/messages");
    println!("  Metrics: http://{addr}/metrics   Health: http://{addr}/healthz");
    println!("  Try:     curl -s -X POST http://{addr}/v1/messages -H 'Content-Type: application/json' -d '{{\"to\": \"+447700900123\", \"from\": \"Postern\", \"text\": \"hello\"}}'");
    println!("  Then:    curl -s http://{addr}/v1/messages/<id>");
    postern::sdnotify::notify("READY=1");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining");
    postern::sdnotify::notify("STOPPING=1");
    gw.stop(grace).await;
    Ok(())
}
