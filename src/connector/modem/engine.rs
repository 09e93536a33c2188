//! The AT engine: owns one serial line (anything `AsyncRead + AsyncWrite`: a tokio-serial port,
//! a pty, an in-memory pipe), writes commands with the profile's pacing, feeds what comes back
//! to the pure [`AtParser`](super::at::AtParser), and turns it into answers, per-command
//! timeouts and a queue of unsolicited result codes. One modem task owns one engine, so there
//! is never more than one command on a line.

use super::at::{AtParser, Event, FinalResult};
use std::collections::VecDeque;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A plain command's answer.
    Answer,
    /// The `> ` prompt of `AT+CMGS`: the PDU was not sent.
    Prompt,
    /// `+CMGS: <mr>` after the PDU: the network may have the message.
    Result,
}

/// Why a command did not succeed.
#[derive(Debug, Error)]
pub enum AtError {
    #[error("no answer to {cmd} in time ({stage:?})")]
    Timeout { cmd: String, stage: Stage },
    #[error("{cmd} answered {result:?}")]
    Failed { cmd: String, result: FinalResult },
    #[error("serial port: {0}")]
    Io(#[from] std::io::Error),
    #[error("serial port closed")]
    Closed,
}

/// An unsolicited result code (with the PDU line of the two-line ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urc {
    pub line: String,
    pub pdu: Option<String>,
}

/// The engine over one line.
pub struct AtPort<IO> {
    io: IO,
    parser: AtParser,
    urcs: VecDeque<Urc>,
    /// Pause between bytes of a command line (ModemManager's pacing for slow parsers).
    pub per_byte_delay: Duration,
    /// Pause between commands.
    pub inter_command_delay: Duration,
    last_write: Option<Instant>,
    /// Bytes read and written, for the modem's trace log.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AtPort<IO> {
    pub fn new(io: IO, parser: AtParser) -> Self {
        AtPort {
            io,
            parser,
            urcs: VecDeque::new(),
            per_byte_delay: Duration::ZERO,
            inter_command_delay: Duration::ZERO,
            last_write: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Replace the parser (once the hwdb entry, and so its URC table, is known).
    pub fn set_parser(&mut self, parser: AtParser) {
        self.parser = parser;
    }

    async fn write(&mut self, bytes: &[u8], paced: bool) -> Result<(), AtError> {
        if let Some(t) = self.last_write {
            let next = t + self.inter_command_delay;
            if next > Instant::now() {
                tokio::time::sleep_until(next).await;
            }
        }
        if paced && !self.per_byte_delay.is_zero() {
            for b in bytes {
                self.io.write_all(std::slice::from_ref(b)).await?;
                self.io.flush().await?;
                tokio::time::sleep(self.per_byte_delay).await;
            }
        } else {
            self.io.write_all(bytes).await?;
            self.io.flush().await?;
        }
        self.bytes_out += bytes.len() as u64;
        self.last_write = Some(Instant::now());
        Ok(())
    }

    /// Read once (until `deadline`); None when the deadline passed.
    async fn read_events(&mut self, deadline: Instant) -> Result<Option<Vec<Event>>, AtError> {
        let mut buf = [0u8; 2048];
        match tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await {
            Err(_) => Ok(None),
            Ok(Ok(0)) => Err(AtError::Closed),
            Ok(Ok(n)) => {
                self.bytes_in += n as u64;
                let text = String::from_utf8_lossy(&buf[..n]);
                // An echoed `AT+CPIN="…"` carries the PIN: never log it.
                if !text.contains("CPIN=") {
                    tracing::trace!(bytes = %text.escape_debug(), "modem rx");
                }
                Ok(Some(self.parser.feed(&buf[..n])))
            }
            Ok(Err(e)) => Err(AtError::Io(e)),
        }
    }

    /// Wait for the final result of the pending command (or the prompt when `prompt`).
    async fn wait_final(
        &mut self,
        cmd: &str,
        deadline: Instant,
        stage: Stage,
    ) -> Result<Result<Vec<String>, FinalResult>, AtError> {
        loop {
            let Some(events) = self.read_events(deadline).await? else {
                self.parser.abandon();
                return Err(AtError::Timeout {
                    cmd: cmd.to_string(),
                    stage,
                });
            };
            let mut done = None;
            for ev in events {
                match ev {
                    Event::Final {
                        result: FinalResult::Ok,
                        lines,
                    } if done.is_none() => done = Some(Ok(lines)),
                    Event::Final { result, .. } if done.is_none() => done = Some(Err(result)),
                    Event::Prompt if stage == Stage::Prompt && done.is_none() => {
                        done = Some(Ok(Vec::new()))
                    }
                    Event::Urc { line, pdu } => self.urcs.push_back(Urc { line, pdu }),
                    Event::Stray(line) => tracing::trace!(%line, "stray modem line"),
                    Event::Overlong => tracing::warn!("overlong modem line dropped"),
                    other => tracing::trace!(?other, "modem event after the answer"),
                }
            }
            if let Some(d) = done {
                return Ok(d);
            }
        }
    }

    /// Run one command; its answer lines on `OK`.
    pub async fn command(&mut self, cmd: &str, timeout: Duration) -> Result<Vec<String>, AtError> {
        self.run(cmd, timeout, false).await
    }

    /// A command whose answer ends on its `+XXX:` line, `OK` or not (`cpin-no-ok`).
    pub async fn command_ending_on_answer(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, AtError> {
        self.run(cmd, timeout, true).await
    }

    async fn run(
        &mut self,
        cmd: &str,
        timeout: Duration,
        ending_on_answer: bool,
    ) -> Result<Vec<String>, AtError> {
        if ending_on_answer {
            self.parser.command_ending_on_answer(cmd);
        } else {
            self.parser.command(cmd, false);
        }
        let mut line = Vec::with_capacity(cmd.len() + 1);
        line.extend_from_slice(cmd.as_bytes());
        line.push(b'\r');
        self.write(&line, true).await?;
        let deadline = Instant::now() + timeout;
        match self.wait_final(cmd, deadline, Stage::Answer).await? {
            Ok(lines) => Ok(lines),
            Err(result) => Err(AtError::Failed {
                cmd: cmd.to_string(),
                result,
            }),
        }
    }

    /// `AT+CMGS=<tpdu_len>`, the prompt, the hex PDU and Ctrl-Z; the answer lines (`+CMGS: <mr>`).
    /// A prompt timeout sends ESC (the PDU was not sent); a result timeout means the outcome is
    /// unknown.
    pub async fn send_pdu(
        &mut self,
        tpdu_len: usize,
        pdu: &[u8],
        prompt_timeout: Duration,
        result_timeout: Duration,
    ) -> Result<Vec<String>, AtError> {
        let cmd = format!("AT+CMGS={tpdu_len}");
        self.parser.command(&cmd, true);
        self.write(format!("{cmd}\r").as_bytes(), true).await?;
        match self
            .wait_final(&cmd, Instant::now() + prompt_timeout, Stage::Prompt)
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(result)) => return Err(AtError::Failed { cmd, result }),
            Err(e) => {
                // Abort whatever the modem may still be waiting for.
                let _ = self.write(&[0x1B], false).await;
                return Err(e);
            }
        }
        let mut body = hex::encode_upper(pdu).into_bytes();
        body.push(0x1A);
        self.write(&body, false).await?;
        match self
            .wait_final(&cmd, Instant::now() + result_timeout, Stage::Result)
            .await?
        {
            Ok(lines) => Ok(lines),
            Err(result) => Err(AtError::Failed { cmd, result }),
        }
    }

    /// The next unsolicited result code, reading until `deadline`; None if none came.
    /// Cancel-safe: bytes read are parsed before this returns.
    pub async fn next_urc(&mut self, deadline: Instant) -> Result<Option<Urc>, AtError> {
        loop {
            if let Some(u) = self.urcs.pop_front() {
                return Ok(Some(u));
            }
            let Some(events) = self.read_events(deadline).await? else {
                return Ok(None);
            };
            for ev in events {
                match ev {
                    Event::Urc { line, pdu } => self.urcs.push_back(Urc { line, pdu }),
                    Event::Stray(line) => tracing::trace!(%line, "stray modem line"),
                    Event::Overlong => tracing::warn!("overlong modem line dropped"),
                    _ => {}
                }
            }
        }
    }

    /// Keep only the queued URCs `keep` accepts (boot noise read during init is dropped).
    pub fn retain_urcs(&mut self, keep: impl Fn(&Urc) -> bool) {
        self.urcs.retain(|u| keep(u));
    }

    /// A queued URC, without reading.
    pub fn take_urc(&mut self) -> Option<Urc> {
        self.urcs.pop_front()
    }

    /// Write raw bytes (ESC to abort a half-entered PDU).
    pub async fn raw(&mut self, bytes: &[u8]) -> Result<(), AtError> {
        self.write(bytes, false).await
    }

    /// Time since the last write.
    pub fn idle(&self) -> Duration {
        self.last_write.map_or(Duration::MAX, |t| t.elapsed())
    }

    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    pub fn into_inner(self) -> IO {
        self.io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn command_prompt_send_and_urcs() {
        let (a, mut b) = duplex(4096);
        let mut port = AtPort::new(a, AtParser::default());
        let peer = tokio::spawn(async move {
            let mut buf = vec![0u8; 256];
            let n = b.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"AT+CSQ\r");
            b.write_all(b"\r\n+CMTI: \"SM\",3\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
                .await
                .unwrap();
            let n = b.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"AT+CMGS=5\r");
            b.write_all(b"\r\n> ").await.unwrap();
            let mut got = Vec::new();
            while !got.ends_with(&[0x1A]) {
                let n = b.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"00AABB\x1A");
            b.write_all(b"\r\n+CMGS: 7\r\n\r\nOK\r\n").await.unwrap();
            // then nothing: the next command times out
            let _ = b.read(&mut buf).await;
            b
        });
        let lines = port
            .command("AT+CSQ", Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(lines, vec!["+CSQ: 20,99"]);
        assert_eq!(
            port.take_urc(),
            Some(Urc {
                line: "+CMTI: \"SM\",3".into(),
                pdu: None
            })
        );
        let lines = port
            .send_pdu(
                5,
                &[0x00, 0xAA, 0xBB],
                Duration::from_secs(2),
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert_eq!(lines, vec!["+CMGS: 7"]);
        let e = port
            .command("AT", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                AtError::Timeout {
                    stage: Stage::Answer,
                    ..
                }
            ),
            "{e}"
        );
        let _b = peer.await.unwrap();
    }
}
