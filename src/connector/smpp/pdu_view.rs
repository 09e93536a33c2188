//! A field-by-field view of one SMPP 3.4 PDU as JSON, for `postern smpp decode` (operators paste
//! hex from captures and logs): the header, every mandatory parameter under its specification
//! name (SMPP 3.4 §4), TLVs by name (§5.3), the decoded short message, and a parsed delivery
//! receipt. Written by hand and table-driven; the wire protocol itself is rusmpp's. Every error
//! names the octet offset.

use super::{dlr, sm_fields};
use crate::codec::{gsm7, ucs2};
use serde_json::{json, Map, Value};
use thiserror::Error;

/// A PDU that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at octet {offset}: {what}")]
pub struct ViewError {
    pub offset: usize,
    pub what: String,
}

#[derive(Clone, Copy)]
enum F {
    /// C-octet string with a maximum length (NUL included).
    C(&'static str, usize),
    U8(&'static str),
    /// `sm_length` then that many octets of `short_message`.
    ShortMessage,
}

use F::*;

const SM_BODY: &[F] = &[
    C("service_type", 6),
    U8("source_addr_ton"),
    U8("source_addr_npi"),
    C("source_addr", 21),
    U8("dest_addr_ton"),
    U8("dest_addr_npi"),
    C("destination_addr", 21),
    U8("esm_class"),
    U8("protocol_id"),
    U8("priority_flag"),
    C("schedule_delivery_time", 17),
    C("validity_period", 17),
    U8("registered_delivery"),
    U8("replace_if_present_flag"),
    U8("data_coding"),
    U8("sm_default_msg_id"),
    ShortMessage,
];
const BIND: &[F] = &[
    C("system_id", 16),
    C("password", 9),
    C("system_type", 13),
    U8("interface_version"),
    U8("addr_ton"),
    U8("addr_npi"),
    C("address_range", 41),
];

/// (command_id, name, mandatory fields, TLVs follow)
const COMMANDS: &[(u32, &str, &[F], bool)] = &[
    (0x8000_0000, "generic_nack", &[], false),
    (0x0000_0001, "bind_receiver", BIND, false),
    (
        0x8000_0001,
        "bind_receiver_resp",
        &[C("system_id", 16)],
        true,
    ),
    (0x0000_0002, "bind_transmitter", BIND, false),
    (
        0x8000_0002,
        "bind_transmitter_resp",
        &[C("system_id", 16)],
        true,
    ),
    (
        0x0000_0003,
        "query_sm",
        &[
            C("message_id", 65),
            U8("source_addr_ton"),
            U8("source_addr_npi"),
            C("source_addr", 21),
        ],
        false,
    ),
    (
        0x8000_0003,
        "query_sm_resp",
        &[
            C("message_id", 65),
            C("final_date", 17),
            U8("message_state"),
            U8("error_code"),
        ],
        false,
    ),
    (0x0000_0004, "submit_sm", SM_BODY, true),
    (0x8000_0004, "submit_sm_resp", &[C("message_id", 65)], true),
    (0x0000_0005, "deliver_sm", SM_BODY, true),
    (0x8000_0005, "deliver_sm_resp", &[C("message_id", 65)], true),
    (0x0000_0006, "unbind", &[], false),
    (0x8000_0006, "unbind_resp", &[], false),
    (
        0x0000_0007,
        "replace_sm",
        &[
            C("message_id", 65),
            U8("source_addr_ton"),
            U8("source_addr_npi"),
            C("source_addr", 21),
            C("schedule_delivery_time", 17),
            C("validity_period", 17),
            U8("registered_delivery"),
            U8("sm_default_msg_id"),
            ShortMessage,
        ],
        false,
    ),
    (0x8000_0007, "replace_sm_resp", &[], false),
    (
        0x0000_0008,
        "cancel_sm",
        &[
            C("service_type", 6),
            C("message_id", 65),
            U8("source_addr_ton"),
            U8("source_addr_npi"),
            C("source_addr", 21),
            U8("dest_addr_ton"),
            U8("dest_addr_npi"),
            C("destination_addr", 21),
        ],
        false,
    ),
    (0x8000_0008, "cancel_sm_resp", &[], false),
    (0x0000_0009, "bind_transceiver", BIND, false),
    (
        0x8000_0009,
        "bind_transceiver_resp",
        &[C("system_id", 16)],
        true,
    ),
    (
        0x0000_000B,
        "outbind",
        &[C("system_id", 16), C("password", 9)],
        false,
    ),
    (0x0000_0015, "enquire_link", &[], false),
    (0x8000_0015, "enquire_link_resp", &[], false),
    (
        0x0000_0102,
        "alert_notification",
        &[
            U8("source_addr_ton"),
            U8("source_addr_npi"),
            C("source_addr", 65),
            U8("esme_addr_ton"),
            U8("esme_addr_npi"),
            C("esme_addr", 65),
        ],
        true,
    ),
    (
        0x0000_0103,
        "data_sm",
        &[
            C("service_type", 6),
            U8("source_addr_ton"),
            U8("source_addr_npi"),
            C("source_addr", 65),
            U8("dest_addr_ton"),
            U8("dest_addr_npi"),
            C("destination_addr", 65),
            U8("esm_class"),
            U8("registered_delivery"),
            U8("data_coding"),
        ],
        true,
    ),
    (0x8000_0103, "data_sm_resp", &[C("message_id", 65)], true),
];

#[derive(Clone, Copy)]
enum T {
    /// Integer of the given size in octets.
    Int(usize),
    Text,
    Octets,
}

/// TLV tags (SMPP 3.4 §5.3.2 and 5.0 additions).
const TLVS: &[(u16, &str, T)] = &[
    (0x0005, "dest_addr_subunit", T::Int(1)),
    (0x0006, "dest_network_type", T::Int(1)),
    (0x0007, "dest_bearer_type", T::Int(1)),
    (0x0008, "dest_telematics_id", T::Int(2)),
    (0x000D, "source_addr_subunit", T::Int(1)),
    (0x000E, "source_network_type", T::Int(1)),
    (0x000F, "source_bearer_type", T::Int(1)),
    (0x0010, "source_telematics_id", T::Int(1)),
    (0x0017, "qos_time_to_live", T::Int(4)),
    (0x0019, "payload_type", T::Int(1)),
    (0x001D, "additional_status_info_text", T::Text),
    (0x001E, "receipted_message_id", T::Text),
    (0x0030, "ms_msg_wait_facilities", T::Int(1)),
    (0x0201, "privacy_indicator", T::Int(1)),
    (0x0202, "source_subaddress", T::Octets),
    (0x0203, "dest_subaddress", T::Octets),
    (0x0204, "user_message_reference", T::Int(2)),
    (0x0205, "user_response_code", T::Int(1)),
    (0x020A, "source_port", T::Int(2)),
    (0x020B, "destination_port", T::Int(2)),
    (0x020C, "sar_msg_ref_num", T::Int(2)),
    (0x020D, "language_indicator", T::Int(1)),
    (0x020E, "sar_total_segments", T::Int(1)),
    (0x020F, "sar_segment_seqnum", T::Int(1)),
    (0x0210, "sc_interface_version", T::Int(1)),
    (0x0302, "callback_num_pres_ind", T::Int(1)),
    (0x0303, "callback_num_atag", T::Octets),
    (0x0304, "number_of_messages", T::Int(1)),
    (0x0381, "callback_num", T::Octets),
    (0x0420, "dpf_result", T::Int(1)),
    (0x0421, "set_dpf", T::Int(1)),
    (0x0422, "ms_availability_status", T::Int(1)),
    (0x0423, "network_error_code", T::Octets),
    (0x0424, "message_payload", T::Octets),
    (0x0425, "delivery_failure_reason", T::Int(1)),
    (0x0426, "more_messages_to_send", T::Int(1)),
    (0x0427, "message_state", T::Int(1)),
    (0x0428, "congestion_state", T::Int(1)),
    (0x0501, "ussd_service_op", T::Int(1)),
    (0x1201, "display_time", T::Int(1)),
    (0x1203, "sms_signal", T::Int(2)),
    (0x1204, "ms_validity", T::Int(1)),
    (0x130C, "alert_on_message_delivery", T::Octets),
    (0x1380, "its_reply_type", T::Int(1)),
    (0x1383, "its_session_info", T::Octets),
];

/// Name of a command id.
pub fn command_name(id: u32) -> Option<&'static str> {
    COMMANDS.iter().find(|c| c.0 == id).map(|c| c.1)
}

fn err<T>(offset: usize, what: impl Into<String>) -> Result<T, ViewError> {
    Err(ViewError {
        offset,
        what: what.into(),
    })
}

/// Text of a short message by data_coding (SMPP 3.4 §5.2.19), if it is text.
pub fn short_message_text(data_coding: u8, sm: &[u8]) -> Option<String> {
    match data_coding {
        0 => Some(gsm7::septets_to_string(sm)), // SMSC default alphabet: GSM 03.38, unpacked
        1 => Some(sm.iter().map(|&b| (b & 0x7F) as char).collect()), // IA5
        3 => Some(ucs2::decode_latin1(sm)),
        8 => Some(ucs2::decode_lossy(sm)),
        0xF0..=0xF3 => Some(gsm7::septets_to_string(sm)),
        _ => None,
    }
}

/// Decode one PDU into its JSON view.
pub fn view(b: &[u8]) -> Result<Value, ViewError> {
    if b.len() < 16 {
        return err(
            b.len(),
            format!("a PDU has a 16-octet header, got {} octets", b.len()),
        );
    }
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (len, id, status, seq) = (u32_at(0) as usize, u32_at(4), u32_at(8), u32_at(12));
    if len != b.len() {
        return err(
            0,
            format!("command_length says {len} octets, the PDU has {}", b.len()),
        );
    }
    let mut v = Map::new();
    v.insert("command_length".into(), json!(len));
    v.insert("command_id".into(), json!(id));
    v.insert("command_status".into(), json!(status));
    v.insert("sequence_number".into(), json!(seq));
    let Some(&(_, name, fields, tlvs)) = COMMANDS.iter().find(|c| c.0 == id) else {
        v.insert("command_name".into(), json!(null));
        v.insert("body_hex".into(), json!(hex::encode(&b[16..])));
        return Ok(Value::Object(v));
    };
    v.insert("command_name".into(), json!(name));
    let mut pos = 16;
    let mut sm: Option<Vec<u8>> = None;
    for f in fields {
        // An error response may carry no body at all (SMPP 3.4 §4.1, resp with status ≠ 0).
        if pos == b.len() && status != 0 {
            break;
        }
        match *f {
            C(field, max) => {
                let rest = &b[pos..];
                let Some(nul) = rest.iter().position(|&c| c == 0) else {
                    return err(pos, format!("{field}: C-octet string without its NUL"));
                };
                if nul + 1 > max {
                    return err(
                        pos,
                        format!("{field}: {} octets, more than the {max} allowed", nul + 1),
                    );
                }
                v.insert(field.into(), json!(String::from_utf8_lossy(&rest[..nul])));
                pos += nul + 1;
            }
            U8(field) => {
                let Some(&x) = b.get(pos) else {
                    return err(pos, format!("{field}: unexpected end of PDU"));
                };
                v.insert(field.into(), json!(x));
                pos += 1;
            }
            ShortMessage => {
                let Some(&n) = b.get(pos) else {
                    return err(pos, "sm_length: unexpected end of PDU");
                };
                let n = n as usize;
                if pos + 1 + n > b.len() {
                    return err(pos, format!("sm_length {n} runs past the end of the PDU"));
                }
                v.insert("sm_length".into(), json!(n));
                let bytes = b[pos + 1..pos + 1 + n].to_vec();
                v.insert("short_message_hex".into(), json!(hex::encode(&bytes)));
                sm = Some(bytes);
                pos += 1 + n;
            }
        }
    }
    let mut tlv = Map::new();
    let mut tlv_errors: Vec<String> = Vec::new();
    if tlvs {
        while pos < b.len() {
            if pos + 4 > b.len() {
                return err(pos, "TLV header cut short");
            }
            let tag = u16::from_be_bytes([b[pos], b[pos + 1]]);
            let l = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
            if pos + 4 + l > b.len() {
                return err(
                    pos,
                    format!("TLV 0x{tag:04x} length {l} runs past the end of the PDU"),
                );
            }
            let val = &b[pos + 4..pos + 4 + l];
            let (name, kind) = TLVS
                .iter()
                .find(|t| t.0 == tag)
                .map(|t| (t.1.to_string(), t.2))
                .unwrap_or((format!("0x{tag:04x}"), T::Octets));
            let value = match kind {
                T::Int(size) if l == size => {
                    json!(val.iter().fold(0u32, |a, &x| (a << 8) | x as u32))
                }
                T::Int(size) => {
                    // A length the specification does not allow: show the octets, say why.
                    tlv_errors.push(format!("{name}: length {l}, SMPP defines Integer({size})"));
                    json!(hex::encode(val))
                }
                T::Text => json!(String::from_utf8_lossy(
                    val.strip_suffix(&[0]).unwrap_or(val)
                )),
                _ => json!(hex::encode(val)),
            };
            tlv.insert(name, value);
            pos += 4 + l;
        }
    } else if pos < b.len() {
        return err(
            pos,
            format!(
                "{} octets after the last parameter of {name}",
                b.len() - pos
            ),
        );
    }
    // The message text: short_message, or message_payload when sm_length is 0.
    let payload = tlv
        .get("message_payload")
        .and_then(|p| p.as_str())
        .and_then(|h| hex::decode(h).ok());
    let body = match (&sm, &payload) {
        (Some(s), _) if !s.is_empty() => Some(s.clone()),
        (_, Some(p)) => Some(p.clone()),
        _ => sm.clone(),
    };
    if let (Some(body), Some(dc)) = (body, v.get("data_coding").and_then(|d| d.as_u64())) {
        let esm = v.get("esm_class").and_then(|e| e.as_u64()).unwrap_or(0) as u8;
        let (_, text_part) = sm_fields::split_udh(esm, &body);
        if let Some(t) = short_message_text(dc as u8, text_part) {
            if sm_fields::is_receipt(esm) {
                if let Some(r) = dlr::parse(&t) {
                    v.insert("receipt".into(), r.to_json());
                }
            }
            v.insert("short_message_text".into(), json!(t));
        }
    }
    if !tlv.is_empty() {
        v.insert("tlv".into(), Value::Object(tlv));
    }
    if !tlv_errors.is_empty() {
        v.insert("tlv_errors".into(), json!(tlv_errors));
    }
    Ok(Value::Object(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_errors() {
        let v = view(&hex::decode("00000010800000150000000000000065").unwrap()).unwrap();
        assert_eq!(v["command_name"], "enquire_link_resp");
        assert_eq!(v["sequence_number"], 101);
        assert_eq!(view(&[0; 4]).unwrap_err().offset, 4);
        assert_eq!(
            view(&hex::decode("00000011800000150000000000000065").unwrap())
                .unwrap_err()
                .offset,
            0
        );
    }
}
