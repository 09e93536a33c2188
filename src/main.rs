//! The `postern` command line.

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
#[command(name = "postern", version, about = "High-throughput SMS and message gateway")]
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
    /// Show a message's state.
    Status {
        id: String,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "POSTERN_API")]
        api: String,
        #[arg(long, env = "POSTERN_API_KEY")]
        key: Option<String>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
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
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
        Cmd::Send { to, text, from, api, key } => {
            let mut body = serde_json::json!({"to": to, "text": text});
            if let Some(f) = from {
                body["from"] = f.into();
            }
            let (status, v) = http("POST", &format!("{api}/v1/messages"), key.as_deref(), Some(body.to_string()))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(if status < 300 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::Status { id, api, key } => {
            let (status, v) = http("GET", &format!("{api}/v1/messages/{id}"), key.as_deref(), None)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(if status < 300 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::DefaultConfig => {
            print!("{}", postern::config::EMBEDDED_DEFAULT);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One HTTP request to the API, answered as (status, JSON).
fn http(method: &str, url: &str, key: Option<&str>, body: Option<String>) -> Result<(u16, serde_json::Value)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<bytes::Bytes>>();
        let mut req = hyper::Request::builder().method(method).uri(url).header("content-type", "application/json");
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
        let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
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
