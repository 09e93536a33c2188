//! The envelope: what the sender asked for (channel, addresses, content, schedule, validity,
//! and who asked, which is also where reports about it go). It never changes once accepted;
//! everything that happens to the message is its [`super::Delivery`].

use super::{Address, Channel, Content, Millis};
use serde::{Deserialize, Serialize};

/// Kannel-style delivery report request (`dlr-url` with `%` escapes, `dlr-mask`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KannelDlr {
    pub url: String,
    pub mask: u8,
}

/// Who handed the message to Postern, and so who is told about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// The HTTP API (REST or Kannel `sendsms`), with the reports it asked for.
    Api {
        callback_url: Option<String>,
        kannel_dlr: Option<KannelDlr>,
    },
    /// A peer bound to one of our connectors (an ESME on the SMPP server): receipts go back
    /// to that account.
    Peer { connector: String, account: String },
    /// Came in from a network link (an inbound message).
    Network,
    /// Sent on by an inbound route, or a reply threaded to a message: `parent` is the message
    /// it came from.
    Forward { parent: super::MessageId },
}

/// What the sender asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub channel: Channel,
    pub from: Option<Address>,
    pub to: Address,
    pub content: Content,
    pub client_ref: Option<String>,
    /// A JSON object given by the sender (or decoded from an inbound payload). Stored as text:
    /// the stored form (postcard) is not self-describing.
    #[serde(with = "json_text")]
    pub metadata: Option<serde_json::Value>,
    pub tags: Vec<String>,
    pub priority: u8,
    pub send_at: Option<Millis>,
    pub expires_at: Millis,
    pub origin: Origin,
}

impl Envelope {
    /// An envelope with only what every message has; the rest empty (no sender, metadata or
    /// tags, priority 0, no schedule, asked for through the API with no reports).
    pub fn new(channel: Channel, to: Address, content: Content, expires_at: Millis) -> Envelope {
        Envelope {
            channel,
            from: None,
            to,
            content,
            client_ref: None,
            metadata: None,
            tags: Vec::new(),
            priority: 0,
            send_at: None,
            expires_at,
            origin: Origin::Api {
                callback_url: None,
                kannel_dlr: None,
            },
        }
    }
    /// The JSON status callback the API caller asked for.
    pub fn callback_url(&self) -> Option<&str> {
        match &self.origin {
            Origin::Api { callback_url, .. } => callback_url.as_deref(),
            _ => None,
        }
    }
    /// The Kannel `dlr-url` the caller asked for.
    pub fn kannel_dlr(&self) -> Option<&KannelDlr> {
        match &self.origin {
            Origin::Api { kannel_dlr, .. } => kannel_dlr.as_ref(),
            _ => None,
        }
    }
    /// The connector and account of a peer that submitted it.
    pub fn peer(&self) -> Option<(&str, &str)> {
        match &self.origin {
            Origin::Peer { connector, account } => Some((connector, account)),
            _ => None,
        }
    }
}

mod json_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<serde_json::Value>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => serde_json::from_str(&t).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
