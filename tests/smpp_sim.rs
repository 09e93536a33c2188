//! The SMSC simulator over real TCP, driven by an independent client (rusmppc): bind, submit,
//! receipts as TLV and text, throttling, refused binds.

mod common;

use futures::StreamExt;
use postern::connector::smpp::dlr;
use postern::sim::smsc::{DlrAs, SimConfig, SmscSim};
use rusmpp::pdus::SubmitSm;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{Npi, RegisteredDelivery, Ton};
use rusmpp::{CommandStatus, Pdu};
use rusmppc::{error::Error as ClientError, Event};
use std::str::FromStr;
use std::time::Duration;

async fn bind(
    addr: std::net::SocketAddr,
    password: &str,
) -> Result<(rusmppc::Client, futures::stream::BoxStream<'static, Event>), ClientError> {
    common::esme_bind(&addr.to_string(), "postern", password).await
}

fn submit(to: &str, text: &str) -> SubmitSm {
    SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr(COctetString::from_str("Postern").unwrap())
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_str(to).unwrap())
        .registered_delivery(RegisteredDelivery::request_all())
        .short_message(OctetString::from_str(text).unwrap())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_submit_and_receipts() {
    let sim = SmscSim::start(SimConfig {
        dlr_delay: Duration::from_millis(20),
        dlr_as: DlrAs::Both,
        ..Default::default()
    })
    .await
    .unwrap();
    let (client, mut events) = bind(sim.addr, "secret").await.unwrap();
    // 20 submits in flight at once: responses are matched by sequence number.
    let mut futs = Vec::new();
    for i in 0..20 {
        let c = client.clone();
        futs.push(tokio::spawn(async move {
            c.submit_sm(submit(&format!("4474001231{i:02}"), "hello"))
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for f in futs {
        let resp = f.await.unwrap().unwrap();
        ids.insert(resp.message_id().as_str().to_string());
    }
    assert_eq!(ids.len(), 20);
    let mut receipts = 0;
    while receipts < 20 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("receipts arrive")
            .unwrap();
        let Event::Incoming(cmd) = ev else { continue };
        if let Some(Pdu::DeliverSm(d)) = cmd.pdu() {
            let text = String::from_utf8_lossy(d.short_message().as_ref()).into_owned();
            let r = dlr::parse(&text).expect("receipt text");
            assert!(ids.contains(r.id.as_deref().unwrap()), "{text}");
            assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
            assert!(
                d.tlvs().len() >= 2,
                "receipted_message_id + message_state TLVs"
            );
            client
                .deliver_sm_resp(
                    cmd.sequence_number(),
                    rusmpp::pdus::DeliverSmResp::default(),
                )
                .await
                .unwrap();
            receipts += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        sim.counters
            .submits
            .load(std::sync::atomic::Ordering::Relaxed),
        20
    );
    assert_eq!(
        sim.counters
            .receipt_acks
            .load(std::sync::atomic::Ordering::Relaxed),
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_modes() {
    let sim = SmscSim::start(SimConfig {
        throttle_every: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let (client, _events) = bind(sim.addr, "secret").await.unwrap();
    let mut throttled = 0;
    for i in 0..9 {
        match client
            .submit_sm(submit(&format!("44740010{i:04}"), "x"))
            .await
        {
            Ok(_) => {}
            Err(ClientError::UnexpectedResponse { response })
                if response.status() == CommandStatus::EsmeRthrottled =>
            {
                throttled += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(throttled, 3);
    // wrong password, and a refusing SMSC
    assert!(bind(sim.addr, "wrong").await.is_err());
    let refusing = SmscSim::start(SimConfig {
        refuse_binds: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(bind(refusing.addr, "secret").await.is_err());
}
