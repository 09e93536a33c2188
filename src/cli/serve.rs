//! `postern serve`: the gateway, with signals (drain on SIGTERM) and systemd readiness.

use anyhow::Result;
use postern::config::Config;
use std::time::Duration;

pub(crate) async fn serve(cfg: Config) -> Result<()> {
    let grace = Duration::from_secs(20);
    let gw = postern::app::Gateway::start(cfg).await?;
    let addr = format!("{}://{}", gw.api_scheme, gw.api_addr);
    println!("Postern is up.");
    println!("  API:     {addr}/v1/messages");
    println!("  Metrics: {addr}/metrics   Health: {addr}/healthz");
    println!("  Try:     curl -s -X POST {addr}/v1/messages -H 'Content-Type: application/json' -d '{{\"to\": \"+447400123123\", \"from\": \"Postern\", \"text\": \"hello\"}}'");
    println!("  Then:    curl -s {addr}/v1/messages/<id>");
    // SIGHUP reloads the API's certificate (api::tls); without TLS it is ignored, not fatal.
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
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
