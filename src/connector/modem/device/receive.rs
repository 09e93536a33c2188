//! What comes from the network: registration and health checks, storage selection, URCs,
//! reading, listing and deleting stored messages, status reports and MO (reassembled).

use super::*;

impl Modem {
    /// Registered, at home or roaming, in CS, PS or EPS (LTE-M/NB-IoT modules may register only
    /// in EPS)? A refused query counts as "no"; silence or a dead line is an error.
    pub(super) async fn registered<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, t: Duration) -> Result<bool, AtError> {
        for (cmd, prefix) in [("AT+CREG?", "+CREG:"), ("AT+CGREG?", "+CGREG:"), ("AT+CEREG?", "+CEREG:")] {
            match port.command(cmd, t).await {
                Ok(l) if matches!(field(&l, prefix).and_then(|v| reg_stat(v, true)), Some(1) | Some(5)) => return Ok(true),
                Ok(_) | Err(AtError::Failed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// The operator's name (`AT+COPS?`), when the modem gives one.
    pub(super) async fn read_operator<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, t: Duration) {
        if let Ok(l) = port.command("AT+COPS?", t).await {
            self.info.lock().operator = field(&l, "+COPS:").and_then(|v| v.split('"').nth(1)).map(String::from);
        }
    }

    pub(super) async fn health<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
    ) -> Result<(), Stop> {
        let t = self.timeout(&ss.profile);
        match port.command("AT+CSQ", t).await {
            Ok(l) => {
                ss.timeouts = 0;
                self.signal(field(&l, "+CSQ:").and_then(csq_dbm));
            }
            Err(AtError::Timeout { .. }) => {
                if let Some(s) = self.check_alive(port, ss, "AT+CSQ").await {
                    return Err(s);
                }
            }
            Err(e @ AtError::Failed { .. }) => {
                tracing::debug!(modem = %self.label, error = %e, "AT+CSQ refused")
            }
            Err(e) => return Err(e.into()),
        }
        let registered = self.registered(port, t).await?;
        self.set_ready(registered);
        self.read_operator(port, t).await;
        Ok(())
    }

    pub(super) async fn select_mem<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        mem: &str,
    ) -> Result<bool, Stop> {
        if ss.mem1 == mem {
            return Ok(true);
        }
        match port
            .command(&format!("AT+CPMS=\"{mem}\""), self.timeout(&ss.profile))
            .await
        {
            Ok(_) => {
                ss.mem1 = mem.to_string();
                Ok(true)
            }
            Err(AtError::Failed { result, .. }) => {
                tracing::warn!(modem = %self.label, mem, ?result, "cannot select storage");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn on_urc<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
        u: Urc,
    ) -> Result<(), Stop> {
        let p = &ss.profile;
        let line = u.line.as_str();
        if p.urc.power_down.iter().any(|m| line.contains(m.as_str())) {
            return Err(Stop::Reset(format!("the modem announced {line:?}")));
        }
        if p.urc.ready.iter().any(|m| line.contains(m.as_str())) {
            return Err(Stop::Reset(format!("the modem restarted ({line:?})")));
        }
        if p.urc.ignore.iter().any(|m| line.starts_with(m.as_str())) || line.starts_with("^RSSI:") {
            tracing::trace!(modem = %self.label, line, "URC ignored");
            return Ok(());
        }
        if let Some(v) = line.strip_prefix("+CMTI:") {
            if let Some((mem, idx)) = mem_index(v) {
                if self.select_mem(port, ss, &mem).await? {
                    self.read_slot(port, ss, hub, re, &mem, idx).await?;
                }
            }
        } else if let Some(v) = line.strip_prefix("+CDSI:") {
            if let Some((mem, idx)) = mem_index(v) {
                let back = ss.mem1.clone();
                if self.select_mem(port, ss, &mem).await? {
                    self.read_slot(port, ss, hub, re, &mem, idx).await?;
                }
                self.select_mem(port, ss, &back).await?;
            }
        } else if line.starts_with("+CMT:") || line.starts_with("+CDS:") {
            if let Some(pdu) = &u.pdu {
                self.on_pdu(port, ss, hub, re, pdu, None).await?;
                if ss.cnma {
                    let _ = port.command("AT+CNMA", self.timeout(&ss.profile)).await;
                }
            }
        } else if let Some(v) = line
            .strip_prefix("+CREG:")
            .or(line.strip_prefix("+CGREG:"))
            .or(line.strip_prefix("+CEREG:"))
        {
            let stat = reg_stat(v, false);
            tracing::info!(modem = %self.label, ?stat, "registration changed");
            if let Some(s) = stat {
                self.set_ready(s == 1 || s == 5);
            }
        } else if let Some(v) = line.strip_prefix("+CSQ:") {
            self.signal(csq_dbm(v));
        } else {
            tracing::debug!(modem = %self.label, line, "URC");
        }
        Ok(())
    }

    pub(super) async fn read_slot<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
        mem: &str,
        idx: u32,
    ) -> Result<(), Stop> {
        match port
            .command(&format!("AT+CMGR={idx}"), self.timeout(&ss.profile))
            .await
        {
            Ok(lines) => {
                // `+CMGR: <stat>,[<alpha>],<len>` then the PDU line.
                let pdu = lines
                    .iter()
                    .skip_while(|l| !l.starts_with("+CMGR:"))
                    .nth(1)
                    .cloned();
                match pdu {
                    Some(pdu) => {
                        self.on_pdu(port, ss, hub, re, &pdu, Some((mem.to_string(), idx)))
                            .await
                    }
                    None => Ok(()),
                }
            }
            Err(AtError::Failed { result, .. }) => {
                tracing::debug!(modem = %self.label, idx, ?result, "slot not readable");
                Ok(())
            }
            Err(AtError::Timeout { .. }) => match self.check_alive(port, ss, "AT+CMGR").await {
                Some(s) => Err(s),
                None => Ok(()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// `AT+CMGL=4`: everything in the store (catches lost notifications and what arrived while
    /// the gateway was down).
    pub(super) async fn poll<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
    ) -> Result<(), Stop> {
        let main = ss.mem1.clone();
        self.list_mem(port, ss, hub, re).await?;
        // Status reports stored in "SR" whose +CDSI was lost (or came while we were away).
        if self.settings.dlr && ss.profile.sms.status_report == super::super::hwdb::StatusReportMode::Cdsi && main != "SR" {
            if self.select_mem(port, ss, "SR").await? {
                self.list_mem(port, ss, hub, re).await?;
            }
            self.select_mem(port, ss, &main).await?;
        }
        // Messages whose missing parts never came: store what arrived.
        for done in re.expire(crate::model::now_ms()) {
            self.store_reassembled(port, ss, hub, done).await?;
        }
        Ok(())
    }

    /// `AT+CMGL=4` on the selected memory; every entry processed.
    pub(super) async fn list_mem<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, ss: &mut Session, hub: &Arc<dyn HubSink>, re: &mut Reassembler) -> Result<(), Stop> {
        let t = Duration::from_secs(ss.profile.timing.cmgl_timeout_s as u64).min(self.timeout(&ss.profile) * 12);
        let lines = match port.command("AT+CMGL=4", t).await {
            Ok(l) => l,
            Err(AtError::Failed { result, .. }) => {
                tracing::debug!(modem = %self.label, ?result, "AT+CMGL refused");
                return Ok(());
            }
            Err(AtError::Timeout { .. }) => {
                return match self.check_alive(port, ss, "AT+CMGL").await {
                    Some(s) => Err(s),
                    None => Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let mut entries = Vec::new();
        let mut it = lines.iter();
        while let Some(l) = it.next() {
            if let Some(v) = l.strip_prefix("+CMGL:") {
                let idx: Option<u32> = v.split(',').next().and_then(|x| x.trim().parse().ok());
                if let (Some(idx), Some(pdu)) = (idx, it.next()) {
                    entries.push((idx, pdu.clone()));
                }
            }
        }
        let mem = ss.mem1.clone();
        for (idx, pdu) in entries {
            self.on_pdu(port, ss, hub, re, &pdu, Some((mem.clone(), idx))).await?;
        }
        Ok(())
    }

    /// One PDU read from the modem: an MO part, or a status report.
    pub(super) async fn on_pdu<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
        hex_pdu: &str,
        slot: Option<(String, u32)>,
    ) -> Result<(), Stop> {
        let bytes = hex::decode(hex_pdu.trim()).unwrap_or_default();
        let tpdu = match sms_pdu::decode(&bytes) {
            Ok(s) => s.tpdu,
            // Some modems give status reports read from "SR" without the SMSC field
            // (`sr-read-fixup`): try the octets as a bare TPDU before giving up.
            Err(e) => match sms_pdu::decode_tpdu(&bytes) {
                Ok(t) => t,
                Err(_) => {
                    // Undecodable: left in the store for inspection; the rest carries on.
                    tracing::warn!(modem = %self.label, error = %e, ?slot, "undecodable PDU from the modem");
                    return Ok(());
                }
            },
        };
        match tpdu {
            Tpdu::StatusReport {
                mr,
                recipient,
                status,
                ..
            } => {
                if let Some((state, error)) = status_state(status) {
                    let receipt = Receipt {
                        connector: self.settings.bank.clone(),
                        remote_id: format!("{}:{}:{}", ss.sim_key, mr, digits(&recipient.number)),
                        state,
                        error,
                    };
                    if !hub.report_and_wait(receipt).await {
                        // Not committed: left on the SIM, read again next time.
                        return Ok(());
                    }
                }
                if let Some((mem, idx)) = slot {
                    self.delete(port, ss, &mem, idx).await?;
                }
                Ok(())
            }
            Tpdu::Deliver { originator, ud, scts, .. } => {
                let from = if originator.ton == 1 && !originator.number.starts_with('+') {
                    format!("+{}", originator.number)
                } else {
                    originator.number.clone()
                };
                let dest_port = ud.udh.as_ref().and_then(|u| u.ports()).map(|p| p.0);
                let body = match (&ud.text, &ud.data) {
                    (Some(t), _) => PartBody::Text(t.clone()),
                    (None, Some(d)) => PartBody::Data(d.clone()),
                    _ => PartBody::Data(Vec::new()),
                };
                match ud
                    .udh
                    .as_ref()
                    .and_then(|u| u.concat())
                    .filter(|c| c.total > 1)
                {
                    None => {
                        // Read again after a crash before its slot was freed: the same SIM,
                        // SMSC timestamp and text name the same message.
                        let seen_as = format!("{}|{scts:?}|{body:?}", ss.sim_key);
                        self.store_mo(
                            port,
                            ss,
                            hub,
                            from,
                            body,
                            Vec::new(),
                            dest_port,
                            slot.into_iter().collect(),
                            Some(seen_as),
                        )
                        .await
                    }
                    Some(c) => {
                        let info = PartInfo::from(c);
                        let key = PartKey {
                            sender: from.clone(),
                            receiver: String::new(),
                            reference: info.reference,
                            total: info.total,
                        };
                        let pending = ss.part_slots.entry(key).or_default();
                        pending.dest_port = pending.dest_port.or(dest_port);
                        if let Some(s) = slot.clone() {
                            if !pending.slots.contains(&s) {
                                pending.slots.push(s);
                            }
                        }
                        match re.add(&from, "", info, body, crate::model::now_ms()) {
                            Ok(done) => {
                                for d in done {
                                    self.store_reassembled(port, ss, hub, d).await?;
                                }
                                Ok(())
                            }
                            Err(e) => {
                                tracing::warn!(modem = %self.label, error = %e, "bad MO part");
                                Ok(())
                            }
                        }
                    }
                }
            }
            Tpdu::Submit { .. } => Ok(()), // an outgoing message left in the store
        }
    }

    /// A reassembled (or expired, incomplete) multipart MO, with the slots of its parts.
    pub(super) async fn store_reassembled<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, ss: &mut Session, hub: &Arc<dyn HubSink>, done: crate::codec::reassembly::Reassembled) -> Result<(), Stop> {
        let p = ss.part_slots.remove(&done.key).unwrap_or_default();
        self.store_mo(port, ss, hub, done.key.sender.clone(), done.body, done.missing, p.dest_port, p.slots, None).await
    }

    /// Store an MO message in the hub, then free its storage slots (never before: a crash in
    /// between leaves it in the SIM, and the start-up poll reads it again).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_mo<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        from: String,
        body: PartBody,
        missing: Vec<u8>,
        dest_port: Option<u16>,
        slots: Vec<(String, u32)>,
        dedup_id: Option<String>,
    ) -> Result<(), Stop> {
        let body = match body {
            PartBody::Text(t) => Body::Text(t),
            PartBody::Data(d) => Body::Binary {
                data: d,
                data_coding: 0x04,
            },
        };
        let info = self.info.lock().clone();
        let inbound = InboundMessage {
            connector: self.settings.bank.clone(),
            from,
            to: String::new(),
            body,
            metadata: Some(
                serde_json::json!({"modem": {"port": self.label, "imsi": info.imsi, "operator": info.operator}, "incomplete_parts_missing": missing}),
            ),
            dest_port,
            dedup_id,
        };
        match hub.receive(inbound).await {
            Ok(_) => {
                self.received.fetch_add(1, Ordering::Relaxed);
                self.m.received.increment(1);
                for (mem, idx) in slots {
                    self.delete(port, ss, &mem, idx).await?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(modem = %self.label, error = %e, "MO not stored; left in the modem for the next poll");
                Ok(())
            }
        }
    }

    pub(super) async fn delete<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        mem: &str,
        idx: u32,
    ) -> Result<(), Stop> {
        let back = ss.mem1.clone();
        if !self.select_mem(port, ss, mem).await? {
            return Ok(());
        }
        match port
            .command(&format!("AT+CMGD={idx}"), self.timeout(&ss.profile))
            .await
        {
            Ok(_) | Err(AtError::Failed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.select_mem(port, ss, &back).await.map(|_| ())
    }
}
