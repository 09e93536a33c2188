//! `postern modem-sim`: the modem simulator on a pseudo-terminal, or a transcript replay.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use crate::*;

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_modem_sim(
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
    use postern::sim::modem::{parse_transcript, replay, SimModem, SimSettings};
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
