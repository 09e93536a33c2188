use super::*;

fn env_none(_: &str) -> Option<String> {
    None
}

#[test]
fn embedded_default_is_valid() {
    let c = Config::from_toml_with_env(EMBEDDED_DEFAULT, &env_none).unwrap();
    assert_eq!(c.api.listen, "127.0.0.1:8080");
    assert_eq!(c.outbox.durability, Durability::Fsync);
    assert!(c.connectors.contains_key("sandbox"));
}

#[test]
fn all_problems_reported_at_once_with_paths() {
    let text = r#"
        [outbox]
        shards = 65
        [api]
        listen = "0.0.0.0:8080"
        [connectors.op-a]
        type = "sandbox"
        window = 0
        [connectors.op-b]
        type = "sandbox"
        windw = 3
        [[routes]]
        to = ["nope"]
    "#;
    let e = Config::from_toml_with_env(text, &env_none).unwrap_err();
    let p: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
    // the unknown key fails parsing of op-b; the other section errors are still listed
    assert!(
        p.iter()
            .any(|s| s.starts_with("connectors.op-b") && s.contains("windw")),
        "{p:?}"
    );
    let text2 = text.replace("windw", "window");
    let e = Config::from_toml_with_env(&text2, &env_none).unwrap_err();
    let p: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
    assert!(
        p.contains(&"outbox.shards: must be 0..=64, got 65".to_string()),
        "{p:?}"
    );
    assert!(
        p.contains(&"connectors.op-a.window: must be 1..=1024, got 0".to_string()),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|s| s.starts_with("api.listen:") && s.contains("not loopback")),
        "{p:?}"
    );
    assert!(p.iter().any(|s| s.starts_with("routes[0].to[0]")), "{p:?}");
    assert!(p.len() >= 4);
}

#[test]
fn unknown_section_and_env_secret() {
    let e = Config::from_toml_with_env("[bogus]\nx=1\n[[routes]]\nto=[]", &env_none).unwrap_err();
    assert!(e.problems().iter().any(|p| p.path == "bogus"));
    let text = "[api]\ncallback_secret_env = \"CB\"\n[connectors.s]\ntype=\"sandbox\"\n[[routes]]\nto=[\"s\"]\n";
    assert!(Config::from_toml_with_env(text, &env_none).is_err());
    assert!(Config::from_toml_with_env(text, &|k| (k == "CB").then(|| "x".into())).is_ok());
}

#[test]
fn ports_devices_and_files_taken_twice_are_refused_before_anything_starts() {
    let hash = crate::secret::hash_secret("pw");
    let text = format!(
        r#"
        [api]
        listen = "127.0.0.1:2775"
        [connectors.esmes]
        type = "smpp-server"
        listen = "0.0.0.0:2775"
        accounts = [{{ system_id = "a", password = "{hash}" }}]
        [connectors.bank-a]
        type = "modem"
        devices = ["/dev/ttyUSB0"]
        [connectors.bank-b]
        type = "modem"
        devices = ["/dev/ttyUSB1", "/dev/ttyUSB0"]
        [connectors.sb1]
        type = "sandbox"
        journal = "/tmp/j"
        [connectors.sb2]
        type = "sandbox"
        journal = "/tmp/j"
        [[routes]]
        to = ["sb1"]
    "#
    );
    let e = Config::from_toml_with_env(&text, &env_none).unwrap_err();
    let p: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
    let has = |path: &str, by: &str| p.iter().any(|s| s.starts_with(path) && s.contains(by));
    assert!(has("connectors.esmes.listen", "api.listen"), "{p:?}");
    assert!(has("connectors.bank-b.devices[1]", "connectors.bank-a.devices[0]"), "{p:?}");
    assert!(has("connectors.sb2.journal", "connectors.sb1.journal"), "{p:?}");
    assert!(!p.iter().any(|s| s.starts_with("connectors.bank-b.devices[0]")), "{p:?}");
    // Different ports, devices and files: no clash.
    let ok = text
        .replace("0.0.0.0:2775", "127.0.0.1:2776")
        .replace("\"/dev/ttyUSB1\", \"/dev/ttyUSB0\"", "\"/dev/ttyUSB1\"")
        .replace("journal = \"/tmp/j\"\n        [[routes]]", "journal = \"/tmp/k\"\n        [[routes]]");
    Config::from_toml_with_env(&ok, &env_none).unwrap();
}
