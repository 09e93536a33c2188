//! The ready loop and sending: queued jobs (rate limit, daily cap), `AT+CMGS` per part, the
//! classification of `+CMS ERROR`s, and the liveness check between sends.

use super::*;

impl Modem {
    pub(super) async fn ready_loop<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        rx: &mut mpsc::Receiver<SendJob>,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
    ) -> Stop {
        let poll_every = self
            .settings
            .poll
            .unwrap_or(Duration::from_secs(ss.profile.sms.poll_cmgl_s.max(1) as u64));
        let mut next_poll = Instant::now(); // poll at once: messages that came while we were away
        let mut next_health = Instant::now() + self.settings.health;
        let rate = self
            .settings
            .rate_per_min
            .unwrap_or(ss.profile.timing.max_send_per_minute as f64);
        let gap = if rate > 0.0 {
            Duration::from_secs_f64(60.0 / rate)
        } else {
            Duration::ZERO
        };
        loop {
            // URCs already read (during a command) first.
            while let Some(u) = port.take_urc() {
                if let Err(s) = self.on_urc(port, ss, hub, re, u).await {
                    return s;
                }
            }
            let now = Instant::now();
            if now >= next_poll {
                next_poll = now + poll_every;
                if let Err(s) = self.poll(port, ss, hub, re).await {
                    return s;
                }
                continue;
            }
            if now >= next_health {
                next_health = now + self.settings.health;
                if let Err(s) = self.health(port, ss).await {
                    return s;
                }
                continue;
            }
            let can_send = self.ready.load(Ordering::Acquire) && now >= ss.next_send;
            if can_send {
                if let Some(job) = self.take_job(rx) {
                    if let Some(s) = self.handle_job(port, ss, job, gap).await {
                        return s;
                    }
                    continue;
                }
            }
            let mut wake = next_poll.min(next_health);
            if self.ready.load(Ordering::Acquire) && ss.next_send > now {
                wake = wake.min(ss.next_send);
            }
            tokio::select! {
                r = port.next_urc(wake) => match r {
                    Ok(Some(u)) => if let Err(s) = self.on_urc(port, ss, hub, re, u).await { return s },
                    Ok(None) => {}
                    Err(e) => return e.into(),
                },
                j = rx.recv(), if can_send => match j {
                    Some(job) => {
                        self.queue.fetch_sub(1, Ordering::AcqRel);
                        self.m.queue.decrement(1.0);
                        if let Some(s) = self.handle_job(port, ss, job, gap).await {
                            return s;
                        }
                    }
                    None => return Stop::Gone,
                },
            }
        }
    }

    pub(super) async fn handle_job<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        job: SendJob,
        gap: Duration,
    ) -> Option<Stop> {
        let parts = job.parts.len() as u32;
        let (result, stop) = self.send(port, ss, &job).await;
        if matches!(result, SendResult::Sent(_) | SendResult::Unknown(..)) {
            self.count_sent(&ss.sim_key, parts);
            ss.next_send = Instant::now() + gap * parts;
        }
        if matches!(result, SendResult::Sent(_)) {
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.m.sent.increment(1);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.m.failed.increment(1);
        }
        let _ = job.reply.send(result);
        stop
    }

    /// After a timeout: does the modem still answer? Three timeouts in a row, or silence to a
    /// plain `AT`, mean it hangs.
    pub(super) async fn check_alive<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        why: &str,
    ) -> Option<Stop> {
        ss.timeouts += 1;
        if ss.timeouts >= 3 {
            return Some(Stop::Reset(format!("three timeouts in a row ({why})")));
        }
        let _ = port.raw(&[0x1B]).await;
        match port
            .command("AT", Duration::from_secs(2).min(self.timeout(&ss.profile)))
            .await
        {
            Ok(_) => None,
            Err(AtError::Timeout { .. }) => Some(Stop::Reset(format!("no answer after {why}"))),
            Err(e) => Some(e.into()),
        }
    }

    pub(super) async fn send<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        job: &SendJob,
    ) -> (SendResult, Option<Stop>) {
        if self.capped() {
            return (
                SendResult::TryOther(DeliveryError::new(
                    ErrorClass::Temporary,
                    ErrorKind::DailyCap,
                    format!("{}: daily cap reached", self.label),
                )),
                None,
            );
        }
        let prompt_t = self.settings.prompt_timeout.unwrap_or(Duration::from_secs(
            ss.profile.timing.cmgs_prompt_timeout_s as u64,
        ));
        let result_t = self.settings.send_timeout.unwrap_or(Duration::from_secs(
            ss.profile.timing.cmgs_result_timeout_s as u64,
        ));
        // `needs-wakeup-at`: the first command after a quiet spell may be lost.
        if ss.profile.has("needs-wakeup-at") && port.idle() > Duration::from_secs(30) {
            let _ = port.command("AT", Duration::from_secs(2)).await;
        }
        let to = digits(&job.to);
        let mut ids = Vec::with_capacity(job.parts.len());
        for part in &job.parts {
            let mut attempts = 0;
            loop {
                attempts += 1;
                match port
                    .send_pdu(part.tpdu_length, &part.pdu, prompt_t, result_t)
                    .await
                {
                    Ok(lines) => {
                        ss.timeouts = 0;
                        let mr = field(&lines, "+CMGS:")
                            .and_then(|v| v.split(',').next())
                            .and_then(|v| v.trim().parse::<u8>().ok());
                        if let Some(mr) = mr {
                            ss.last_mr = Some(mr);
                        }
                        ids.push(format!(
                            "{}:{}:{}",
                            ss.sim_key,
                            mr.map_or("?".to_string(), |m| m.to_string()),
                            to
                        ));
                        break;
                    }
                    Err(AtError::Timeout {
                        stage: Stage::Result,
                        ..
                    }) => {
                        // The message may be out: never resend. Predict the TP-MR so a status
                        // report can still settle it.
                        let next = ss.last_mr.map_or(0, |m| m.wrapping_add(1));
                        ss.last_mr = Some(next);
                        ids.push(format!("{}:{}:{}", ss.sim_key, next, to));
                        let err = DeliveryError::new(
                            ErrorClass::Unknown,
                            ErrorKind::Timeout, 
                            format!(
                                "{}: no +CMGS result within {:?}; outcome unknown, not resent",
                                self.label, result_t
                            ),
                        ).with_code("send_timeout");
                        let stop = self.check_alive(port, ss, "a send").await;
                        return (SendResult::Unknown(ids, err), stop);
                    }
                    Err(AtError::Timeout { .. }) => {
                        let err = DeliveryError::new(
                            ErrorClass::Temporary,
                            ErrorKind::Timeout, 
                            format!("{}: no > prompt", self.label),
                        ).with_code("prompt_timeout");
                        let stop = self.check_alive(port, ss, "AT+CMGS").await;
                        return (self.partial(ids, err), stop);
                    }
                    Err(AtError::Failed { result, .. }) => {
                        ss.timeouts = 0;
                        let (class, code) = match &result {
                            FinalResult::Cms(ErrValue::Numeric(n)) => {
                                (classify_cms(*n, &ss.profile), format!("cms_{n}"))
                            }
                            FinalResult::Cme(v) if cme_busy(v) => {
                                (CmsClass::Retry, "cme_busy".to_string())
                            }
                            _ => (
                                if attempts == 1 {
                                    CmsClass::Retry
                                } else {
                                    CmsClass::Later
                                },
                                "modem_error".to_string(),
                            ),
                        };
                        let text = format!("{}: {result:?}", self.label);
                        match class {
                            CmsClass::Retry if attempts < 3 => {
                                tokio::time::sleep(Duration::from_millis(300 * attempts)).await;
                                continue;
                            }
                            CmsClass::Storage if attempts < 2 => {
                                // Memory full: read and clear the store, then try once more.
                                continue;
                            }
                            CmsClass::Fatal => {
                                return (
                                    SendResult::Failed(
                                        DeliveryError::new(ErrorClass::Permanent, ErrorKind::Rejected, text)
                                            .with_code(code),
                                    ),
                                    None,
                                )
                            }
                            CmsClass::Config => {
                                let err =
                                    DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkError, text.clone())
                                        .with_code(code);
                                return (
                                    self.partial(ids, err),
                                    Some(Stop::Fatal(format!("configuration problem: {text}"))),
                                );
                            }
                            _ => {
                                return (
                                    self.partial(
                                        ids,
                                        DeliveryError::new(ErrorClass::Temporary, ErrorKind::Temporary, text)
                                            .with_code(code),
                                    ),
                                    None,
                                )
                            }
                        }
                    }
                    Err(e) => {
                        let stop: Stop = e.into();
                        let err = DeliveryError::new(
                            ErrorClass::Temporary,
                            ErrorKind::LinkError, 
                            format!("{}: {stop:?}", self.label),
                        ).with_code("modem_io");
                        return (self.partial(ids, err), Some(stop));
                    }
                }
            }
        }
        (SendResult::Sent(ids), None)
    }

    /// A failure after some parts went out: those are on the network, so retrying elsewhere
    /// would duplicate them; the message's outcome is unknown. Before any part: try another.
    pub(super) fn partial(&self, ids: Vec<String>, err: DeliveryError) -> SendResult {
        if ids.is_empty() {
            SendResult::TryOther(err)
        } else {
            SendResult::Unknown(
                ids,
                DeliveryError::new(ErrorClass::Unknown, ErrorKind::PartlySent, err.message),
            )
        }
    }
}
