//! `postern serve`: the gateway, with signals (drain on SIGTERM) and systemd readiness.

use anyhow::Result;
use postern::config::Config;
use std::time::Duration;

pub(crate) async fn serve(cfg: Config) -> Result<()> {
    let grace = Duration::from_secs(20);
    let gw = postern::app::Gateway::start(cfg).await?;
    let addr = gw.api_addr;
    println!("Postern is up.");
    println!("  API:     http://{addr}/v1/messages");
    println!("  Metrics: http://{addr}/metrics   Health: http://{addr}/healthz");
    println!("  Try:     curl -s -X POST http://{addr}/v1/messages -H 'Content-Type: application/json' -d '{{\"to\": \"+447400123123\", \"from\": \"Postern\", \"text\": \"hello\"}}'");
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
