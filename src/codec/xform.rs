//! XForms instances (OpenRosa/ODK form submissions): from the XML of a submission — decoded
//! from WBXML or given as XML — extract the form id, version, instance id and the fields as
//! JSON (nested groups become objects, repeated elements arrays).

use super::wbxml::{self, Element, Node};
use serde_json::{json, Map, Value};
use thiserror::Error;

/// Why a payload is not a readable form.
#[derive(Debug, Error)]
pub enum XFormError {
    #[error("WBXML: {0}")]
    Wbxml(#[from] wbxml::WbxmlError),
    #[error("XML at byte {offset}: {message}")]
    Xml { offset: u64, message: String },
    #[error("no root element")]
    Empty,
}

/// A form submission.
#[derive(Debug, Clone, PartialEq)]
pub struct XForm {
    pub form_id: Option<String>,
    pub version: Option<String>,
    pub instance_id: Option<String>,
    pub root: String,
    pub fields: Value,
}

impl XForm {
    pub fn to_json(&self) -> Value {
        json!({"form_id": self.form_id, "version": self.version, "instance_id": self.instance_id, "root": self.root, "fields": self.fields})
    }
}

fn value_of(e: &Element) -> Value {
    if e.elements().next().is_none() {
        return Value::String(e.text());
    }
    let mut obj = Map::new();
    for c in e.elements() {
        let v = value_of(c);
        match obj.get_mut(&c.name) {
            // A repeated element becomes an array.
            Some(Value::Array(a)) if e.elements().filter(|x| x.name == c.name).count() > 1 => {
                a.push(v)
            }
            Some(_) => {}
            None => {
                if e.elements().filter(|x| x.name == c.name).count() > 1 {
                    obj.insert(c.name.clone(), Value::Array(vec![v]));
                } else {
                    obj.insert(c.name.clone(), v);
                }
            }
        }
    }
    Value::Object(obj)
}

/// Read a submission from its root element.
pub fn from_element(root: &Element) -> XForm {
    let fields = match value_of(root) {
        v @ Value::Object(_) => v,
        Value::String(s) if s.is_empty() => json!({}),
        other => json!({ "value": other }),
    };
    let instance_id = root
        .elements()
        .find(|e| e.name == "meta" || e.name.ends_with(":meta"))
        .and_then(|m| {
            m.elements()
                .find(|e| e.name == "instanceID" || e.name.ends_with(":instanceID"))
        })
        .map(|e| e.text());
    XForm {
        form_id: root.attr("id").map(str::to_string),
        version: root.attr("version").map(str::to_string),
        instance_id,
        root: root.name.clone(),
        fields,
    }
}

/// Parse XML text into an element tree (whitespace-only text between elements is dropped).
pub fn parse_xml(text: &str) -> Result<Element, XFormError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let err = |r: &quick_xml::Reader<&[u8]>, m: String| XFormError::Xml {
        offset: r.buffer_position(),
        message: m,
    };
    let open = |e: &quick_xml::events::BytesStart,
                r: &quick_xml::Reader<&[u8]>|
     -> Result<Element, XFormError> {
        let mut el = Element {
            name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            ..Default::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|x| err(r, x.to_string()))?;
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|x| err(r, x.to_string()))?;
            el.attrs.push((
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                v.into_owned(),
            ));
        }
        Ok(el)
    };
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| err(&reader, e.to_string()))?;
        match ev {
            Event::Start(e) => {
                let el = open(&e, &reader)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = open(&e, &reader)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| err(&reader, "unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(p) => p.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| err(&reader, e.to_string()))?;
                let s = quick_xml::escape::unescape(&s).map_err(|e| err(&reader, e.to_string()))?;
                if let Some(p) = stack.last_mut() {
                    if !s.trim().is_empty() {
                        p.children.push(Node::Text(s.into_owned()));
                    }
                }
            }
            Event::CData(t) => {
                if let Some(p) = stack.last_mut() {
                    p.children
                        .push(Node::CData(String::from_utf8_lossy(&t).into_owned()));
                }
            }
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(&r).into_owned();
                let ch = match name.as_str() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    n => n
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                };
                let ch = ch.ok_or_else(|| err(&reader, format!("unknown entity &{name};")))?;
                if let Some(p) = stack.last_mut() {
                    match p.children.last_mut() {
                        Some(Node::Text(t)) => t.push(ch),
                        _ => p.children.push(Node::Text(ch.to_string())),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XFormError::Xml {
            offset: reader.buffer_position(),
            message: format!("<{}> is not closed", stack[stack.len() - 1].name),
        });
    }
    let mut root = root.ok_or(XFormError::Empty)?;
    merge_text(&mut root);
    Ok(root)
}

/// Join adjacent text nodes (entity references split them while parsing).
fn merge_text(e: &mut Element) {
    let mut out: Vec<Node> = Vec::with_capacity(e.children.len());
    for n in std::mem::take(&mut e.children) {
        match (out.last_mut(), n) {
            (Some(Node::Text(a)), Node::Text(b)) => a.push_str(&b),
            (_, Node::Element(mut c)) => {
                merge_text(&mut c);
                out.push(Node::Element(c));
            }
            (_, n) => out.push(n),
        }
    }
    e.children = out;
}

/// Decode a submission given as WBXML or as XML text.
pub fn decode(bytes: &[u8]) -> Result<XForm, XFormError> {
    let looks_xml = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    if looks_xml {
        let text = String::from_utf8_lossy(bytes);
        Ok(from_element(&parse_xml(&text)?))
    } else {
        Ok(from_element(&wbxml::decode(bytes)?.root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn household_form() {
        let x = r#"<data id="household" version="3"><name>Amina</name><age>34</age><members><member><name>Juma</name></member><member><name>Neema &amp; Co</name></member></members><meta><instanceID>uuid:1</instanceID></meta></data>"#;
        let f = decode(x.as_bytes()).unwrap();
        assert_eq!(f.form_id.as_deref(), Some("household"));
        assert_eq!(f.version.as_deref(), Some("3"));
        assert_eq!(f.instance_id.as_deref(), Some("uuid:1"));
        assert_eq!(f.fields["name"], "Amina");
        assert_eq!(f.fields["members"]["member"][1]["name"], "Neema & Co");
        assert!(f.fields["members"]["member"].is_array());
        assert!(decode(b"<data><x></data>").is_err());
        assert!(decode(b"").is_err());
    }
}
