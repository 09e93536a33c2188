//! What the simulated SMSC sends on its own: receipts (after a delay, in a chosen mix of
//! states), held-back `submit_sm_resp`s, receipts kept for the next bind, and MO messages.

use super::*;

/// A delivery receipt to send when it falls due.
pub(super) struct DelayedReceipt {
    pub(super) due: std::time::Instant,
    /// The submitting connection (receipts go back to it when it can receive).
    pub(super) conn: u64,
    pub(super) id: String,
    pub(super) src: String,
    pub(super) dst: String,
    pub(super) seq: Arc<AtomicU32>,
}

/// Sends receipts when they fall due, from a thread of its own like [`ack_sender`]: a tokio
/// task and timer per receipt took half a core at 60,000 receipts/s, CPU the gateway under
/// test did not get. Ends with the simulator.
pub(super) fn receipt_sender(rx: crossbeam_channel::Receiver<DelayedReceipt>, shared: std::sync::Weak<Shared>) {
    while let Ok(r) = rx.recv() {
        let wait = r.due.saturating_duration_since(std::time::Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let Some(shared) = shared.upgrade() else { return };
        // Receipts go to the submitting session when it can receive, else any receiver.
        let target = {
            let rcv = shared.receivers.lock();
            rcv.iter().find(|(c, _, _, _)| *c == r.conn).or(rcv.first()).map(|(_, t, u, s)| (t.clone(), u.clone(), s.clone()))
        };
        // Numbered by the session it goes out on (another one than the submitter's, after a drop).
        let seq = target.as_ref().map_or(&r.seq, |(_, _, s)| s).fetch_add(1, Ordering::Relaxed);
        let cmd = receipt(&shared, &r.id, &r.src, &r.dst, seq);
        match target {
            Some((t, u, _)) => match {
                u.lock().insert(cmd.sequence_number, cmd.clone());
                t.send(cmd)
            } {
                Ok(()) => {
                    shared.counters.receipts.fetch_add(1, Ordering::Relaxed);
                }
                // The session is closing: kept for the next bind (and not counted twice).
                Err(e) => {
                    u.lock().remove(&e.0.sequence_number);
                    shared.pending.lock().push(e.0);
                }
            },
            None => shared.pending.lock().push(cmd),
        }
    }
}

/// A `submit_sm_resp` held back by `ack_delay`.
pub(super) struct DelayedAck {
    pub(super) due: std::time::Instant,
    pub(super) to: mpsc::UnboundedSender<Command>,
    pub(super) resp: Command,
}

/// Sends the delayed acks when they fall due, from a thread of its own: tokio's timers round
/// a 20 ms sleep up to the next millisecond tick and fire on a busy runtime's next turn
/// (measured 21.05 ms on average), which would make "answers after 20 ms" a 21 ms SMSC. A
/// thread sleeping to each deadline is within tens of microseconds.
pub(super) fn ack_sender(rx: crossbeam_channel::Receiver<DelayedAck>, counters: Arc<Counters>) {
    while let Ok(ack) = rx.recv() {
        let wait = ack.due.saturating_duration_since(std::time::Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        counters.outstanding.fetch_sub(1, Ordering::AcqRel);
        let _ = ack.to.send(ack.resp);
    }
}


pub(super) fn pick_stat(mix: &[u32; 4]) -> (&'static str, MessageState) {
    let total: u32 = mix.iter().sum();
    let mut x = if total == 0 {
        0
    } else {
        rand::random::<u32>() % total
    };
    let stats = [
        ("DELIVRD", MessageState::Delivered),
        ("UNDELIV", MessageState::Undeliverable),
        ("REJECTD", MessageState::Rejected),
        ("EXPIRED", MessageState::Expired),
    ];
    for (i, w) in mix.iter().enumerate() {
        if x < *w {
            return stats[i];
        }
        x -= w;
    }
    stats[0]
}

pub(super) fn receipt(shared: &Shared, id: &str, src: &str, dst: &str, seq: u32) -> Command {
    let (stat, state) = pick_stat(&shared.cfg.dlr_mix);
    let now = crate::connector::smpp::dlr::receipt_date(crate::model::now_ms());
    let err = if stat == "DELIVRD" { "000" } else { "001" };
    let text = format!(
        "id:{id} sub:001 dlvrd:{} submit date:{now} done date:{now} stat:{stat} err:{err} text:",
        if stat == "DELIVRD" { "001" } else { "000" }
    );
    let text = (shared.cfg.dlr_as != DlrAs::Tlv).then(|| text.into_bytes());
    let state = (shared.cfg.dlr_as != DlrAs::Text).then_some(state);
    let mut b = crate::connector::smpp::receipt_deliver_sm(id, src, dst, text, state);
    if state.is_some() && stat != "DELIVRD" {
        use rusmpp::values::{ErrorCodeNetworkType, NetworkErrorCode};
        b.push_tlv(rusmpp::tlvs::MessageDeliveryRequestTlvValue::NetworkErrorCode(NetworkErrorCode::new(ErrorCodeNetworkType::Gsm, 1)));
    }
    Command::new(CommandStatus::EsmeRok, seq, b)
}


/// Send the receipts kept for the next bind to the newest bound receiver, if there is one (at
/// a bind, the session that just bound).
pub(super) fn flush_pending(shared: &Shared) {
    let rcv = shared.receivers.lock();
    let Some((_, tx, unacked, seq)) = rcv.last() else { return };
    for mut cmd in std::mem::take(&mut *shared.pending.lock()) {
        cmd.sequence_number = seq.fetch_add(1, Ordering::Relaxed);
        unacked.lock().insert(cmd.sequence_number, cmd.clone());
        match tx.send(cmd) {
            Ok(()) => {
                shared.counters.receipts.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                unacked.lock().remove(&e.0.sequence_number);
                shared.pending.lock().push(e.0);
            }
        }
    }
}

pub(super) async fn mo_loop(shared: Arc<Shared>, tx: mpsc::UnboundedSender<Command>, seq: Arc<AtomicU32>) {
    let every = Duration::from_secs_f64(1.0 / shared.cfg.mo_rate.max(0.001));
    let mut n = 0u64;
    let start = Instant::now();
    loop {
        n += 1;
        tokio::time::sleep_until((start + every * n as u32).into()).await;
        let septets = crate::codec::gsm7::to_septets(&shared.cfg.mo_text).unwrap_or_default();
        let parts = shared.cfg.mo_parts.max(1) as usize;
        let chunk = septets.len().div_ceil(parts).max(1);
        let pieces: Vec<&[u8]> = septets.chunks(chunk).collect();
        let total = pieces.len();
        // Parts go out in reverse order: the receiver must reassemble out of order.
        for (i, piece) in pieces.iter().enumerate().rev() {
            let (esm, body) = if total > 1 {
                (
                    0x40u8,
                    [
                        vec![0x05, 0x00, 0x03, (n % 256) as u8, total as u8, i as u8 + 1],
                        piece.to_vec(),
                    ]
                    .concat(),
                )
            } else {
                (0u8, piece.to_vec())
            };
            let sm = DeliverSm::builder()
                .source_addr_ton(Ton::International)
                .source_addr_npi(Npi::Isdn)
                .source_addr(c(&format!("4474001{:05}", n % 100_000)))
                .dest_addr_ton(Ton::Unknown)
                .dest_addr_npi(Npi::Unknown)
                .destination_addr(c("12345"))
                .esm_class(EsmClass::from(esm))
                .data_coding(DataCoding::from(0u8))
                .short_message(OctetString::from_vec(body).unwrap_or_else(|_| OctetString::empty()))
                .build();
            if tx
                .send(Command::new(
                    CommandStatus::EsmeRok,
                    seq.fetch_add(1, Ordering::Relaxed),
                    sm,
                ))
                .is_err()
            {
                return;
            }
        }
        shared.counters.mo.fetch_add(1, Ordering::Relaxed);
    }
}
