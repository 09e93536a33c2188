//! WAP Binary XML 1.1–1.3 decoder (WAP-192-WBXML), written by hand: header (version, public id
//! incl. string-table reference, charset), string table, tags with attribute/content flags,
//! literal tags and attributes, inline strings, string-table references, opaque data, entities,
//! extension tokens, processing instructions and code-page switches. Known languages get names
//! from `wbxml_tables`; unknown tokens keep a `tag-PP-TT` name. Every length, offset and index
//! is checked: bad input is a typed [`WbxmlError`] naming the octet offset, never a panic.

mod parser;
mod xml;

use super::wbxml_tables::{self as tables, Language};
use thiserror::Error;

/// Decoding limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 64 }
    }
}

/// What was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WbxmlErrorKind {
    #[error("unexpected end of data while reading {0}")]
    UnexpectedEnd(&'static str),
    #[error("multi-byte integer longer than 32 bits")]
    IntOverflow,
    #[error("unsupported WBXML version 0x{0:02x}")]
    Version(u8),
    #[error("string table reference {index} is outside the {len}-octet string table")]
    StringTableIndex { index: u32, len: usize },
    #[error("string table length {0} runs past the end of the data")]
    StringTableLength(u32),
    #[error("inline string without its terminator")]
    Unterminated,
    #[error("opaque length {0} runs past the end of the data")]
    OpaqueLength(u32),
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    #[error("attribute value before any attribute start")]
    ValueWithoutAttribute,
    #[error("token 0x{0:02x} cannot stand here")]
    UnexpectedToken(u8),
    #[error("no root element")]
    NoRoot,
    #[error("data after the root element")]
    Trailing,
}

/// A decoding error at an octet offset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at octet {offset}: {kind}")]
pub struct WbxmlError {
    pub offset: usize,
    pub kind: WbxmlErrorKind,
}

/// The public identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicId {
    Known(u32),
    /// Given as a string in the string table.
    String(String),
}

/// The document header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub public_id: PublicId,
    pub charset: u32,
    pub string_table: Vec<u8>,
}

impl Header {
    /// The strings of the string table (NUL-separated).
    pub fn strings(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .string_table
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if self.string_table.is_empty() || self.string_table.last() == Some(&0) {
            v.pop();
        }
        v
    }
}

/// An XML node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
    /// Character data from OPAQUE content that the language writes as CDATA.
    CData(String),
}

/// An element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// XML namespace of its code page, for languages that use them.
    pub namespace: Option<&'static str>,
}

impl Element {
    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) | Node::CData(_) => None,
        })
    }
    /// Concatenated text content of this element (not descendants).
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) | Node::CData(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A decoded document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub header: Header,
    pub language: Option<&'static Language>,
    pub root: Element,
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    strtbl: &'a [u8],
    charset: u32,
    lang: Option<&'static Language>,
    tag_page: u8,
    attr_page: u8,
    limits: Limits,
}

fn e(offset: usize, kind: WbxmlErrorKind) -> WbxmlError {
    WbxmlError { offset, kind }
}

/// OPAQUE dates (SI `created`, EMN `timestamp`): octets of BCD digits YYYYMMDDhhmmss, trailing
/// zero octets may be left out.
fn opaque_date(d: &[u8]) -> String {
    let mut digits: String = d.iter().map(|b| format!("{b:02x}")).collect();
    while digits.len() < 14 {
        digits.push('0');
    }
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &digits[0..4],
        &digits[4..6],
        &digits[6..8],
        &digits[8..10],
        &digits[10..12],
        &digits[12..14]
    )
}

fn table_string(tbl: &[u8], index: u32) -> Option<&[u8]> {
    let i = index as usize;
    let rest = tbl.get(i..)?;
    if rest.is_empty() {
        return None;
    }
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Decode a WBXML document.
pub fn decode(b: &[u8]) -> Result<Document, WbxmlError> {
    decode_with(b, Limits::default())
}

/// Decode with explicit limits.
pub fn decode_with(b: &[u8], limits: Limits) -> Result<Document, WbxmlError> {
    let mut p = Parser {
        b,
        pos: 0,
        strtbl: &[],
        charset: 106,
        lang: None,
        tag_page: 0,
        attr_page: 0,
        limits,
    };
    let version = p.u8("version")?;
    if version > 0x03 {
        return Err(e(0, WbxmlErrorKind::Version(version)));
    }
    let pid_at = p.pos;
    let pid = p.mb("public id")?;
    let pid_index = if pid == 0 {
        Some(p.mb("public id index")?)
    } else {
        None
    };
    // WBXML 1.0 has no charset field.
    let charset = if version >= 1 { p.mb("charset")? } else { 106 };
    let len_at = p.pos;
    let len = p.mb("string table length")?;
    let end = p
        .pos
        .checked_add(len as usize)
        .filter(|&end| end <= b.len())
        .ok_or(e(len_at, WbxmlErrorKind::StringTableLength(len)))?;
    let strtbl = &b[p.pos..end];
    p.pos = end;
    p.strtbl = strtbl;
    p.charset = charset;
    let public_id = match pid_index {
        Some(i) => PublicId::String(
            table_string(strtbl, i)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .ok_or(e(
                    pid_at,
                    WbxmlErrorKind::StringTableIndex {
                        index: i,
                        len: strtbl.len(),
                    },
                ))?,
        ),
        None => PublicId::Known(pid),
    };
    p.lang = match &public_id {
        PublicId::Known(id) => tables::by_public_id(*id),
        PublicId::String(s) => tables::by_fpi(s),
    };
    // body: *pi element *pi
    while p.peek() == Some(0x43) {
        p.pos += 1;
        p.skip_pi()?;
    }
    if p.peek().is_none() {
        return Err(e(p.pos, WbxmlErrorKind::NoRoot));
    }
    let root = p.element(0)?;
    loop {
        match p.peek() {
            None => break,
            Some(0x43) => {
                p.pos += 1;
                p.skip_pi()?;
            }
            // A stray END after the root is tolerated (libwbxml ignores it too).
            Some(0x01) => p.pos += 1,
            Some(_) => return Err(e(p.pos, WbxmlErrorKind::Trailing)),
        }
    }
    Ok(Document {
        header: Header {
            version,
            public_id,
            charset,
            string_table: strtbl.to_vec(),
        },
        language: p.lang,
        root,
    })
}

/// Does this look like a WBXML document (a plausible header that decodes)?
pub fn looks_like_wbxml(b: &[u8]) -> bool {
    b.len() >= 4 && b[0] <= 0x03 && decode(b).is_ok()
}

/// Find a WBXML body in an 8-bit SMS payload: a bare WBXML document, or a WAP Push (WSP
/// connectionless push, ports 2948/9200, WAP-230 §8.2.4) carrying one.
pub fn find_in_sms(data: &[u8], dest_port: Option<u16>) -> Option<&[u8]> {
    if matches!(dest_port, Some(2948) | Some(9200)) || (data.len() > 3 && data[1] == 0x06) {
        // WSP: TID, PDU type 0x06 (Push), uintvar header length, headers, body.
        if let Some(&0x06) = data.get(1) {
            let mut pos = 2;
            let mut len: u64 = 0;
            for _ in 0..5 {
                let b = *data.get(pos)?;
                pos += 1;
                len = (len << 7) | (b & 0x7F) as u64;
                if b & 0x80 == 0 {
                    break;
                }
            }
            let body = data.get(pos + len as usize..)?;
            if looks_like_wbxml(body) {
                return Some(body);
            }
        }
    }
    looks_like_wbxml(data).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_document() {
        let b = hex::decode("01056a0045c60d036578616d706c650085036e657773001103313233000ac3072024050607080901034e6577206d61696c2061727269766564000101").unwrap();
        let d = decode(&b).unwrap();
        assert_eq!(d.root.name, "si");
        assert!(d.to_xml().ends_with("<si><indication href=\"http://www.example.com/news\" si-id=\"123\" created=\"2024-05-06T07:08:09Z\">New mail arrived</indication></si>"));
    }

    #[test]
    fn wap_push_is_found() {
        let doc = hex::decode("01056a0045c60d036578616d706c650085036e657773001103313233000ac3072024050607080901034e6577206d61696c2061727269766564000101").unwrap();
        // WSP: TID 0x01, PDU type 0x06 (Push), headers length 3, content type SI + charset.
        let mut push = vec![0x01, 0x06, 0x03, 0xAE, 0x81, 0xEA];
        push.extend(&doc);
        assert_eq!(find_in_sms(&push, Some(2948)), Some(&doc[..]));
        assert_eq!(find_in_sms(&doc, None), Some(&doc[..]));
        assert_eq!(find_in_sms(b"just some bytes", Some(2948)), None);
    }

    #[test]
    fn limits_and_errors() {
        assert!(matches!(
            decode(&[]).unwrap_err().kind,
            WbxmlErrorKind::UnexpectedEnd(_)
        ));
        assert!(matches!(
            decode(&[0x03, 0x90, 0x80, 0x80, 0x80, 0x00])
                .unwrap_err()
                .kind,
            WbxmlErrorKind::IntOverflow
        ));
        // 100 nested literal-free unknown tags with content
        let mut deep = vec![0x03, 0x01, 0x6a, 0x00];
        deep.extend(std::iter::repeat_n(0x45u8, 100));
        deep.extend(std::iter::repeat_n(0x01u8, 100));
        assert!(matches!(
            decode(&deep).unwrap_err().kind,
            WbxmlErrorKind::TooDeep(64)
        ));
    }
}
