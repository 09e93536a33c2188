//! Bringing a modem up: sync, init strings, identity and hwdb match, PIN, registration, PDU
//! mode, SMSC, storage and indications.

use super::*;

impl Modem {
    pub(super) async fn init(&self, port: &mut AtPort<tokio_serial::SerialStream>, first: Profile, usb: Option<(String, String)>) -> Result<Session, Stop> {
        self.set_state("initialising");
        let s = &self.settings;
        self.info.lock().usb = usb.as_ref().map(|(v, p)| format!("{v}:{p}"));
        let forced = s.forced_profile.as_ref().map(|_| first.clone());
        if let (Some((v, p)), None) = (&usb, &forced) {
            let mode = first.usb.iter().find(|u| &u.vid == v && &u.pid == p).map(|u| u.mode);
            if mode == Some(super::super::hwdb::UsbMode::NetworkOnly) {
                return Err(Stop::Fatal(format!("{v}:{p} is {} network-only firmware (e.g. HiLink): it has no AT port for SMS", first.model)));
            }
        }
        if first.serial.open_settle_ms > 0 {
            tokio::time::sleep(Duration::from_millis(first.serial.open_settle_ms as u64)).await;
        }
        port.set_parser(parser_for(&first));
        // Sync: ESC aborts a half-entered PDU; then AT until it answers.
        let boot = Instant::now() + Duration::from_secs(first.serial.boot_timeout_s as u64);
        loop {
            port.raw(&[0x1B]).await?;
            match port.command("AT", Duration::from_secs(1)).await {
                Ok(_) => break,
                Err(AtError::Timeout { .. }) | Err(AtError::Failed { .. })
                    if Instant::now() < boot =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
        let t = self.timeout(&first);
        for c in &first.at.init {
            self.init_command(port, c, t).await?;
        }
        // Identify.
        let cgmi = port
            .command("AT+CGMI", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGMI:"));
        let cgmm = port
            .command("AT+CGMM", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGMM:"));
        let cgmr = port
            .command("AT+CGMR", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGMR:"));
        let imei = port
            .command("AT+CGSN", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGSN:"));
        let (profile, by) = match forced {
            Some(p) => (p, MatchedBy::Forced),
            None => s.hwdb.find(
                usb.as_ref().map(|(v, p)| (v.as_str(), p.as_str())),
                cgmi.as_deref(),
                cgmm.as_deref(),
            ),
        };
        {
            let mut i = self.info.lock();
            i.manufacturer = cgmi;
            i.model = cgmm;
            i.revision = cgmr;
            i.imei = imei.clone();
            i.profile = Some(profile.id.clone());
            i.matched_by = Some(by);
        }
        if profile.support == super::super::hwdb::Support::Unsupported || profile.has("no-sms-read") {
            return Err(Stop::Fatal(format!(
                "{} ({}) cannot send and read SMS over AT",
                profile.model, profile.id
            )));
        }
        port.set_parser(parser_for(&profile));
        if profile.serial.flow_control == super::super::hwdb::FlowControl::Rtscts && first.serial.flow_control != super::super::hwdb::FlowControl::Rtscts {
            let _ = tokio_serial::SerialPort::set_flow_control(port.get_mut(), tokio_serial::FlowControl::Hardware);
        }
        port.per_byte_delay = Duration::from_micros(profile.serial.per_byte_delay_us as u64);
        port.inter_command_delay =
            Duration::from_millis(profile.timing.inter_command_delay_ms as u64);
        let t = self.timeout(&profile);
        if profile.id != first.id {
            for c in profile
                .at
                .init
                .iter()
                .filter(|c| !first.at.init.contains(c))
            {
                self.init_command(port, c, t).await?;
            }
        }
        // Radio on.
        if !profile.has("cfun-query-nonstandard") {
            if let Ok(l) = port.command("AT+CFUN?", t).await {
                if matches!(
                    field(&l, "+CFUN:")
                        .and_then(|v| v.split(',').next())
                        .map(str::trim),
                    Some("0") | Some("4")
                ) {
                    port.command(
                        "AT+CFUN=1",
                        Duration::from_secs(profile.timing.cfun_timeout_s as u64),
                    )
                    .await?;
                }
            }
        }
        // PIN.
        self.set_state("waiting_pin");
        let cpin_t = Duration::from_secs(profile.timing.cpin_timeout_s as u64).min(
            self.settings
                .command_timeout
                .map_or(Duration::MAX, |c| c * 3),
        );
        let mut pin_sent = false;
        let mut sim_cycled = false;
        loop {
            let mut tries = 0;
            let answer = loop {
                let r = if profile.has("cpin-no-ok") {
                    port.command_ending_on_answer("AT+CPIN?", cpin_t).await
                } else {
                    port.command("AT+CPIN?", cpin_t).await
                };
                match r {
                    Err(e) if is_busy(&e) && tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    // SIM not inserted / SIM failure: some modems recover the SIM with a radio
                    // off-on cycle (smstools RADIO_OFF_ON).
                    Err(AtError::Failed { result: FinalResult::Cme(ErrValue::Numeric(10 | 13)), .. }) if profile.has("sim-reset-by-cfun") && !sim_cycled => {
                        sim_cycled = true;
                        let cfun_t = Duration::from_secs(profile.timing.cfun_timeout_s as u64);
                        port.command("AT+CFUN=0", cfun_t).await?;
                        port.command("AT+CFUN=1", cfun_t).await?;
                    }
                    other => break other?,
                }
            };
            let v = field(&answer, "+CPIN:").unwrap_or("").to_ascii_uppercase();
            match v.as_str() {
                "READY" => break,
                "SIM PIN" if !pin_sent && !self.pin_rejected.load(Ordering::Relaxed) => {
                    let Some(pin) = self.settings.pin.clone() else {
                        return Err(Stop::Fatal(
                            "the SIM asks for a PIN and pin_env is not set".into(),
                        ));
                    };
                    pin_sent = true;
                    // The PIN is never logged: errors name the command without it.
                    match port
                        .command(&format!("AT+CPIN=\"{pin}\""), Duration::from_secs(30))
                        .await
                    {
                        Ok(_) => {}
                        Err(AtError::Failed { result, .. }) => {
                            self.pin_rejected.store(true, Ordering::Relaxed);
                            return Err(Stop::Fatal(format!(
                                "SIM PIN rejected ({result:?}); not retried: attempts are limited"
                            )));
                        }
                        Err(AtError::Timeout { .. }) => {
                            return Err(Stop::Reset("no answer to AT+CPIN=<pin>".into()))
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                "SIM PIN" => {
                    return Err(Stop::Fatal("SIM PIN rejected earlier; not retried".into()))
                }
                "SIM PUK" => return Err(Stop::Fatal("the SIM is PUK-locked".into())),
                other => return Err(Stop::Fatal(format!("SIM state {other:?}"))),
            }
        }
        // SMS ready: commands fail with busy codes (or plain ERROR before `SMS Ready`).
        self.set_state("registering");
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            match port.command("AT+CMGF=0", t).await {
                Ok(_) => break,
                Err(AtError::Failed { .. }) if Instant::now() < ready_by => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        let imsi = self
            .busy_retry(port, "AT+CIMI", t, 10)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CIMI:"))
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
        self.info.lock().imsi = imsi.clone();
        let sim_key = imsi.clone().or(imei).unwrap_or_else(|| self.label.clone());
        self.load_count(&sim_key);
        // Registration.
        let reg_by = Instant::now() + self.settings.registration_timeout;
        loop {
            // Any failure here means "not yet": the loop asks again until the deadline.
            let registered = matches!(self.registered(port, t).await, Ok(true));
            if registered {
                break;
            }
            if Instant::now() >= reg_by {
                return Err(Stop::Reset("not registered to a network".into()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Ok(l) = port.command("AT+CSQ", t).await {
            self.signal(field(&l, "+CSQ:").and_then(csq_dbm));
        }
        let _ = port.command("AT+CSCS=\"GSM\"", t).await;
        let smsc = port.command("AT+CSCA?", t).await.ok().and_then(|l| {
            field(&l, "+CSCA:").map(|v| {
                v.split(',')
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            })
        });
        if smsc.as_deref().is_none_or(|v| v.is_empty()) {
            match &self.settings.smsc {
                Some(n) => {
                    port.command(&format!("AT+CSCA=\"{n}\",145"), t).await?;
                }
                None => {
                    tracing::warn!(modem = %self.label, "the SIM has no SMSC number and `smsc` is not configured")
                }
            }
        }
        let mems = profile
            .sms
            .cpms
            .iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(",");
        if let Err(e) = self
            .busy_retry(port, &format!("AT+CPMS={mems}"), t, 10)
            .await
        {
            tracing::warn!(modem = %self.label, error = %e, "storage selection refused");
        }
        let mut cnmi_ok = false;
        for c in std::iter::once(&profile.sms.cnmi).chain(&profile.sms.cnmi_fallbacks) {
            match port
                .command(
                    &format!("AT+CNMI={c}"),
                    Duration::from_secs(3).min(t.max(Duration::from_millis(500))),
                )
                .await
            {
                Ok(_) => {
                    cnmi_ok = true;
                    break;
                }
                Err(AtError::Failed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !cnmi_ok {
            tracing::warn!(modem = %self.label, "no AT+CNMI setting accepted: relying on the AT+CMGL poll");
        }
        let cnma = port
            .command("AT+CSMS?", t)
            .await
            .ok()
            .and_then(|l| field(&l, "+CSMS:").map(|v| v.starts_with('1')))
            .unwrap_or(false);
        for c in &profile.at.post_sim_ready {
            self.init_command(port, c, t).await?;
        }
        self.read_operator(port, t).await;
        // Boot and ready markers read during init are history, not a restart.
        let markers: Vec<String> = profile.urc.ready.iter().chain(&profile.urc.sms_ready).chain(&profile.urc.power_down).cloned().collect();
        port.retain_urcs(|u| !markers.iter().any(|m| u.line.contains(m.as_str())));
        self.set_ready(true);
        let mem1 = profile
            .sms
            .cpms
            .first()
            .cloned()
            .unwrap_or_else(|| "SM".into());
        Ok(Session {
            profile,
            sim_key,
            mem1,
            cnma,
            last_mr: None,
            next_send: Instant::now(),
            timeouts: 0,
            part_slots: HashMap::new(),
        })
    }

    /// An init command: refused is fine (logged, the next step has a fallback), silence is not.
    pub(super) async fn init_command<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        cmd: &str,
        t: Duration,
    ) -> Result<(), Stop> {
        match port.command(cmd, t).await {
            Ok(_) => Ok(()),
            Err(AtError::Failed { result, .. }) => {
                tracing::debug!(modem = %self.label, cmd, ?result, "init command refused");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn signal(&self, dbm: Option<i32>) {
        self.info.lock().signal_dbm = dbm;
        if let Some(d) = dbm {
            self.m.signal.set(d as f64);
        }
    }
}
