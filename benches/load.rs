//! End-to-end load harness: starts the release `postern` binary with the sandbox carrier on a
//! fresh data directory, drives HTTP with N keep-alive connections, and reports accepted msg/s,
//! completed (final state) msg/s, and p50/p99 accept latency. Not a test: run it by hand.
//!
//!   cargo bench --bench load -- --mode single --connections 128 --seconds 20
//!   cargo bench --bench load -- --mode batch --batch 100 --connections 16 --seconds 60
//!   cargo bench --bench load -- --mode single --connections 64 --rate 20000   # latency at a set rate
//!   cargo bench --bench load -- --mode batch --rate 1300   # batches at a set rate (requests/s)
//!   (`--sandbox-window N`: the sandbox carrier's window, 1..=1024, default 1024)
//!   cargo bench --bench load -- --mode sendsms --connections 128 --seconds 20
//!   cargo bench --bench load -- --carrier smpp --sim-ack-ms 20 --smpp-window 64   # via SMPP
//!
//!   cargo bench --bench load -- --carrier modem --modems 64 --mode batch --connections 4 --seconds 20
//!   cargo bench --bench load -- --mode sink --listen 127.0.0.1:13080   # counts receipt callbacks
//!
//! `DLR_URL=http://…` adds a receipt callback (`dlr-mask=3&dlr-url=…`) to every `sendsms`.
//!
//! With `--carrier modem` the messages go to a bank of simulated modems on ptys
//! (`postern modem-sim --count N`, a separate process), with the rate limit off.
//! With `--carrier smpp` the messages go over one SMPP bind to `postern smsc-sim` (a separate
//! process) and the rate is also counted at the SMSC. `NO_DLR=1` sets `dlr = false` on the link
//! (this reproduces the known stall noted in BENCHMARKS.md).
//!
//! The load generator is a minimal HTTP/1.1 client (one request in flight per connection) so
//! that it takes as little of the machine's two cores as possible.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;

struct Args {
    mode: String,
    connections: usize,
    seconds: u64,
    batch: usize,
    rate: u64,
    shards: u32,
    durability: String,
    binary: String,
    carrier: String,
    sim_ack_ms: u64,
    smpp_window: usize,
    /// Window of the sandbox carrier (messages handed to it and not yet answered).
    sandbox_window: usize,
    /// Load a running server at this address (host:port) instead of starting Postern.
    external: Option<String>,
    /// Stop after this many messages (0 = run for --seconds).
    count: u64,
    /// `--carrier modem`: simulated modems in the bank, and their hwdb profile.
    modems: u32,
    modem_profile: String,
    /// `--mode sink`: the address to listen on.
    listen: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: "single".into(),
        connections: 128,
        seconds: 20,
        batch: 100,
        rate: 0,
        shards: 0,
        durability: "fsync".into(),
        binary: env!("CARGO_BIN_EXE_postern").into(),
        carrier: "sandbox".into(),
        sim_ack_ms: 0,
        smpp_window: 64,
        sandbox_window: 1024,
        external: None,
        count: 0,
        modems: 64,
        modem_profile: "generic".into(),
        listen: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--mode" => a.mode = v,
            "--connections" => a.connections = v.parse().expect("--connections N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds N"),
            "--batch" => a.batch = v.parse().expect("--batch N"),
            "--rate" => a.rate = v.parse().expect("--rate MSG_PER_S"),
            "--shards" => a.shards = v.parse().expect("--shards N"),
            "--durability" => a.durability = v,
            "--binary" => a.binary = v,
            "--carrier" => a.carrier = v,
            "--sim-ack-ms" => a.sim_ack_ms = v.parse().expect("--sim-ack-ms N"),
            "--smpp-window" => a.smpp_window = v.parse().expect("--smpp-window N"),
            "--sandbox-window" => a.sandbox_window = v.parse().expect("--sandbox-window N"),
            "--external" => a.external = Some(v),
            "--count" => a.count = v.parse().expect("--count N"),
            "--modems" => a.modems = v.parse().expect("--modems N"),
            "--modem-profile" => a.modem_profile = v,
            "--listen" => a.listen = Some(v),
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// One keep-alive connection: send a request, read the response (Content-Length framed).
struct Conn {
    r: TokioBufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).ok();
        let (r, w) = s.into_split();
        Conn {
            r: TokioBufReader::new(r),
            w,
            line: String::new(),
        }
    }

    async fn roundtrip(&mut self, req: &[u8], body: &mut Vec<u8>) -> std::io::Result<u16> {
        self.w.write_all(req).await?;
        self.line.clear();
        self.r.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            self.line.clear();
            if self.r.read_line(&mut self.line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        body.resize(len, 0);
        self.r.read_exact(body).await?;
        Ok(status)
    }
}

/// `EMAIL_BYTES=N`: `single` and `batch` send emails of N bytes of text (to `userK@example.org`)
/// instead of SMS.
fn email_text() -> Option<&'static str> {
    static T: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    T.get_or_init(|| std::env::var("EMAIL_BYTES").ok().and_then(|v| v.parse::<usize>().ok()).map(|n| "x".repeat(n))).as_deref()
}

fn request(mode: &str, batch: usize, n: u64) -> (Vec<u8>, u64) {
    let to = |k: u64| format!("+4477{:08}", k % 100_000_000);
    let item = |k: u64, text: String| match email_text() {
        Some(body) => format!("{{\"to\":\"user{k}@example.org\",\"subject\":\"{text}\",\"text\":\"{body}\"}}"),
        None => format!("{{\"to\":\"{}\",\"text\":\"{text}\"}}", to(k)),
    };
    match mode {
        "single" if email_text().is_some() => {
            let body = item(n, format!("load test message {n}"));
            (format!("POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes(), 1)
        }
        "single" => {
            let body = format!("{{\"to\":\"{}\",\"from\":\"Postern\",\"text\":\"load test message {n}\"}}", to(n));
            (format!("POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes(), 1)
        }
        "batch" => {
            let items: Vec<String> = (0..batch as u64)
                .map(|k| item(n * batch as u64 + k, format!("load test message {n}-{k}")))
                .collect();
            let body = format!("{{\"messages\":[{}]}}", items.join(","));
            (
                format!("POST /v1/messages/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes(),
                batch as u64,
            )
        }
        "sendsms" => (
            format!("GET /cgi-bin/sendsms?username=bench&password=bench&from=Postern&to=%2B4477{:08}&text=load+test+message+{n}{} HTTP/1.1\r\nhost: x\r\n\r\n", n % 100_000_000, dlr_query()).into_bytes(),
            1,
        ),
        m => panic!("unknown mode {m}"),
    }
}

/// `DLR_URL=http://…` asks for a receipt callback on each `sendsms` (Kannel's `dlr-mask=3`:
/// delivered or undelivered), to that URL with the status and message reference.
fn dlr_query() -> &'static str {
    static Q: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    Q.get_or_init(|| match std::env::var("DLR_URL") {
        Ok(url) => {
            let enc: String = url
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            format!("&dlr-mask=3&dlr-url={enc}")
        }
        Err(_) => String::new(),
    })
}

/// `--mode sink --listen ADDR`: the project's HTTP receiver (`postern::sim::http`), answering
/// every request `200` and counting them (receipt callbacks from Kannel's smsbox or from
/// Postern), printing once a second `callbacks N first_ms F last_ms L` (ms since the epoch).
/// Runs until killed.
fn sink(listen: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let opts = postern::sim::http::SinkOptions { fail_first: 0, keep: false };
        let sink = postern::sim::http::HttpSink::start(listen, opts).await.expect("bind --listen");
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (f, l) = sink.span();
            println!("callbacks {} first_ms {f} last_ms {l}", sink.count());
        }
    });
}

fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(addr: &str) -> String {
    let mut c = Conn::open(addr).await;
    let mut body = Vec::new();
    let _ = c
        .roundtrip(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n", &mut body)
        .await;
    String::from_utf8_lossy(&body).into_owned()
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
}

fn main() {
    let a = parse_args();
    if a.mode == "sink" {
        return sink(a.listen.as_deref().expect("--mode sink needs --listen ADDR"));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bench.toml");
    let bench_hash = postern::secret::hash_secret("bench");
    // Optional SMPP carrier: the simulator in its own process.
    let mut sim_child = None;
    let sim_counts = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<(Instant, u64)>::new()));
    // The simulator's own first and last submit_sm times (ms since the epoch).
    let sim_span = std::sync::Arc::new(parking_lot::Mutex::new((0u64, 0u64)));
    let connector = if a.carrier == "smpp" {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&a.binary)
            .args([
                "smsc-sim",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--ack-delay-ms",
                &a.sim_ack_ms.to_string(),
                "--dlr-delay-ms",
                "200",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start smsc-sim");
        let out = BufReader::new(child.stdout.take().unwrap());
        let counts = sim_counts.clone();
        let span = sim_span.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let field = |name: &str| line.split_whitespace().skip_while(|w| *w != name).nth(1).and_then(|n| n.parse::<u64>().ok());
                if let (Some(f), Some(l)) = (field("first_ms"), field("last_ms")) {
                    *span.lock() = (f, l);
                }
                if let Some(n) = line
                    .split_whitespace()
                    .skip_while(|w| *w != "submits")
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                {
                    counts.lock().push((Instant::now(), n));
                }
            }
        });
        sim_child = Some(child);
        std::thread::sleep(Duration::from_millis(300));
        format!("[connectors.sandbox]\ntype = \"smpp\"\nurl = \"smpp://127.0.0.1:{port}\"\nsystem_id = \"postern\"\npassword = \"secret\"\nwindow = {}\n{}", a.smpp_window, if std::env::var("NO_DLR").is_ok() { "dlr = false\n" } else { "" })
    } else if a.carrier == "modem" {
        let links = dir.path().join("ttys");
        let mut child = Command::new(&a.binary)
            .args(["modem-sim", "--count", &a.modems.to_string(), "--profile", &a.modem_profile, "--dlr-delay-ms", "200", "--link-dir"])
            .arg(&links)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start modem-sim");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..a.modems {
            out.next().expect("modem-sim exited").unwrap();
        }
        std::thread::spawn(move || for _ in out {});
        sim_child = Some(child);
        format!(
            "[connectors.sandbox]\ntype = \"modem\"\ndevices = [\"{}/modem*\"]\nrate_per_min = 0\nwindow = {}\nhealth_s = 300\npoll_s = 300\n",
            links.display(),
            (a.modems as usize * 4).min(1024)
        )
    } else {
        format!("[connectors.sandbox]\ntype = \"sandbox\"\nwindow = {}\ndlr_delay_ms = 200\n", a.sandbox_window)
    };
    let smpp_in_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let smpp_in = if a.mode == "smpp" {
        format!(
            "[connectors.esme]\ntype = \"smpp-server\"\nlisten = \"127.0.0.1:{smpp_in_port}\"\nwindow = 1024\n[[connectors.esme.accounts]]\nsystem_id = \"bench\"\npassword = \"{bench_hash}\"\nmax_binds = 64\n"
        )
    } else {
        String::new()
    };
    let connector = format!("{connector}{smpp_in}");
    std::fs::write(
        &cfg,
        format!(
            "[outbox]\npath = {:?}\nshards = {}\ndurability = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\nmax_batch = 1000\n\
             [[api.sendsms_users]]\nusername = \"bench\"\npassword = \"{bench_hash}\"\n\
             {connector}[[routes]]\nto = [\"sandbox\"]\n",
            dir.path().join("data").display().to_string(),
            a.shards,
            a.durability
        ),
    )
    .unwrap();
    // Postern under test: started here, or already running (`--external`, e.g. Kannel).
    let (mut child, addr) = match &a.external {
        Some(ext) => (None, ext.clone()),
        None => {
            let mut child = Command::new(&a.binary)
                .args(["serve", "-c"])
                .arg(&cfg)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .spawn()
                .expect("start postern");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let addr = loop {
                let l = lines.next().expect("postern exited").unwrap();
                if let Some(rest) = l.trim().strip_prefix("API:") {
                    break rest
                        .trim()
                        .trim_start_matches("http://")
                        .trim_end_matches("/v1/messages")
                        .to_string();
                }
            };
            std::thread::spawn(move || for _ in lines {});
            (Some(child), addr)
        }
    };
    let pid = child.as_ref().map(|c| c.id());
    // Wait for the link to be up before the clock starts.
    std::thread::sleep(Duration::from_millis(if a.carrier == "smpp" {
        1500
    } else {
        0
    }));
    if a.carrier == "modem" {
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            let body = http_get(&addr, "/v1/connectors");
            let ready = body.split("\"modems_ready\":").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
            if ready >= a.modems || Instant::now() > until {
                println!("modems ready: {ready}/{}", a.modems);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let sim_pid = if a.carrier == "modem" { sim_child.as_ref().map(|c| c.id()) } else { None };
    let sim_cpu0 = proc_cpu(sim_pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let seq = Arc::new(AtomicU64::new(0));
        let lat = Arc::new(parking_lot::Mutex::new(Vec::<u32>::with_capacity(1 << 20)));
        // Open every connection before the clock starts.
        let mut conns = Vec::new();
        let smpp_mode = a.mode == "smpp";
        for _ in 0..if smpp_mode { 0 } else { a.connections } {
            conns.push(Conn::open(&addr).await);
        }
        let mut esmes = Vec::new();
        for _ in 0..if smpp_mode { a.connections } else { 0 } {
            esmes.push(esme_bind(&format!("127.0.0.1:{smpp_in_port}")).await);
        }
        let cpu0 = proc_cpu(pid);
        let before = scrape(&addr).await;
        let done0 = metric(&before, "postern_message_transitions_total", "state=\"delivered\"");
        let started = Instant::now();
        let per_conn_interval = if a.rate > 0 { Some(Duration::from_secs_f64(a.connections as f64 / a.rate as f64)) } else { None };
        let mut tasks = Vec::new();
        for mut c in conns {
            let (stop, accepted, errors, seq, lat, mode) = (stop.clone(), accepted.clone(), errors.clone(), seq.clone(), lat.clone(), a.mode.clone());
            let batch = a.batch;
            let count_limit = a.count;
            tasks.push(tokio::spawn(async move {
                let mut body = Vec::new();
                let mut local = Vec::with_capacity(1 << 16);
                let mut tick = per_conn_interval.map(|d| {
                    let mut t = tokio::time::interval(d);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                while !stop.load(Ordering::Relaxed) {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    if count_limit > 0 && n >= count_limit {
                        break;
                    }
                    let (req, count) = request(&mode, batch, n);
                    let t0 = Instant::now();
                    match c.roundtrip(&req, &mut body).await {
                        Ok(202) => {
                            accepted.fetch_add(count, Ordering::Relaxed);
                            local.push(t0.elapsed().as_micros() as u32);
                        }
                        Ok(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                lat.lock().extend(local);
            }));
        }
        for client in esmes {
            let (stop, accepted, errors, seq, lat) = (stop.clone(), accepted.clone(), errors.clone(), seq.clone(), lat.clone());
            let (window, count_limit) = (a.smpp_window, a.count);
            tasks.push(tokio::spawn(async move {
                use futures::stream::{FuturesUnordered, StreamExt};
                let mut inflight = FuturesUnordered::new();
                let mut local = Vec::with_capacity(1 << 16);
                loop {
                    while inflight.len() < window && !stop.load(Ordering::Relaxed) {
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        if count_limit > 0 && n >= count_limit {
                            break;
                        }
                        let c = client.clone();
                        inflight.push(async move {
                            let t0 = Instant::now();
                            (c.submit_sm(esme_submit(n)).await.is_ok(), t0.elapsed())
                        });
                    }
                    match inflight.next().await {
                        Some((true, d)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            local.push(d.as_micros() as u32);
                        }
                        Some((false, _)) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        None => break,
                    }
                }
                lat.lock().extend(local);
                let _ = client.unbind().await;
            }));
        }
        let mut max_depth = 0f64;
        let deadline = started + Duration::from_secs(a.seconds);
        while Instant::now() < deadline && !(a.count > 0 && tasks.iter().all(|t| t.is_finished())) {
            tokio::time::sleep(Duration::from_millis(if a.count > 0 { 50 } else { 1000 })).await;
            if a.external.is_none() {
                let m = scrape(&addr).await;
                max_depth = max_depth.max(metric(&m, "postern_outbox_depth", ""));
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = proc_cpu(pid) - cpu0;
        let n_acc = accepted.load(Ordering::Relaxed);
        // Let the last receipts arrive, then count what reached delivered.
        let mut done = 0.0;
        let drain_deadline = Instant::now() + Duration::from_secs(if a.external.is_some() { 0 } else { 30 });
        let no_receipts = a.carrier == "smpp" && std::env::var("NO_DLR").is_ok();
        while Instant::now() < drain_deadline {
            if no_receipts {
                // Nothing will be delivered: wait until the SMSC has every message instead.
                if sim_counts.lock().last().is_some_and(|x| x.1 >= n_acc) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            let m = scrape(&addr).await;
            done = metric(&m, "postern_message_transitions_total", "state=\"delivered\"") - done0;
            if done >= n_acc as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let completion_elapsed = started.elapsed().as_secs_f64();
        let mut l = lat.lock().clone();
        l.sort_unstable();
        println!(
            "mode={} connections={} batch={} rate={} shards={} durability={} seconds={:.1}",
            a.mode, a.connections, if a.mode == "batch" { a.batch } else { 1 }, a.rate, a.shards, a.durability, elapsed
        );
        println!("accepted:  {n_acc} msgs, {:.0} msg/s ({} errors)", n_acc as f64 / elapsed, errors.load(Ordering::Relaxed));
        println!("completed: {done:.0} delivered, {:.0} msg/s over {completion_elapsed:.1} s (incl. {} ms receipt delay)", done / completion_elapsed, 200);
        println!("latency:   p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms per request", pct(&l, 0.5), pct(&l, 0.99), pct(&l, 1.0));
        println!("outbox:    max depth {max_depth:.0}");
        println!("cpu:       postern {:.1} s = {:.1} us/msg", cpu, cpu * 1e6 / n_acc.max(1) as f64);
        if a.carrier == "modem" {
            let all = proc_cpu(pid) - cpu0;
            println!("cpu:       postern {all:.1} s incl. the drain = {:.1} us per delivered msg", all * 1e6 / done.max(1.0));
            let sim_cpu = proc_cpu(sim_pid) - sim_cpu0;
            println!("cpu:       modem-sim {:.1} s = {:.1} us/msg (the simulated modems, not Postern)", sim_cpu, sim_cpu * 1e6 / n_acc.max(1) as f64);
            let m = scrape(&addr).await;
            let sent: f64 = m.lines().filter(|l| l.starts_with("postern_modem_sent_total")).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
            println!("modems:    {sent:.0} sent by the bank ({:.0} msg/s to the end of the drain)", sent / completion_elapsed);
        }
        if a.carrier == "smpp" {
            // Rate at the SMSC over the load period (from its per-second counters).
            let c = sim_counts.lock().clone();
            let in_window: Vec<_> = c.iter().filter(|(t, _)| *t >= started && *t <= started + Duration::from_secs(a.seconds)).collect();
            if let (Some(first), Some(last)) = (in_window.first(), in_window.last()) {
                let secs = last.0.duration_since(first.0).as_secs_f64().max(1.0);
                println!("smsc:      {} submit_sm counted, {:.0} submit_sm/s during the load", last.1, (last.1 - first.1) as f64 / secs);
            }
            // With --count: every message reached the SMSC; its first-to-last rate.
            if a.count > 0 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let (f, l) = *sim_span.lock();
                let total = sim_counts.lock().last().map_or(0, |x| x.1);
                if l > f {
                    println!("smsc:      first -> last submit_sm: {total} in {:.2} s = {:.0} msg/s", (l - f) as f64 / 1000.0, total as f64 * 1000.0 / (l - f) as f64);
                }
            }
        }
    });
    if let Some(c) = child.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    if let Some(mut s) = sim_child {
        let _ = s.kill();
        let _ = s.wait();
    }
}

/// A transmitter bind to Postern's smpp-server (`--mode smpp`).
async fn esme_bind(addr: &str) -> rusmppc::Client {
    use rusmpp::pdus::BindTransmitter;
    use rusmpp::types::COctetString;
    use rusmpp::values::{InterfaceVersion, Npi, Ton};
    use std::str::FromStr;
    let (client, events) = rusmppc::ConnectionBuilder::new()
        .response_timeout(Duration::from_secs(30))
        .disable_interface_version_check()
        .connect(format!("smpp://{addr}"))
        .await
        .expect("connect to smpp-server");
    // Nobody reads the events of a transmitter; drain them so the channel never fills.
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut e = events;
        while e.next().await.is_some() {}
    });
    client
        .bind_transmitter(
            BindTransmitter::builder()
                .system_id(COctetString::from_str("bench").unwrap())
                .password(COctetString::from_str("bench").unwrap())
                .system_type(COctetString::empty())
                .interface_version(InterfaceVersion::Smpp3_4)
                .addr_ton(Ton::Unknown)
                .addr_npi(Npi::Unknown)
                .address_range(COctetString::empty())
                .build(),
        )
        .await
        .expect("bind to smpp-server");
    client
}

fn esme_submit(n: u64) -> rusmpp::pdus::SubmitSm {
    use rusmpp::types::{COctetString, OctetString};
    use rusmpp::values::{Npi, Ton};
    use std::str::FromStr;
    rusmpp::pdus::SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr(COctetString::from_str("Bench").unwrap())
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_str(&format!("4477{:08}", n % 100_000_000)).unwrap())
        .short_message(OctetString::from_str(&format!("load test message {n}")).unwrap())
        .build()
}

/// A blocking GET on loopback; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// User + system CPU seconds of a process, from /proc (0 when it is not ours to watch).
fn proc_cpu(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}
