//! Stored values of earlier versions, read and turned into today's [`Message`].
//!
//! Version 1 (until 2026-12): one flat SMS-only record; the origin was a `via:<connector>:
//! <account>` tag, metadata JSON text, and callback/`dlr-url` requests fields of their own.

use super::*;
use crate::codec::Coding;
use serde::Deserialize;

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct V1 {
    id: MessageId,
    direction: Direction,
    channel: Channel,
    from: Option<String>,
    to: String,
    body: Body,
    udh: Option<Vec<u8>>,
    coding: Coding,
    segments: u16,
    client_ref: Option<String>,
    metadata: Option<String>,
    tags: Vec<String>,
    priority: u8,
    send_at: Option<Millis>,
    expires_at: Millis,
    callback_url: Option<String>,
    kannel_dlr: Option<KannelDlr>,
    state: State,
    history: Vec<Transition>,
    attempts: u32,
    error: Option<ErrorInfo>,
    connector: Option<String>,
    remote_ids: Vec<String>,
    part_states: Vec<State>,
    due_at: Millis,
    created_at: Millis,
}

/// A version 1 value (after its version octet).
pub(super) fn decode_v1(b: &[u8]) -> Result<Message, DecodeError> {
    let v: V1 = postcard::from_bytes(b)?;
    let mut tags = v.tags;
    let via = tags
        .iter()
        .position(|t| t.starts_with("via:"))
        .map(|i| tags.remove(i));
    let origin = match via.as_deref().and_then(|t| t["via:".len()..].split_once(':')) {
        Some((connector, account)) => Origin::Peer {
            connector: connector.to_string(),
            account: account.to_string(),
        },
        None if v.direction == Direction::Inbound => Origin::Network,
        None => Origin::Api {
            callback_url: v.callback_url,
            kannel_dlr: v.kannel_dlr,
        },
    };
    Ok(Message {
        id: v.id,
        direction: v.direction,
        created_at: v.created_at,
        envelope: Envelope {
            channel: v.channel,
            from: v.from.map(Address::sms),
            to: Address::sms(v.to),
            content: Content::Sms(Sms {
                body: v.body,
                udh: v.udh,
                coding: v.coding,
                segments: v.segments,
            }),
            client_ref: v.client_ref,
            metadata: v.metadata.and_then(|m| serde_json::from_str(&m).ok()),
            tags,
            priority: v.priority,
            send_at: v.send_at,
            expires_at: v.expires_at,
            origin,
        },
        delivery: Delivery {
            state: v.state,
            history: v.history,
            attempts: v.attempts,
            error: v.error,
            connector: v.connector,
            remote_ids: v.remote_ids,
            part_states: v.part_states,
            due_at: v.due_at,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(direction: Direction, tags: Vec<String>, callback: Option<&str>) -> V1 {
        V1 {
            id: MessageId(7),
            direction,
            channel: Channel::Sms,
            from: Some("Postern".into()),
            to: "+447700900123".into(),
            body: Body::Text("hi".into()),
            udh: None,
            coding: Coding::Gsm7,
            segments: 1,
            client_ref: Some("r".into()),
            metadata: Some(r#"{"smpp":{"registered_delivery":1}}"#.into()),
            tags,
            priority: 2,
            send_at: None,
            expires_at: 99,
            callback_url: callback.map(str::to_string),
            kannel_dlr: None,
            state: State::Submitted,
            history: vec![Transition { state: State::Submitted, at: 5 }],
            attempts: 1,
            error: None,
            connector: Some("op".into()),
            remote_ids: vec!["abc".into()],
            part_states: vec![],
            due_at: 5,
            created_at: 4,
        }
    }

    fn stored(v: &V1) -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend(postcard::to_stdvec(v).unwrap());
        b
    }

    #[test]
    fn a_via_tag_becomes_a_peer_origin() {
        let tags = vec!["x".to_string(), "via:esmes:acct1".to_string()];
        let m = Message::decode(&stored(&v1(Direction::Outbound, tags, None))).unwrap();
        assert_eq!(m.envelope.peer(), Some(("esmes", "acct1")));
        assert_eq!(m.envelope.tags, ["x"]);
        assert_eq!(m.envelope.metadata.as_ref().unwrap()["smpp"]["registered_delivery"], 1);
        assert_eq!(m.envelope.from, Some(Address::Alphanumeric("Postern".into())));
        assert_eq!(m.envelope.to, Address::Msisdn("+447700900123".into()));
        assert_eq!(m.delivery.remote_ids, ["abc"]);
        assert_eq!(m.state(), State::Submitted);
        // Written again, it is today's version and reads back the same.
        assert_eq!(m.encode()[0], 2);
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn api_and_inbound_origins() {
        let m = Message::decode(&stored(&v1(Direction::Outbound, vec![], Some("http://h/cb")))).unwrap();
        assert_eq!(m.envelope.callback_url(), Some("http://h/cb"));
        let m = Message::decode(&stored(&v1(Direction::Inbound, vec![], None))).unwrap();
        assert_eq!(m.envelope.origin, Origin::Network);
        assert!(Message::decode(&[1, 0xff]).is_err());
        assert!(matches!(Message::decode(&[9]), Err(DecodeError::Version(9))));
    }
}
