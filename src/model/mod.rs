//! The message model every channel shares: ids, states with their history, bodies, the
//! channel a message travels on, and the compact binary form the outbox stores; plus the
//! validation that turns API or connector input into a [`request::Envelope`].

pub mod address;
pub mod content;
pub mod delivery;
pub mod email;
pub mod envelope;
mod legacy;
pub mod message;
pub mod phone;
pub mod request;
pub mod template;

pub use address::Address;
pub use content::{BlobRef, Body, Chat, Content, Email, Sms};
pub use delivery::{Delivery, ErrorInfo, Transition};
pub use envelope::{Envelope, KannelDlr, Origin};
pub use message::*;

use serde::{Deserialize, Serialize};

/// Message channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
    /// XMPP chat messages to and from bare JIDs.
    Xmpp,
    /// Posts and direct messages on a social network (Mastodon, X).
    Social,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Xmpp => "xmpp",
            Channel::Social => "social",
        }
    }
    /// The channel a name (`sms`, `email`, `xmpp`) says.
    pub fn parse(name: &str) -> Option<Channel> {
        match name {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            "xmpp" => Some(Channel::Xmpp),
            "social" => Some(Channel::Social),
            _ => None,
        }
    }
}

/// A string or a list of strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

