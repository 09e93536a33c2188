//! Mail peers for tests: Python's aiosmtpd as the SMTP server Postern sends to (mails saved and
//! parsed back with Python's `email` package), smtplib as the client that sends into Postern's
//! SMTP listener.

use super::*;
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The SMTP server as a child process; it stops when dropped.
pub struct SmtpPeer {
    child: Child,
    pub port: u16,
    out: tempfile::TempDir,
    py: PathBuf,
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

impl SmtpPeer {
    pub fn start(tls: Option<(&Path, &Path)>) -> SmtpPeer {
        let py = python_venv("aiosmtpd-venv", &["aiosmtpd==1.4.6"]);
        let out = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(&py);
        cmd.arg(peers().join("smtp_server.py")).arg(out.path());
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("smtp_server.py said {line:?}"));
        SmtpPeer { child, port, out, py }
    }

    /// The mails received so far, parsed.
    pub fn mails(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let o = Command::new(&self.py).arg(peers().join("parse_mail.py")).arg(f).output().unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                serde_json::from_slice(&o.stdout).unwrap()
            })
            .collect()
    }
}

pub fn smtp_link(port: u16, tls: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "host = \"127.0.0.1\"".to_string(),
        format!("port = {port}"),
        format!("tls = \"{tls}\""),
        "from = \"alerts@postern.example\"".to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The SMTP listener `mailin`'s host and port.
pub fn listener(g: &TestGateway) -> (String, u16) {
    let addr = g.gw.hub.link("mailin").unwrap().connector.status()["listen"].as_str().unwrap().to_string();
    let (host, port) = addr.rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap())
}

/// A mail spec: `base` with the keys of `patch` replaced.
pub fn patched(base: &Value, patch: Value) -> Value {
    let mut spec = base.clone();
    for (k, v) in patch.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

/// Send one mail with Python's smtplib; its outcome.
pub fn smtplib(spec: Value) -> Value {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(peers().join("smtp_client.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("smtp_client.py said {}", String::from_utf8_lossy(&o.stdout)))
}

