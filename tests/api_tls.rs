//! HTTPS on the API (the real binary): served with the configured certificate, a renewed one
//! picked up on SIGHUP (a broken one is not), client certificates required when a client CA
//! is set, and a plain non-loopback listener refused unless allowed.

mod common;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: PathBuf,
}

fn new_ca(dir: &Path) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    Ca { der: cert.der().clone(), issuer: Issuer::new(params, key), pem }
}

/// A certificate for 127.0.0.1 signed by `ca`, written as `name.pem` / `name.key`.
fn leaf(ca: &Ca, dir: &Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca.issuer).unwrap();
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, cert.der().clone())
}

fn client(ca: &Ca, identity: Option<(&Path, &Path)>) -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let b = ClientConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match identity {
        None => b.with_no_client_auth(),
        Some((c, k)) => {
            use tokio_rustls::rustls::pki_types::pem::PemObject;
            let chain = vec![CertificateDer::from_pem_file(c).unwrap()];
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(k).unwrap()).unwrap()
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// GET /healthz over TLS: the certificate the server showed, and the status line (or the error).
async fn get(connector: &tokio_rustls::TlsConnector, base: &str) -> (Option<CertificateDer<'static>>, Result<String, String>) {
    let addr = base.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = match connector.connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => return (None, Err(e.to_string())),
    };
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first().cloned()).map(|c| c.into_owned());
    let _ = tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    match r {
        Ok(Ok(_)) if text.starts_with("HTTP/1.1") => (cert, Ok(text.lines().next().unwrap_or("").to_string())),
        Ok(Err(e)) => (cert, Err(e.to_string())),
        _ => (cert, Err(format!("no answer: {text:?}"))),
    }
}

fn config(dir: &Path, name: &str, tls: &str) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n{tls}\n[connectors.sb]\ntype = \"sandbox\"\n[[routes]]\nto = [\"sb\"]\n", dir.join(name).display().to_string()),
    )
    .unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_api_with_reload_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path());
    let (cert, key, first) = leaf(&ca, dir.path(), "server");
    let (child, base) = start_binary(&config(dir.path(), "a", &format!("[api.tls]\ncert = {:?}\nkey = {:?}", cert, key)));
    let gw = Reaped(child);
    assert!(base.starts_with("https://"), "{base}");
    let c = client(&ca, None);
    let (seen, status) = get(&c, &base).await;
    assert_eq!(status.unwrap(), "HTTP/1.1 200 OK");
    assert_eq!(seen.unwrap(), first);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new().get(format!("{}/healthz", base.replace("https", "http"))).send().await;
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));

    // A renewed certificate is served after SIGHUP; a broken file is not, the old one stays.
    let (_, _, renewed) = leaf(&ca, dir.path(), "server");
    assert_ne!(renewed, first);
    let hup = |pid: u32| assert!(std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success());
    hup(gw.0.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (seen, status) = get(&c, &base).await;
    assert_eq!(status.unwrap(), "HTTP/1.1 200 OK");
    assert_eq!(seen.unwrap(), renewed, "the renewed certificate after SIGHUP");
    std::fs::write(&cert, "not a certificate").unwrap();
    hup(gw.0.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (seen, status) = get(&c, &base).await;
    assert_eq!(status.unwrap(), "HTTP/1.1 200 OK", "the gateway lives on after a bad reload");
    assert_eq!(seen.unwrap(), renewed);

    // Client certificates from the CA required: none is refused, the CA's is served.
    let (cert2, key2, _) = leaf(&ca, dir.path(), "server2");
    let (ccert, ckey, _) = leaf(&ca, dir.path(), "client");
    let tls = format!("[api.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}", cert2, key2, ca.pem);
    let (child, base2) = start_binary(&config(dir.path(), "b", &tls));
    let _gw2 = Reaped(child);
    let (_, status) = get(&c, &base2).await;
    assert!(status.is_err(), "served without a client certificate: {status:?}");
    let (_, status) = get(&client(&ca, Some((&ccert, &ckey))), &base2).await;
    assert_eq!(status.unwrap(), "HTTP/1.1 200 OK");
    // One signed by another CA is refused.
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = new_ca(&other_dir);
    let (ocert, okey, _) = leaf(&other, dir.path(), "stranger");
    let (_, status) = get(&client(&ca, Some((&ocert, &okey))), &base2).await;
    assert!(status.is_err(), "served a stranger's certificate: {status:?}");
}

#[test]
fn plain_api_on_a_public_address_needs_tls_or_consent() {
    let hash = postern::secret::hash_secret("k");
    let base = format!("[api]\nlisten = \"0.0.0.0:8443\"\nkeys = [{hash:?}]\n");
    let tail = "[connectors.sb]\ntype = \"sandbox\"\n[[routes]]\nto = [\"sb\"]\n";
    let e = postern::config::Config::from_toml_with_env(&format!("{base}{tail}"), &|_| None).err().expect("accepted plain HTTP on 0.0.0.0");
    assert!(e.to_string().contains("api.tls"), "{e}");
    postern::config::Config::from_toml_with_env(&format!("{base}allow_plaintext = true\n{tail}"), &|_| None).unwrap();
    let e = postern::config::Config::from_toml_with_env(&format!("{base}[api.tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"\n{tail}"), &|_| None).err().unwrap();
    assert!(e.to_string().contains("api.tls.cert"), "{e}");
}
