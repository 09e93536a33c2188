//! A decoded document written out as XML text.

use super::*;

pub(super) fn escape(s: &str, attr: bool, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

pub(super) fn write_element(el: &Element, parent_ns: Option<&str>, out: &mut String) {
    out.push('<');
    out.push_str(&el.name);
    if let Some(ns) = el.namespace {
        if Some(ns) != parent_ns {
            out.push_str(" xmlns=\"");
            out.push_str(ns);
            out.push('"');
        }
    }
    for (k, v) in &el.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape(v, true, out);
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in &el.children {
        match c {
            Node::Text(t) => escape(t, false, out),
            Node::CData(t) => {
                out.push_str("<![CDATA[");
                out.push_str(&t.replace("]]>", "]]]]><![CDATA[>"));
                out.push_str("]]>");
            }
            Node::Element(child) => write_element(child, el.namespace.or(parent_ns), out),
        }
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

impl Document {
    /// Compact XML, as `wbxml2xml -m 0` writes it.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\"?>");
        if let Some(l) = self.language {
            out.push_str(&format!(
                "<!DOCTYPE {} PUBLIC \"{}\" \"{}\">",
                l.root, l.fpi, l.dtd
            ));
        } else if let PublicId::String(fpi) = &self.header.public_id {
            out.push_str(&format!(
                "<!DOCTYPE {} PUBLIC \"{}\" \"\">",
                self.root.name, fpi
            ));
        }
        write_element(&self.root, None, &mut out);
        out
    }
}
