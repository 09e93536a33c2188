//! The `postern` command line.

/// mimalloc instead of glibc's malloc: the gateway allocates per request and per message on
/// several threads; glibc's malloc/free took about 16% of the CPU under load (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
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
    /// Back up a running gateway's outbox (a consistent copy, taken while it runs) into its
    /// `api.backup_dir` under NAME (default: the time).
    Backup {
        name: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "POSTERN_API")]
        api: String,
        #[arg(long, env = "POSTERN_API_KEY")]
        key: Option<String>,
    },
    /// Put a backup back: copy it into the configuration's data directory, which must hold no
    /// outbox yet (stop the gateway and move the old one aside first).
    Restore {
        /// The backup's directory (it holds backup.json).
        from: PathBuf,
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write man pages (postern.1 and one per command) into DIR.
    Man { dir: PathBuf },
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
    /// Message templates.
    Template {
        #[command(subcommand)]
        cmd: TemplateCmd,
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
enum TemplateCmd {
    /// Print a template filled in with --params (JSON), as a message naming it would get it.
    Render {
        name: String,
        #[arg(long, default_value = "{}")]
        params: String,
        #[arg(long, default_value = "sms")]
        channel: String,
        #[arg(long)]
        language: Option<String>,
        /// Render this file's `[[templates]]` here instead of asking the gateway.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "POSTERN_API")]
        api: String,
        #[arg(long, env = "POSTERN_API_KEY")]
        key: Option<String>,
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

mod cli;
use cli::codec::*;
use cli::hwdb::*;
use cli::remote::*;
use cli::serve::*;
use cli::sim::*;

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
        Cmd::Template { cmd: TemplateCmd::Render { name, params, channel, language, config, api, key } } => {
            let Some(channel) = postern::model::Channel::parse(&channel) else {
                anyhow::bail!("--channel is sms, email or xmpp, not {channel:?}")
            };
            cli::template::render(cli::template::RenderArgs {
                name: &name, params: &params, channel, language: language.as_deref(), config: config.as_deref(), api: &api, key: key.as_deref(),
            })
        }
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
        Cmd::Backup { name, api, key } => {
            let body = serde_json::json!({"name": name}).to_string();
            let (status, v) = http("POST", &format!("{api}/v1/backups"), key.as_deref(), Some(body))?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(if status == 201 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::Restore { from, config } => {
            let cfg = match load_config(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let m = postern::outbox::backup::restore(&from, &cfg.outbox.path)?;
            println!("restored the backup of {} into {}", m.created_at, cfg.outbox.path.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "postern", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir)?;
            println!("man pages written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
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
            use postern::sim::smsc::{DlrAs, SimConfig, SimIdFormat, SmscSim};
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
