//! The `submit_sm` PDUs for a message: text in GSM 7-bit (packed or not) or UCS-2, binary,
//! long messages as UDH parts, SAR TLVs or one `message_payload`; addresses and receipts asked.

use super::c;
use crate::codec::{gsm7, segment, ucs2, Coding};
use super::config::{Gsm7Wire, LongMessages};
use crate::connector::{sms_of, DeliveryError, ErrorClass, ErrorKind,
};
use crate::model::{Body, Message};
use rusmpp::pdus::SubmitSm;
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;
use rusmpp::types::{AnyOctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, MessagePayload, Npi, RegisteredDelivery, Ton};
use std::sync::atomic::Ordering;
use super::client::SmppConnector;

impl SmppConnector {
    /// The submit_sm PDUs for a message, in order.
    pub(super) fn build(&self, msg: &Message) -> Result<Vec<SubmitSm>, DeliveryError> {
        let bad = |m: String| DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, m);
        let sms = sms_of(msg)?;
        let (dc, parts, udhs): (u8, Vec<Vec<u8>>, Vec<Option<Vec<u8>>>) = match &sms.body {
            Body::Text(t) => {
                let coding = sms.coding;
                let encode = |s: &str| -> Result<Vec<u8>, DeliveryError> {
                    match coding {
                        Coding::Gsm7 => {
                            let sept = gsm7::to_septets(s).map_err(|e| bad(e.to_string()))?;
                            Ok(if self.cfg.gsm7 == Gsm7Wire::Packed {
                                gsm7::pack(&sept, 0)
                            } else {
                                sept
                            })
                        }
                        _ => Ok(ucs2::encode(s)),
                    }
                };
                let dc = if coding == Coding::Gsm7 { 0x00 } else { 0x08 };
                if let Some(udh) = &sms.udh {
                    (dc, vec![encode(t)?], vec![Some(udh.clone())])
                } else if self.cfg.long_messages == LongMessages::Payload {
                    (dc, vec![encode(t)?], vec![None])
                } else {
                    let pieces = segment::split(
                        t,
                        if coding == Coding::Gsm7 {
                            Coding::Gsm7
                        } else {
                            Coding::Ucs2
                        },
                        segment::ConcatRef::Bits8,
                    );
                    let enc: Result<Vec<_>, _> = pieces.iter().map(|p| encode(p)).collect();
                    let n = pieces.len();
                    (dc, enc?, vec![None; n])
                }
            }
            Body::Binary { data, data_coding } => {
                let pieces: Vec<Vec<u8>> =
                    if sms.udh.is_some() || self.cfg.long_messages == LongMessages::Payload {
                        vec![data.clone()]
                    } else {
                        segment::split_binary(data, segment::ConcatRef::Bits8)
                            .into_iter()
                            .map(|p| p.to_vec())
                            .collect()
                    };
                let n = pieces.len();
                (*data_coding, pieces, vec![sms.udh.clone(); n])
            }
        };
        let total = parts.len();
        let reference = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let from = msg.envelope.from.as_deref().unwrap_or("");
        let (src_ton, src_npi, src) = if let Some(d) = from.strip_prefix('+') {
            (Ton::International, Npi::Isdn, d.to_string())
        } else if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
            (Ton::Unknown, Npi::Isdn, from.to_string())
        } else {
            (Ton::Alphanumeric, Npi::Unknown, from.to_string())
        };
        let dst = msg.envelope.to.trim_start_matches('+').to_string();
        let mut out = Vec::with_capacity(total);
        for (i, (part, udh)) in parts.into_iter().zip(udhs).enumerate() {
            let mut esm = 0u8;
            let mut short = part;
            let mut tlvs: Vec<MessageSubmissionRequestTlvValue> = Vec::new();
            if let Some(u) = udh {
                esm |= 0x40;
                short = [u, short].concat();
            } else if total > 1 {
                match self.cfg.long_messages {
                    LongMessages::Udh => {
                        esm |= 0x40;
                        let u = vec![0x05, 0x00, 0x03, reference as u8, total as u8, i as u8 + 1];
                        short = [u, short].concat();
                    }
                    LongMessages::Sar => {
                        tlvs.push(MessageSubmissionRequestTlvValue::SarMsgRefNum(reference));
                        tlvs.push(MessageSubmissionRequestTlvValue::SarTotalSegments(
                            total as u8,
                        ));
                        tlvs.push(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(
                            i as u8 + 1,
                        ));
                    }
                    LongMessages::Payload => {}
                }
            }
            let mut b = SubmitSm::builder()
                .source_addr_ton(src_ton)
                .source_addr_npi(src_npi)
                .source_addr(c(&src))
                .dest_addr_ton(Ton::International)
                .dest_addr_npi(Npi::Isdn)
                .destination_addr(c(&dst))
                .esm_class(EsmClass::from(esm))
                .registered_delivery(RegisteredDelivery::from(if self.cfg.dlr {
                    0x01u8
                } else {
                    0
                }))
                .data_coding(DataCoding::from(dc));
            if short.len() > 254
                || self.cfg.long_messages == LongMessages::Payload
                    && total == 1
                    && sms.udh.is_none()
            {
                tlvs.push(MessageSubmissionRequestTlvValue::MessagePayload(
                    MessagePayload::new(AnyOctetString::from_vec(short)),
                ));
            } else {
                b = b.short_message(
                    OctetString::from_vec(short).map_err(|e| bad(format!("short_message: {e}")))?,
                );
            }
            for t in tlvs {
                b = b.push_tlv(t);
            }
            out.push(b.build());
        }
        Ok(out)
    }
}
