//! One carrier session of an `smpp` link: connect and bind, drive rusmppc's connection future,
//! read the session's events, and reconnect with backoff and jitter when it ends.
//!
//! Each bound connection is a *generation* with its own [`CancellationToken`], cancelled the
//! moment the connection ends: every submit waiting on it ends at once with an unknown outcome
//! (see `client::SmppConnector::deliver`), so a dropped connection never keeps window slots.

use super::c;
use super::client::SmppConnector;
use super::coalesce::Coalesced;
use super::config::BindKind;
use futures::StreamExt;
use parking_lot::Mutex;
use rusmpp::pdus::{BindReceiver, BindTransceiver, BindTransmitter};
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::CommandStatus;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One session slot of a link (a `pair` link has a transmitter and a receiver slot per bind).
pub(super) struct Session {
    /// The bound connection's client and the token cancelled when that connection ends.
    current: Mutex<Option<(rusmppc::Client, CancellationToken)>>,
    up: AtomicBool,
    /// Transceiver, transmitter or receiver.
    pub kind: BindKind,
}

impl Session {
    pub fn new(kind: BindKind) -> Session {
        Session { current: Mutex::new(None), up: AtomicBool::new(false), kind }
    }
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
    /// The bound connection, if any: its client and its end-of-connection token.
    pub fn current(&self) -> Option<(rusmppc::Client, CancellationToken)> {
        self.current.lock().clone()
    }
}

/// Requests handed to rusmppc and not yet finished (written, answered or failed), for
/// [`Driven`]. A guard counts one request for as long as it lives.
#[derive(Clone, Default)]
pub(super) struct Outstanding(Arc<AtomicI64>);

pub(super) struct OutstandingGuard(Arc<AtomicI64>);

impl Outstanding {
    pub fn track(&self) -> OutstandingGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        OutstandingGuard(self.0.clone())
    }
    fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

impl Drop for OutstandingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Drives rusmppc's connection future. rusmppc 0.4.0 takes at most 5 queued requests per poll
/// and, unlike its read side, does not wake itself when it stops there: requests queued beyond
/// that wait for the next thing that wakes the connection (a PDU from the SMSC, the
/// enquire_link timer). A window of 1,000 submits queued at once on a fresh session (after a
/// reconnect) was taken 80 at a time, once per enquire_link: the link stalled with the window
/// full. This wrapper polls the connection up to 16 times per wake-up and, while any request
/// we handed over is unfinished, polls again within a millisecond, so nothing queued can
/// wait for an outside event. Idle (nothing outstanding), it adds nothing.
struct Driven<F> {
    inner: std::pin::Pin<Box<F>>,
    outstanding: Outstanding,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Driven<F> {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        for _ in 0..16 {
            if self.inner.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        if self.outstanding.any() {
            let at = tokio::time::Instant::now() + Duration::from_millis(1);
            self.timer.as_mut().reset(at);
            let _ = self.timer.as_mut().poll(cx);
        }
        std::task::Poll::Pending
    }
}

/// Backoff before bind attempt `attempt` (1-based): exponential from 250 ms to 30 s with
/// jitter, so a fleet of binds does not storm the SMSC.
fn backoff(attempt: u32) -> Duration {
    let base = (250u64 << attempt.min(7)).min(30_000);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

impl SmppConnector {
    async fn bind(&self, kind: BindKind) -> Result<(rusmppc::Client, futures::stream::BoxStream<'static, rusmppc::Event>), rusmppc::error::Error> {
        let cfg = self.cfg();
        let builder = rusmppc::ConnectionBuilder::new()
            .enquire_link_interval(Duration::from_secs(cfg.enquire_link_s))
            .enquire_link_response_timeout(Duration::from_secs(cfg.response_timeout_s))
            .response_timeout(Duration::from_secs(cfg.response_timeout_s))
            .disable_interface_version_check()
            .no_spawn();
        let connect_err = |m: String| rusmppc::error::Error::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, m));
        let (host, port, tls) = super::client::parse_url(&cfg.url).map_err(connect_err)?;
        // Our own socket, not rusmppc's: it leaves Nagle's algorithm on, which held each
        // submit_sm back by milliseconds on a busy window.
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(rusmppc::error::Error::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (client, events) = if tls {
            let config = match &cfg.tls_ca {
                Some(ca) => crate::connector::tls::client_config(ca),
                None => crate::connector::tls::public_client_config(),
            }
            .map_err(|e| rusmppc::error::Error::Connect(std::io::Error::other(e.to_string())))?;
            let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| connect_err(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(rusmppc::error::Error::Connect)?;
            self.drive(builder.connected(Coalesced::new(stream)))
        } else {
            self.drive(builder.connected(Coalesced::new(tcp)))
        };
        let (sid, pw, st, range) = (c(&cfg.system_id), c(self.password()), c(&cfg.system_type), c(&cfg.address_range));
        let (ton, npi) = (Ton::from(cfg.addr_ton), Npi::from(cfg.addr_npi));
        // The three bind PDUs have the same fields.
        macro_rules! bind_as {
            ($method:ident, $pdu:ident) => {
                client
                    .$method($pdu::builder().system_id(sid).password(pw).system_type(st).interface_version(InterfaceVersion::Smpp3_4).addr_ton(ton).addr_npi(npi).address_range(range).build())
                    .await
                    .map(|_| ())
            };
        }
        let r = {
            let _o = self.outstanding().track();
            match kind {
                BindKind::Transceiver => bind_as!(bind_transceiver, BindTransceiver),
                BindKind::Transmitter => bind_as!(bind_transmitter, BindTransmitter),
                BindKind::Receiver | BindKind::Pair => bind_as!(bind_receiver, BindReceiver),
            }
        };
        match r {
            Ok(()) => Ok((client, events)),
            Err(e) => {
                let _ = client.close().await;
                Err(e)
            }
        }
    }

    /// Keep one session bound for as long as the link runs (until `stop`).
    pub(super) async fn supervise(self: Arc<Self>, s: Arc<Session>, idx: usize, stop: CancellationToken) {
        let mut attempt: u32 = 0;
        let inbound_window = Arc::new(tokio::sync::Semaphore::new(super::client::INBOUND_CONCURRENCY));
        while !stop.is_cancelled() {
            let bound = tokio::select! {
                r = self.bind(s.kind) => r,
                _ = stop.cancelled() => return,
            };
            match bound {
                Ok((client, events)) => {
                    attempt = 0;
                    tracing::info!(connector = %self.name(), session = idx, "SMPP session bound");
                    let generation = CancellationToken::new();
                    *s.current.lock() = Some((client.clone(), generation.clone()));
                    s.up.store(true, Ordering::Release);
                    self.read_events(idx, &client, events, &inbound_window, &stop).await;
                    s.up.store(false, Ordering::Release);
                    *s.current.lock() = None;
                    // Every submit still waiting on this connection ends now (unknown outcome).
                    generation.cancel();
                    self.session_lost(idx);
                    let graceful = stop.is_cancelled();
                    if graceful {
                        let _o = self.outstanding().track();
                        let _ = tokio::time::timeout(Duration::from_secs(2), client.unbind()).await;
                    }
                    let _ = client.close().await;
                    if graceful {
                        return;
                    }
                    self.note_reconnect();
                    tracing::warn!(connector = %self.name(), session = idx, "SMPP session closed; reconnecting");
                }
                Err(e) => {
                    let already = matches!(&e, rusmppc::error::Error::UnexpectedResponse { response } if response.status() == CommandStatus::EsmeRalybnd);
                    tracing::warn!(connector = %self.name(), session = idx, error = %e, attempt, "SMPP bind failed");
                    if already {
                        attempt = attempt.max(5); // the old session must time out at the SMSC first
                    }
                }
            }
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(backoff(attempt)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Read a bound session's events until the connection ends (or the link stops). Each
    /// deliver_sm waits for its commit before its resp: they are handled concurrently
    /// (bounded) so that receipts keep pace with submits.
    async fn read_events(
        self: &Arc<Self>,
        idx: usize,
        client: &rusmppc::Client,
        mut events: futures::stream::BoxStream<'static, rusmppc::Event>,
        inbound_window: &Arc<tokio::sync::Semaphore>,
        stop: &CancellationToken,
    ) {
        loop {
            let ev = tokio::select! {
                ev = events.next() => ev,
                _ = stop.cancelled() => return,
            };
            match ev {
                None => return,
                Some(rusmppc::Event::Incoming(cmd)) => {
                    let Ok(permit) = inbound_window.clone().acquire_owned().await else { return };
                    let (this, client) = (self.clone(), client.clone());
                    tokio::spawn(async move {
                        this.incoming(idx, &client, cmd).await;
                        drop(permit);
                    });
                }
                Some(rusmppc::Event::Error(e)) => {
                    tracing::warn!(connector = %self.name(), session = idx, error = %e, "SMPP session error");
                    if matches!(e, rusmppc::error::Error::Decode(_)) {
                        metrics::counter!(crate::metrics::SMPP_FRAME_ERRORS_TOTAL, crate::metrics::L_CONNECTOR => self.name().to_string()).increment(1);
                    }
                    if !client.is_active() {
                        return;
                    }
                }
            }
        }
    }

    /// Run a session's connection future (see [`Driven`]).
    fn drive<E, F>(&self, (client, events, connection): (rusmppc::Client, E, F)) -> (rusmppc::Client, futures::stream::BoxStream<'static, rusmppc::Event>)
    where
        E: futures::Stream<Item = rusmppc::Event> + Send + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(Driven {
            inner: Box::pin(connection),
            outstanding: self.outstanding().clone(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        });
        (client, futures::StreamExt::boxed(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            let base = (250u64 << attempt.min(7)).min(30_000);
            assert!(d >= Duration::from_millis(base / 2) && d <= Duration::from_millis(base), "{attempt}: {d:?}");
        }
    }

    #[test]
    fn outstanding_counts_live_guards() {
        let o = Outstanding::default();
        assert!(!o.any());
        let a = o.track();
        let b = o.track();
        assert!(o.any());
        drop(a);
        assert!(o.any());
        drop(b);
        assert!(!o.any());
    }
}
