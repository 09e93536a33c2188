//! The `postern` command line: check-config, hash-password, send/status against a live gateway.

use std::io::Write;
use std::process::{Command, Stdio};

fn postern() -> Command {
    Command::new(env!("CARGO_BIN_EXE_postern"))
}

#[test]
fn check_config_reports_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[outbox]\nshards = 65\ndurability = \"os\"\n[api]\nlisten = \"0.0.0.0:80\"\n[connectors.op-a]\ntype = \"sandbox\"\nwindow = 0\n[[routes]]\nto = [\"op-b\"]\n",
    )
    .unwrap();
    let out = postern().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "outbox.shards: must be 0..=64, got 65",
        "connectors.op-a.window: must be 1..=1024, got 0",
        "api.listen:",
        "routes[0].to[0]: no connector named \"op-b\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[outbox\n").unwrap();
    assert_eq!(
        postern()
            .arg("check-config")
            .arg(&syntax)
            .output()
            .unwrap()
            .status
            .code(),
        Some(64)
    );
    assert_eq!(
        postern()
            .arg("check-config")
            .arg(dir.path().join("missing.toml"))
            .output()
            .unwrap()
            .status
            .code(),
        Some(64)
    );

    let ok = postern().arg("check-config").output().unwrap();
    assert!(
        ok.status.success(),
        "embedded default: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let sample = postern()
        .arg("check-config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/postern.toml"))
        .output()
        .unwrap();
    assert!(
        sample.status.success(),
        "sample config: {}",
        String::from_utf8_lossy(&sample.stderr)
    );
}

#[test]
fn hash_password_reads_stdin() {
    let mut child = postern()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let parsed = postern::secret::parse_hash(hash.trim()).unwrap();
    assert!(parsed.verify("s3cret"));
    let empty = postern()
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!empty.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_status_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = postern::config::Config::from_toml(&format!(
        "[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[connectors.sb]\ntype = \"sandbox\"\ndlr_delay_ms = 10\n[[routes]]\nto = [\"sb\"]\n",
        dir.path().display().to_string()
    ))
    .unwrap();
    let gw = postern::app::Gateway::start(cfg).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let out = tokio::task::spawn_blocking({
        let api = api.clone();
        move || {
            postern()
                .args([
                    "send",
                    "--to",
                    "+447400123123",
                    "--text",
                    "from the cli",
                    "--api",
                    &api,
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = tokio::task::spawn_blocking(move || {
        postern()
            .args(["status", &id, "--api", &api])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "delivered");
    assert_eq!(v["text"], "from the cli");
}

#[test]
fn pdu_wbxml_and_xform_commands() {
    // decode: every field as JSON
    let out = postern()
        .args([
            "pdu",
            "decode",
            "07911326040000F011000B911346610089F600000005C8329BFD06",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["type"].as_str(),
            v["text"].as_str(),
            v["tpdu_length"].as_u64()
        ),
        (Some("SMS-SUBMIT"), Some("Hello"), Some(19))
    );
    // a truncated PDU: exit 65 and the offset in one line
    let out = postern()
        .args(["pdu", "decode", "07911326040000F011000B91"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("at octet 12") && err.lines().count() == 1,
        "{err}"
    );
    // encode, then decode what it printed: a 2-part message with concatenation
    let text = "Postern sends long messages in parts that reassemble, even with € and {braces}. "
        .repeat(3);
    let out = postern()
        .args([
            "pdu",
            "encode",
            "--to",
            "+447400123123",
            "--text",
            &text,
            "--srr",
            "--vp",
            "1d",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2);
    let mut joined = String::new();
    for (i, l) in lines.iter().enumerate() {
        let (hex_pdu, len) = l.split_once(' ').unwrap();
        let d = postern::codec::sms_pdu::decode(&hex::decode(hex_pdu).unwrap())
            .unwrap()
            .to_json();
        assert_eq!(d["tpdu_length"].as_u64().unwrap().to_string(), len);
        assert_eq!(d["udh"]["concat"]["seq"], i + 1);
        assert_eq!(d["srr"], true);
        assert_eq!(d["validity"]["seconds"], 86_400);
        joined.push_str(d["text"].as_str().unwrap());
    }
    assert_eq!(joined, text);
    assert_eq!(
        postern()
            .args([
                "pdu",
                "encode",
                "--to",
                "ThisIsWayTooLongForAnyAddress",
                "--text",
                "x"
            ])
            .output()
            .unwrap()
            .status
            .code(),
        Some(65)
    );

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("si.wbxml");
    std::fs::write(&f, hex::decode("01056a0045c60d036578616d706c650085036e657773001103313233000ac3072024050607080901034e6577206d61696c2061727269766564000101").unwrap()).unwrap();
    let out = postern()
        .args(["wbxml", "decode"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("<indication href=\"http://www.example.com/news\""));
    std::fs::write(&f, [0x03, 0x05, 0x6a, 0x00, 0x45]).unwrap();
    let out = postern()
        .args(["wbxml", "decode"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at octet"));

    let x = dir.path().join("form.xml");
    std::fs::write(&x, r#"<data id="household" version="3"><name>Amina</name><members><member>a</member><member>b</member></members></data>"#).unwrap();
    let out = postern()
        .args(["xform", "decode"])
        .arg(&x)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["form_id"], "household");
    assert_eq!(v["fields"]["members"]["member"][1], "b");
    std::fs::write(&x, "<data><open></data>").unwrap();
    assert_eq!(
        postern()
            .args(["xform", "decode"])
            .arg(&x)
            .output()
            .unwrap()
            .status
            .code(),
        Some(65)
    );
}

#[test]
fn smpp_decode_command() {
    let out = postern()
        .args([
            "smpp",
            "decode",
            "0000002a000000020000000000000001736d7070636c69656e7431007061737377 6f7264000034000000",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["command_name"].as_str(),
            v["system_id"].as_str(),
            v["interface_version"].as_u64()
        ),
        (Some("bind_transmitter"), Some("smppclient1"), Some(52))
    );
    let out = postern()
        .args(["smpp", "decode", "0000002a0000000200"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at octet"));
}

#[test]
fn hwdb_list_match_and_check() {
    let out = postern().args(["hwdb", "list"]).output().unwrap();
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.lines().count() >= 20, "{list}");
    assert!(list.contains("quectel-ec25") && list.contains("2c7c:0125"), "{list}");
    let out = postern().args(["hwdb", "match", "--usb", "12d1:1506", "--cgmm", "E3372"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "huawei-e3372");
    assert_eq!(v["matched_by"], "usb-and-at");
    let out = postern().args(["hwdb", "match", "--cgmi", "Acme", "--cgmm", "Rocket 9"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "generic");
    assert_eq!(postern().args(["hwdb", "match", "--usb", "nope"]).output().unwrap().status.code(), Some(65));
    let out = postern().args(["hwdb", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A folder with a broken entry: every problem is named, exit 65.
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hwdb/quectel-ec25.toml")).unwrap();
    std::fs::write(dir.path().join("quectel-ec25.toml"), &good).unwrap();
    std::fs::write(dir.path().join("broken.toml"), good.replace("id = \"quectel-ec25\"", "id = \"broken\"").replace("[timing]", "[timing]\ncolor = 1")).unwrap();
    std::fs::write(dir.path().join("zero.toml"), good.replace("id = \"quectel-ec25\"", "id = \"zero\"").replace("[sms]", "[sms]\nindex_base = 0")).unwrap();
    let out = postern().args(["hwdb", "check"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml") && err.contains("color"), "{err}");
    assert!(err.contains("zero.toml") && err.contains("sms-index-zero"), "{err}");
}

#[test]
fn modem_sim_prints_its_devices_and_answers_at() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let mut child = postern()
        .args(["modem-sim", "--count", "2", "--profile", "huawei-e3372", "--link-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.trim().ends_with("modem0"), "{first}");
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    // Talk AT to it over the tty: the E3372 profile answers unknown commands its own way.
    let mut tty = std::fs::OpenOptions::new().read(true).write(true).open(first.trim()).unwrap();
    let mut buf = Vec::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    tty.write_all(b"ATE0\rAT+CGMM\rAT+FOO\r").unwrap();
    let mut chunk = [0u8; 256];
    while !String::from_utf8_lossy(&buf).contains("COMMAND NOT SUPPORT") && std::time::Instant::now() < until {
        let n = tty.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    assert!(text.contains("E3372") && text.contains("COMMAND NOT SUPPORT") && text.contains("\r\r\n"), "{text:?}");
    // A control line on stdin.
    child.stdin.as_mut().unwrap().write_all(b"0:fail +4477 21\n").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("CMS ERROR: 21"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn check_config_names_every_modem_bank_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("modem.toml");
    std::fs::write(&bad, "[connectors.m]\ntype = \"modem\"\nprofile = \"nope\"\nstrategy = \"operator_prefix\"\npin_env = \"POSTERN_NO_SUCH_VAR\"\n[connectors.m.operators]\n\"12\" = [\"+44\"]\n[[routes]]\nto = [\"m\"]\n").unwrap();
    let out = postern().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["connectors.m.devices", "connectors.m.pin_env", "connectors.m.profile: no hwdb entry \"nope\"", "connectors.m.operators.12"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[connectors.m]\ntype = \"modem\"\ndevices = [\"/dev/serial/by-id/usb-*\"]\nprofile = \"huawei-e3372\"\n[[routes]]\nto = [\"m\"]\n").unwrap();
    let out = postern().arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let out = postern().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "backup", "restore", "smsc-sim", "template"] {
        assert!(script.contains(cmd), "bash completion lacks {cmd}");
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(postern().arg("man").arg(dir.path()).status().unwrap().success());
    for page in ["postern.1", "postern-serve.1", "postern-backup.1", "postern-restore.1", "postern-hwdb-match.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    assert!(!postern().args(["completions", "cmd.exe"]).status().unwrap().success());
}
