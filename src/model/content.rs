//! What a message carries, per channel: an SMS body with its coding and segments, or an email
//! with a subject, text and HTML parts and attachments kept in the blob store.

use crate::codec::Coding;
use serde::{Deserialize, Serialize};

/// An SMS payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Text(String),
    Binary { data: Vec<u8>, data_coding: u8 },
}

/// The content of an SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sms {
    pub body: Body,
    /// User data header given by the client (Kannel `udh`), sent before the body.
    pub udh: Option<Vec<u8>>,
    pub coding: Coding,
    pub segments: u16,
}

/// A file kept in the blob store, named by the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Lowercase hex SHA-256 of the content.
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub filename: Option<String>,
}

/// The content of an email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub subject: String,
    /// Copies: seen by every recipient (`cc`), or not (`bcc`).
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<BlobRef>,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    Sms(Sms),
    Email(Email),
    /// A chat message (XMPP).
    Chat(Chat),
}

/// The content of a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub text: String,
}

impl Content {
    /// The SMS content, if this is an SMS.
    pub fn sms(&self) -> Option<&Sms> {
        match self {
            Content::Sms(s) => Some(s),
            Content::Email(_) | Content::Chat(_) => None,
        }
    }
    /// The plain text, if there is one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Content::Sms(Sms { body: Body::Text(t), .. }) => Some(t),
            Content::Sms(_) => None,
            Content::Email(e) => e.text.as_deref(),
            Content::Chat(c) => Some(&c.text),
        }
    }
    /// Parts that go to the peer (SMS segments; 1 otherwise): each gets a remote id.
    pub fn parts(&self) -> u16 {
        match self {
            Content::Sms(s) => s.segments,
            Content::Email(_) | Content::Chat(_) => 1,
        }
    }
}
