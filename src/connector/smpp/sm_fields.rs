//! The fields Postern reads from a `submit_sm` (server: ESMEs sending) or a `deliver_sm`
//! (client: receipts and MO from a carrier), taken straight from rusmpp's decoded PDU. The hot
//! paths used to re-encode the PDU and read it back through the JSON view of [`super::pdu_view`]
//! (a third of the CPU of SMPP in → SMPP out); that view stays for `postern smpp decode`.

use rusmpp::tlvs::{Tlv, TlvValue};

/// One short message's routing, coding and payload fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmFields {
    pub source_addr: String,
    pub source_addr_ton: u8,
    pub destination_addr: String,
    pub esm_class: u8,
    pub data_coding: u8,
    pub priority: u8,
    pub registered_delivery: u8,
    /// The user data: the `message_payload` TLV when present (it supersedes `short_message`,
    /// SMPP 3.4 §5.3.2.32), otherwise `short_message`; the UDH, if any, still in front.
    pub payload: Vec<u8>,
    pub receipted_message_id: Option<String>,
    pub message_state: Option<u8>,
    /// `network_error_code`: network type and error code.
    pub network_error: Option<(u8, u16)>,
    /// `sar_msg_ref_num`, `sar_total_segments`, `sar_segment_seqnum` when all three are given.
    pub sar: Option<(u16, u8, u8)>,
    pub dest_port: Option<u16>,
}

/// What `submit_sm` and `deliver_sm` share (the same mandatory fields in SMPP 3.4).
macro_rules! sm_fields {
    ($pdu:expr) => {{
        let p = $pdu;
        let mut f = SmFields {
            source_addr: p.source_addr.as_str().to_string(),
            source_addr_ton: u8::from(p.source_addr_ton),
            destination_addr: p.destination_addr.as_str().to_string(),
            esm_class: u8::from(p.esm_class),
            data_coding: u8::from(p.data_coding),
            priority: u8::from(p.priority_flag),
            registered_delivery: u8::from(p.registered_delivery),
            payload: Vec::new(),
            receipted_message_id: None,
            message_state: None,
            network_error: None,
            sar: None,
            dest_port: None,
        };
        f.read_tlvs(p.tlvs());
        if f.payload.is_empty() {
            f.payload = p.short_message().as_ref().to_vec();
        }
        f
    }};
}

impl SmFields {
    pub fn of_submit(sm: &rusmpp::pdus::SubmitSm) -> SmFields {
        sm_fields!(sm)
    }

    pub fn of_deliver(sm: &rusmpp::pdus::DeliverSm) -> SmFields {
        sm_fields!(sm)
    }

    fn read_tlvs(&mut self, tlvs: &[Tlv]) {
        let (mut r, mut t, mut s) = (None, None, None);
        for tlv in tlvs {
            match tlv.value() {
                Some(TlvValue::MessagePayload(p)) => self.payload = p.value.as_ref().to_vec(),
                Some(TlvValue::ReceiptedMessageId(id)) => self.receipted_message_id = Some(id.as_str().to_string()),
                Some(TlvValue::MessageState(st)) => self.message_state = Some(u8::from(*st)),
                Some(TlvValue::NetworkErrorCode(e)) => self.network_error = Some((u8::from(e.network_type), e.error_code)),
                Some(TlvValue::SarMsgRefNum(v)) => r = Some(*v),
                Some(TlvValue::SarTotalSegments(v)) => t = Some(*v),
                Some(TlvValue::SarSegmentSeqnum(v)) => s = Some(*v),
                Some(TlvValue::DestPort(v)) => self.dest_port = Some(*v),
                _ => {}
            }
        }
        if let (Some(r), Some(t), Some(s)) = (r, t, s) {
            self.sar = Some((r, t, s));
        }
    }

    /// The UDH (when `esm_class` says there is one) and the user data after it.
    pub fn split_udh(&self) -> (Option<&[u8]>, &[u8]) {
        split_udh(self.esm_class, &self.payload)
    }

    /// A delivery receipt, not an MO message.
    pub fn is_receipt(&self) -> bool {
        is_receipt(self.esm_class)
    }
}

/// The UDH (when `esm_class` has UDHI, 0x40, and the data is not empty: its first octet is the
/// header length) and the user data after it. A length past the end leaves no user data.
pub fn split_udh(esm_class: u8, data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match data.first() {
        Some(&n) if esm_class & 0x40 != 0 => {
            let end = (n as usize + 1).min(data.len());
            (Some(&data[..end]), &data[end..])
        }
        _ => (None, data),
    }
}

/// `esm_class` message type 0x04 or 0x08: a delivery receipt (or intermediate notification).
pub fn is_receipt(esm_class: u8) -> bool {
    matches!(esm_class & 0x3C, 0x04 | 0x08)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::pdus::{DeliverSm, SubmitSm};
    use rusmpp::tlvs::MessageSubmissionRequestTlvValue as SubTlv;
    use rusmpp::types::{AnyOctetString, OctetString};
    use rusmpp::values::{DataCoding, ErrorCodeNetworkType, EsmClass, MessagePayload, MessageState, NetworkErrorCode, Ton};
    use rusmpp::{Command, CommandStatus, Pdu};

    /// Encode a command and decode it again, as a peer's bytes reach the session.
    fn wire(pdu: Pdu) -> Command {
        use tokio_util::codec::{Decoder, Encoder};
        let mut codec = rusmpp::tokio_codec::CommandCodec::new();
        let mut buf = bytes::BytesMut::new();
        codec.encode(Command::new(CommandStatus::EsmeRok, 7, pdu), &mut buf).unwrap();
        codec.decode(&mut buf).unwrap().unwrap()
    }

    /// The same PDU read both ways: the JSON view (`postern smpp decode`) and these fields agree.
    fn view_of(cmd: &Command) -> serde_json::Value {
        use tokio_util::codec::Encoder;
        let mut buf = bytes::BytesMut::new();
        rusmpp::tokio_codec::CommandCodec::new().encode(cmd, &mut buf).unwrap();
        super::super::pdu_view::view(&buf).unwrap()
    }

    #[test]
    fn submit_sm_fields_match_the_view() {
        let sm = SubmitSm::builder()
            .source_addr_ton(Ton::International)
            .source_addr(super::super::c("447400123001"))
            .destination_addr(super::super::c("447400123123"))
            .esm_class(EsmClass::from(0x40u8))
            .data_coding(DataCoding::from(8u8))
            .short_message(OctetString::from_vec(vec![5, 0, 3, 0x2A, 2, 1, 0, 0x41]).unwrap())
            .build();
        let cmd = wire(sm.into());
        let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else { panic!("not a submit_sm") };
        let f = SmFields::of_submit(sm);
        let v = view_of(&cmd);
        assert_eq!(f.source_addr, v["source_addr"].as_str().unwrap());
        assert_eq!(f.destination_addr, v["destination_addr"].as_str().unwrap());
        assert_eq!(f.source_addr_ton as u64, v["source_addr_ton"].as_u64().unwrap());
        assert_eq!(f.esm_class as u64, v["esm_class"].as_u64().unwrap());
        assert_eq!(f.data_coding as u64, v["data_coding"].as_u64().unwrap());
        assert_eq!(hex::encode(&f.payload), v["short_message_hex"].as_str().unwrap());
        assert_eq!(f.split_udh(), (Some(&[5u8, 0, 3, 0x2A, 2, 1][..]), &[0u8, 0x41][..]));
        assert!(!f.is_receipt());
    }

    #[test]
    fn message_payload_supersedes_short_message() {
        let sm = SubmitSm::builder()
            .destination_addr(super::super::c("447400123123"))
            .push_tlv(SubTlv::MessagePayload(MessagePayload::new(AnyOctetString::from_slice(b"long text"))))
            .build();
        let cmd = wire(sm.into());
        let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else { panic!("not a submit_sm") };
        let f = SmFields::of_submit(sm);
        assert_eq!(f.payload, b"long text");
        assert_eq!(f.split_udh(), (None, &b"long text"[..]));
    }

    #[test]
    fn receipt_tlvs_are_read() {
        let mut d: DeliverSm = super::super::receipt_deliver_sm("abc123", "447400123123", "Postern", Some(b"id:abc123 stat:DELIVRD err:000".to_vec()), Some(MessageState::Delivered));
        d.push_tlv(rusmpp::tlvs::MessageDeliveryRequestTlvValue::NetworkErrorCode(NetworkErrorCode::new(ErrorCodeNetworkType::Gsm, 34)));
        let cmd = wire(d.into());
        let Some(Pdu::DeliverSm(d)) = cmd.pdu() else { panic!("not a deliver_sm") };
        let f = SmFields::of_deliver(d);
        assert!(f.is_receipt());
        assert_eq!(f.receipted_message_id.as_deref(), Some("abc123"));
        assert_eq!(f.message_state, Some(2));
        assert_eq!(f.network_error, Some((3, 34)));
        assert_eq!(f.payload, b"id:abc123 stat:DELIVRD err:000");
        let v = view_of(&cmd);
        assert_eq!(v["tlv"]["message_state"].as_u64(), Some(2));
    }
}
