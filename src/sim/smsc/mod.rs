//! `postern smsc-sim`: a real SMPP 3.4 SMSC for tests, benchmarks and users (Kannel ships
//! `fakesmsc`). Binds with configurable credentials; acks every `submit_sm` with an id (hex or
//! decimal), optionally after a delay so that windows fill; sends delivery receipts after a
//! delay with a configurable mix of DELIVRD/UNDELIV/REJECTD/EXPIRED, as TLVs, text or both;
//! fault modes: throttle every Nth submit or at random, drop the connection after N PDUs (or a
//! random count near N), uneven slow acks, receipts before the submit_sm_resp, refuse binds,
//! answer `ESME_RALYBND`; injects MO messages at a rate. Counts distinct messages submitted, so
//! a test can bound how many were sent twice. Built on rusmpp's codec.

mod deliver;

use deliver::*;
use futures::StreamExt;
use parking_lot::Mutex;
use crate::connector::smpp::c;
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSmResp,
};
use rusmpp::types::OctetString;
use rusmpp::values::{DataCoding, EsmClass, MessageState, Npi, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Message id format of `submit_sm_resp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimIdFormat {
    Hex,
    Decimal,
}

/// Receipt form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlrAs {
    Tlv,
    Text,
    Both,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub system_id: String,
    pub password: String,
    pub id_format: SimIdFormat,
    pub ack_delay: Duration,
    pub dlr_delay: Duration,
    /// Weights of DELIVRD, UNDELIV, REJECTD, EXPIRED.
    pub dlr_mix: [u32; 4],
    pub dlr_as: DlrAs,
    /// Answer every Nth submit with ESME_RTHROTTLED (0 = never).
    pub throttle_every: u64,
    /// Close a connection after this many PDUs received (0 = never).
    pub drop_after: u64,
    pub refuse_binds: bool,
    pub already_bound: bool,
    /// MO messages per second to every receiving session (0 = none).
    pub mo_rate: f64,
    pub mo_text: String,
    /// Send each MO in this many parts with a concatenation UDH (1 = single SMS).
    pub mo_parts: u8,
    /// Only the first N submits are acked after `ack_delay` (0 = all of them).
    pub slow_first: u64,
    /// Each ack waits a further random 0..ack_jitter (slow, uneven acks).
    pub ack_jitter: Duration,
    /// Throttle each submit with this probability (0.0..=1.0), besides `throttle_every`.
    pub throttle_chance: f64,
    /// Each connection drops after a random count between half and one and a half times
    /// `drop_after` instead of exactly after it.
    pub drop_jitter: bool,
    /// Send each receipt before the submit_sm_resp of its message (some SMSCs do).
    pub dlr_before_resp: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            system_id: "postern".into(),
            password: "secret".into(),
            id_format: SimIdFormat::Hex,
            ack_delay: Duration::ZERO,
            dlr_delay: Duration::from_millis(100),
            dlr_mix: [100, 0, 0, 0],
            dlr_as: DlrAs::Both,
            throttle_every: 0,
            drop_after: 0,
            refuse_binds: false,
            already_bound: false,
            mo_rate: 0.0,
            mo_text: "hello from the simulator".into(),
            mo_parts: 1,
            slow_first: 0,
            ack_jitter: Duration::ZERO,
            throttle_chance: 0.0,
            drop_jitter: false,
            dlr_before_resp: false,
        }
    }
}

/// What the simulator has seen and done.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub binds: AtomicU64,
    pub submits: AtomicU64,
    pub throttled: AtomicU64,
    pub receipts: AtomicU64,
    pub receipt_acks: AtomicU64,
    pub mo: AtomicU64,
    pub nacks: AtomicU64,
    /// Milliseconds since the Unix epoch of the first and last submit_sm (rate at the SMSC).
    pub first_submit_ms: AtomicU64,
    pub last_submit_ms: AtomicU64,
    /// submit_sm received but not yet answered, now and at most.
    pub outstanding: AtomicU64,
    pub max_outstanding: AtomicU64,
    /// Distinct messages submitted (by destination and short message): `submits` less this
    /// is how many were sent again.
    pub distinct: AtomicU64,
}

/// A running simulator.
pub struct SmscSim {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl SmscSim {
    /// deliver_sm sent and not (yet) answered: those of bound sessions and those kept for
    /// the next bind.
    pub fn unanswered(&self) -> usize {
        let held = self.shared.pending.lock().len();
        held + self.shared.receivers.lock().iter().map(|(_, _, u, _)| u.lock().len()).sum::<usize>()
    }
}

impl Drop for SmscSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

type Unacked = Arc<Mutex<std::collections::HashMap<u32, Command>>>;

struct Shared {
    cfg: SimConfig,
    counters: Arc<Counters>,
    next_id: AtomicU64,
    /// Sessions that can receive deliver_sm: (connection, sender, receipts sent and not yet
    /// acked by deliver_sm_resp, by sequence number).
    /// Bound sessions that take deliver_sm: connection, writer, unanswered, its sequence numbers.
    receivers: Mutex<Vec<(u64, mpsc::UnboundedSender<Command>, Unacked, Arc<AtomicU32>)>>,
    /// Receipts that fell due while no session could receive: sent at the next bind, as an
    /// SMSC does.
    pending: Mutex<Vec<Command>>,
    stop: Arc<AtomicBool>,
    /// Slow acks, in the order they fall due (they all wait the same `ack_delay`).
    acks: crossbeam_channel::Sender<DelayedAck>,
    /// Receipts, in the order they fall due (they all wait `ack_delay + dlr_delay`).
    receipts: crossbeam_channel::Sender<DelayedReceipt>,
    /// Hashes of the (destination, short message) pairs submitted so far.
    seen: Mutex<std::collections::HashSet<u64>>,
}

impl SmscSim {
    /// Start listening; returns once the socket is bound.
    pub async fn start(cfg: SimConfig) -> std::io::Result<SmscSim> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (acks, acks_rx) = crossbeam_channel::unbounded();
        {
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("smsc-sim-acks".into())
                .spawn(move || ack_sender(acks_rx, counters))?;
        }
        let (receipts, receipts_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            cfg,
            counters: counters.clone(),
            next_id: AtomicU64::new(0x1000),
            receivers: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            stop: stop.clone(),
            acks,
            receipts,
            seen: Mutex::new(std::collections::HashSet::new()),
        });
        {
            let shared = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("smsc-sim-dlr".into())
                .spawn(move || receipt_sender(receipts_rx, shared))?;
        }
        let keep = shared.clone();
        tokio::spawn(async move {
            let mut conn_id = 0u64;
            while !shared.stop.load(Ordering::Relaxed) {
                let Ok(Ok((s, _))) =
                    tokio::time::timeout(Duration::from_millis(200), listener.accept()).await
                else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                conn_id += 1;
                shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(session(shared.clone(), s, conn_id));
            }
        });
        Ok(SmscSim {
            addr,
            counters,
            stop,
            shared: keep,
        })
    }
}

async fn session(shared: Arc<Shared>, stream: TcpStream, conn: u64) {
    let (mut reader, tx, writer) = crate::connector::smpp::split_session(stream);
    let seq = Arc::new(AtomicU32::new(1));
    let unacked: Unacked = Arc::default();
    let mut pdus = 0u64;
    let mut bound = false;
    // A receiver bind may not submit (ESME_RINVBNDSTS), as at a real SMSC.
    let mut can_submit = false;
    let mut mo_task: Option<tokio::task::JoinHandle<()>> = None;
    let drop_after = match (shared.cfg.drop_after, shared.cfg.drop_jitter) {
        (0, _) => 0,
        (n, true) => n / 2 + rand::random::<u64>() % (n + 1),
        (n, false) => n,
    };
    while let Some(item) = reader.next().await {
        let Ok(cmd) = item else {
            // Framing lost: tell the peer, then close (SMPP 3.4 §2.10).
            shared.counters.nacks.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Command::new(
                CommandStatus::EsmeRinvcmdlen,
                0,
                Pdu::GenericNack,
            ));
            break;
        };
        pdus += 1;
        if drop_after > 0 && pdus > drop_after {
            break; // fault mode: the connection just goes away
        }
        let s = cmd.sequence_number();
        let reply = |status: CommandStatus, pdu: Pdu| Command::new(status, s, pdu);
        match cmd.pdu() {
            Some(
                p @ (Pdu::BindTransmitter(_) | Pdu::BindReceiver(_) | Pdu::BindTransceiver(_)),
            ) => {
                let (sid, pw, rx_capable) = match p {
                    Pdu::BindTransmitter(b) => (
                        b.system_id.as_str().to_string(),
                        b.password.as_str().to_string(),
                        false,
                    ),
                    Pdu::BindReceiver(b) => (
                        b.system_id.as_str().to_string(),
                        b.password.as_str().to_string(),
                        true,
                    ),
                    Pdu::BindTransceiver(b) => (
                        b.system_id.as_str().to_string(),
                        b.password.as_str().to_string(),
                        true,
                    ),
                    _ => unreachable!("matched above"),
                };
                let status = if bound || shared.cfg.already_bound {
                    CommandStatus::EsmeRalybnd
                } else if shared.cfg.refuse_binds {
                    CommandStatus::EsmeRbindfail
                } else if sid != shared.cfg.system_id {
                    CommandStatus::EsmeRinvsysid
                } else if pw != shared.cfg.password {
                    CommandStatus::EsmeRinvpaswd
                } else {
                    CommandStatus::EsmeRok
                };
                let resp: Pdu = match p {
                    Pdu::BindTransmitter(_) => BindTransmitterResp::builder()
                        .system_id(c("postern-sim"))
                        .build()
                        .into(),
                    Pdu::BindReceiver(_) => BindReceiverResp::builder()
                        .system_id(c("postern-sim"))
                        .build()
                        .into(),
                    _ => BindTransceiverResp::builder()
                        .system_id(c("postern-sim"))
                        .build()
                        .into(),
                };
                let _ = tx.send(reply(status, resp));
                if status == CommandStatus::EsmeRok {
                    bound = true;
                    can_submit = !matches!(p, Pdu::BindReceiver(_));
                    shared.counters.binds.fetch_add(1, Ordering::Relaxed);
                    if rx_capable {
                        shared
                            .receivers
                            .lock()
                            .push((conn, tx.clone(), unacked.clone(), seq.clone()));
                        flush_pending(&shared);
                        if shared.cfg.mo_rate > 0.0 {
                            mo_task = Some(tokio::spawn(mo_loop(
                                shared.clone(),
                                tx.clone(),
                                seq.clone(),
                            )));
                        }
                    }
                }
            }
            Some(Pdu::SubmitSm(_)) if bound && !can_submit => {
                let _ = tx.send(reply(CommandStatus::EsmeRinvbndsts, SubmitSmResp::builder().build().into()));
            }
            Some(Pdu::SubmitSm(sm)) if bound => {
                let n = shared.counters.submits.fetch_add(1, Ordering::Relaxed) + 1;
                let t = crate::model::now_ms() as u64;
                let _ = shared.counters.first_submit_ms.compare_exchange(
                    0,
                    t,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                shared
                    .counters
                    .last_submit_ms
                    .fetch_max(t, Ordering::Relaxed);
                {
                    use std::hash::{BuildHasher, Hash, Hasher};
                    let mut h = foldhash::fast::FixedState::with_seed(7).build_hasher();
                    sm.destination_addr.as_str().hash(&mut h);
                    AsRef::<[u8]>::as_ref(sm.short_message()).hash(&mut h);
                    if shared.seen.lock().insert(h.finish()) {
                        shared.counters.distinct.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let chance = shared.cfg.throttle_chance > 0.0 && rand::random::<f64>() < shared.cfg.throttle_chance;
                if chance || shared.cfg.throttle_every > 0 && n % shared.cfg.throttle_every == 0 {
                    shared.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(reply(
                        CommandStatus::EsmeRthrottled,
                        SubmitSmResp::builder().message_id(c("")).build().into(),
                    ));
                    continue;
                }
                let raw = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let id = match shared.cfg.id_format {
                    SimIdFormat::Hex => format!("{raw:x}"),
                    SimIdFormat::Decimal => raw.to_string(),
                };
                let resp = reply(
                    CommandStatus::EsmeRok,
                    SubmitSmResp::builder().message_id(c(&id)).build().into(),
                );
                let now_out = shared.counters.outstanding.fetch_add(1, Ordering::AcqRel) + 1;
                shared
                    .counters
                    .max_outstanding
                    .fetch_max(now_out, Ordering::AcqRel);
                let slow = shared.cfg.slow_first == 0 || n <= shared.cfg.slow_first;
                let wants_receipt = u8::from(sm.registered_delivery) & 0x03 != 0;
                if wants_receipt && shared.cfg.dlr_before_resp {
                    // The receipt overtakes the answer on the wire.
                    let cmd = receipt(&shared, &id, sm.destination_addr.as_str(), sm.source_addr.as_str(), seq.fetch_add(1, Ordering::Relaxed));
                    unacked.lock().insert(cmd.sequence_number, cmd.clone());
                    if tx.send(cmd).is_ok() {
                        shared.counters.receipts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let jitter = if shared.cfg.ack_jitter.is_zero() { Duration::ZERO } else { shared.cfg.ack_jitter.mul_f64(rand::random::<f64>()) };
                if (shared.cfg.ack_delay.is_zero() && jitter.is_zero()) || !slow {
                    shared.counters.outstanding.fetch_sub(1, Ordering::AcqRel);
                    let _ = tx.send(resp);
                } else {
                    let due = std::time::Instant::now() + shared.cfg.ack_delay + jitter;
                    let _ = shared.acks.send(DelayedAck { due, to: tx.clone(), resp });
                }
                if wants_receipt && !shared.cfg.dlr_before_resp {
                    let _ = shared.receipts.send(DelayedReceipt {
                        due: std::time::Instant::now() + shared.cfg.ack_delay + shared.cfg.dlr_delay,
                        conn,
                        id,
                        src: sm.destination_addr.as_str().to_string(),
                        dst: sm.source_addr.as_str().to_string(),
                        seq: seq.clone(),
                    });
                }
            }
            Some(Pdu::DeliverSmResp(_)) => {
                shared.counters.receipt_acks.fetch_add(1, Ordering::Relaxed);
                unacked.lock().remove(&s);
            }
            Some(Pdu::EnquireLink) => {
                let _ = tx.send(reply(CommandStatus::EsmeRok, Pdu::EnquireLinkResp));
            }
            Some(Pdu::Unbind) => {
                let _ = tx.send(reply(CommandStatus::EsmeRok, Pdu::UnbindResp));
                break;
            }
            Some(Pdu::EnquireLinkResp) | Some(Pdu::GenericNack) => {}
            Some(Pdu::SubmitSm(_)) => {
                let _ = tx.send(reply(
                    CommandStatus::EsmeRinvbndsts,
                    SubmitSmResp::builder().message_id(c("")).build().into(),
                ));
            }
            _ => {
                shared.counters.nacks.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(reply(CommandStatus::EsmeRinvcmdid, Pdu::GenericNack));
            }
        }
    }
    shared.receivers.lock().retain(|(c, _, _, _)| *c != conn);
    // Receipts this session never acked are kept for the next bind, as an SMSC does; a session
    // that bound while this one was closing takes them now (else they would wait for a bind
    // that may never come).
    let left: Vec<Command> = unacked.lock().drain().map(|(_, c)| c).collect();
    shared.pending.lock().extend(left);
    flush_pending(&shared);
    if let Some(t) = mo_task {
        t.abort();
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}
