//! Transcript mode: a recorded exchange (`> AT…` expected, `< …` answered, `<< raw`) replayed
//! byte for byte against the driver.

use super::*;

/// One step of a byte transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `> AT+CSQ`: the driver must send this command line.
    Expect(String),
    /// `< +CSQ: 18,99`: the modem answers this line (framed `\r\n…\r\n`).
    Reply(String),
    /// `<< \r\n> `: raw bytes with `\r`, `\n`, `\xHH` escapes.
    Raw(Vec<u8>),
}

/// Parse a transcript file (`#` comments, blank lines ignored).
pub fn parse_transcript(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let t = l.trim_end_matches('\r');
        if t.trim().is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(r) = t.strip_prefix("<< ") {
            steps.push(Step::Raw(unescape(r)));
        } else if let Some(r) = t.strip_prefix("< ") {
            steps.push(Step::Reply(r.to_string()));
        } else if let Some(r) = t.strip_prefix("> ") {
            steps.push(Step::Expect(r.to_string()));
        } else {
            return Err(format!(
                "line {}: starts with neither '> ', '< ' nor '<< '",
                n + 1
            ));
        }
    }
    Ok(steps)
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b'x' if i + 3 < b.len() => match std::str::from_utf8(&b[i + 2..i + 4])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                    None => out.push(b'x'),
                },
                c => out.push(c),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Replay a transcript on a new pty: answers as recorded, checks every command the driver
/// sends. Resolves with the first mismatch, or Ok when the transcript is done.
pub async fn replay(
    steps: Vec<Step>,
    link: Option<&Path>,
) -> std::io::Result<(PathBuf, tokio::task::JoinHandle<Result<(), String>>)> {
    let (mut master, slave, path) = pty(link)?;
    let task = tokio::spawn(async move {
        let _slave = slave;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 1024];
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Reply(l) => master
                    .write_all(format!("\r\n{l}\r\n").as_bytes())
                    .await
                    .map_err(|e| e.to_string())?,
                Step::Raw(b) => master.write_all(&b).await.map_err(|e| e.to_string())?,
                Step::Expect(want) => loop {
                    if let Some(p) = pending.iter().position(|&b| b == b'\r' || b == 0x1A) {
                        let got = String::from_utf8_lossy(&pending[..p]).trim().to_string();
                        pending.drain(..=p);
                        if got.is_empty() {
                            continue;
                        }
                        if got != want {
                            return Err(format!(
                                "step {}: expected {want:?}, the driver sent {got:?}",
                                i + 1
                            ));
                        }
                        break;
                    }
                    let n = tokio::time::timeout(Duration::from_secs(10), master.read(&mut buf))
                        .await
                        .map_err(|_| {
                            format!(
                                "step {}: the driver sent nothing (expected {want:?})",
                                i + 1
                            )
                        })?
                        .map_err(|e| e.to_string())?;
                    pending.extend_from_slice(&buf[..n]);
                },
            }
        }
        // Let the driver read the last answer before the line goes away.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    });
    Ok((path, task))
}
