//! The WBXML parser proper: header, string table, tokens, code pages.

use super::*;

impl<'a> Parser<'a> {
    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, WbxmlError> {
        let v = *self
            .b
            .get(self.pos)
            .ok_or(e(self.pos, WbxmlErrorKind::UnexpectedEnd(what)))?;
        self.pos += 1;
        Ok(v)
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// mb_u_int32: at most 5 octets, at most 32 bits.
    pub(super) fn mb(&mut self, what: &'static str) -> Result<u32, WbxmlError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..5 {
            let b = self.u8(what)?;
            v = (v << 7) | (b & 0x7F) as u64;
            if v > u32::MAX as u64 {
                return Err(e(start, WbxmlErrorKind::IntOverflow));
            }
            if b & 0x80 == 0 {
                return Ok(v as u32);
            }
            if i == 4 {
                return Err(e(start, WbxmlErrorKind::IntOverflow));
            }
        }
        Err(e(start, WbxmlErrorKind::IntOverflow))
    }

    pub(super) fn decode_str(&self, bytes: &[u8]) -> String {
        match self.charset {
            4 => bytes.iter().map(|&b| b as char).collect(), // ISO-8859-1
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    pub(super) fn inline(&mut self) -> Result<String, WbxmlError> {
        let start = self.pos;
        let rest = &self.b[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(e(start, WbxmlErrorKind::Unterminated))?;
        self.pos += end + 1;
        Ok(self.decode_str(&rest[..end]))
    }

    pub(super) fn table_str(&mut self) -> Result<String, WbxmlError> {
        let at = self.pos;
        let index = self.mb("string table index")?;
        table_string(self.strtbl, index)
            .map(|b| self.decode_str(b))
            .ok_or(e(
                at,
                WbxmlErrorKind::StringTableIndex {
                    index,
                    len: self.strtbl.len(),
                },
            ))
    }

    pub(super) fn opaque(&mut self) -> Result<&'a [u8], WbxmlError> {
        let at = self.pos;
        let len = self.mb("opaque length")?;
        let end = self
            .pos
            .checked_add(len as usize)
            .filter(|&end| end <= self.b.len())
            .ok_or(e(at, WbxmlErrorKind::OpaqueLength(len)))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(super) fn entity(&mut self) -> Result<char, WbxmlError> {
        let v = self.mb("entity")?;
        Ok(char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    pub(super) fn tag_name(&self, page: u8, tok: u8) -> (String, Option<&'static str>) {
        let ns = self.lang.and_then(|l| {
            l.namespaces
                .iter()
                .find(|(p, _)| *p == page)
                .map(|(_, n)| *n)
        });
        match self
            .lang
            .and_then(|l| l.tags.iter().find(|(p, t, _)| *p == page && *t == tok))
        {
            Some((_, _, n)) => (n.to_string(), ns),
            None => (format!("tag-{page:02x}-{tok:02x}"), ns),
        }
    }

    pub(super) fn skip_pi(&mut self) -> Result<(), WbxmlError> {
        // PI: attrStart *attrValue END
        loop {
            let at = self.pos;
            match self.u8("processing instruction")? {
                0x01 => return Ok(()),
                0x03 => {
                    self.inline()?;
                }
                0x83 => {
                    self.table_str()?;
                }
                0x04 => {
                    self.table_str()?;
                }
                0xC3 => {
                    self.opaque()?;
                }
                0x02 => {
                    self.entity()?;
                }
                0x00 => {
                    self.u8("code page")?;
                }
                t if t == 0x43 => return Err(e(at, WbxmlErrorKind::UnexpectedToken(t))),
                _ => {}
            }
        }
    }

    pub(super) fn element(&mut self, depth: usize) -> Result<Element, WbxmlError> {
        if depth > self.limits.max_depth {
            return Err(e(self.pos, WbxmlErrorKind::TooDeep(self.limits.max_depth)));
        }
        let mut at = self.pos;
        let mut tok = self.u8("tag")?;
        while tok == 0x00 {
            self.tag_page = self.u8("code page")?;
            at = self.pos;
            tok = self.u8("tag")?;
        }
        let (name, namespace) = match tok {
            0x04 | 0x44 | 0x84 | 0xC4 => (self.table_str()?, None),
            t if (t & 0x3F) >= 0x05 => self.tag_name(self.tag_page, t & 0x3F),
            t => return Err(e(at, WbxmlErrorKind::UnexpectedToken(t))),
        };
        let mut el = Element {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
            namespace,
        };
        if tok & 0x80 != 0 {
            self.attributes(&mut el)?;
        }
        if tok & 0x40 != 0 {
            self.content(&mut el, depth)?;
        }
        Ok(el)
    }

    pub(super) fn attributes(&mut self, el: &mut Element) -> Result<(), WbxmlError> {
        let mut current: Option<(String, String)> = None;
        let mut is_date = false;
        loop {
            let at = self.pos;
            let tok = self.u8("attribute")?;
            let value: Option<String> = match tok {
                0x00 => {
                    self.attr_page = self.u8("code page")?;
                    None
                }
                0x01 => {
                    if let Some(a) = current.take() {
                        el.attrs.push(a);
                    }
                    return Ok(());
                }
                0x04 => {
                    if let Some(a) = current.take() {
                        el.attrs.push(a);
                    }
                    let name = self.table_str()?;
                    is_date = false;
                    current = Some((name, String::new()));
                    None
                }
                0x02 => Some(self.entity()?.to_string()),
                0x03 => Some(self.inline()?),
                0x83 => Some(self.table_str()?),
                0x40..=0x42 => Some(format!("$({})", self.inline()?)),
                0x80..=0x82 => Some(format!("$({})", self.table_str()?)),
                0xC0..=0xC2 => Some(String::new()),
                0xC3 => {
                    let data = self.opaque()?;
                    Some(if is_date {
                        opaque_date(data)
                    } else {
                        self.decode_str(data)
                    })
                }
                0x43 | 0x44 | 0x84 | 0xC4 => {
                    return Err(e(at, WbxmlErrorKind::UnexpectedToken(tok)))
                }
                t if t < 0x80 => {
                    if let Some(a) = current.take() {
                        el.attrs.push(a);
                    }
                    let page = self.attr_page;
                    let (name, prefix) = match self
                        .lang
                        .and_then(|l| l.attrs.iter().find(|(p, x, ..)| *p == page && *x == t))
                    {
                        Some((_, _, n, v)) => (n.to_string(), v.to_string()),
                        None => (format!("attr-{page:02x}-{t:02x}"), String::new()),
                    };
                    is_date = self
                        .lang
                        .is_some_and(|l| l.date_attrs.contains(&name.as_str()));
                    current = Some((name, prefix));
                    None
                }
                t => {
                    let page = self.attr_page;
                    Some(
                        match self
                            .lang
                            .and_then(|l| l.values.iter().find(|(p, x, _)| *p == page && *x == t))
                        {
                            Some((_, _, v)) => v.to_string(),
                            None => format!("value-{page:02x}-{t:02x}"),
                        },
                    )
                }
            };
            if let Some(v) = value {
                match current.as_mut() {
                    Some((_, val)) => val.push_str(&v),
                    None => return Err(e(at, WbxmlErrorKind::ValueWithoutAttribute)),
                }
            }
        }
    }

    pub(super) fn content(&mut self, el: &mut Element, depth: usize) -> Result<(), WbxmlError> {
        let mut text = String::new();
        let flush = |text: &mut String, el: &mut Element| {
            if !text.is_empty() {
                el.children.push(Node::Text(std::mem::take(text)));
            }
        };
        loop {
            let at = self.pos;
            let tok = *self
                .b
                .get(self.pos)
                .ok_or(e(self.pos, WbxmlErrorKind::UnexpectedEnd("content")))?;
            match tok {
                0x00 => {
                    self.pos += 1;
                    self.tag_page = self.u8("code page")?;
                }
                0x01 => {
                    self.pos += 1;
                    flush(&mut text, el);
                    return Ok(());
                }
                0x02 => {
                    self.pos += 1;
                    text.push(self.entity()?);
                }
                0x03 => {
                    self.pos += 1;
                    text.push_str(&self.inline()?);
                }
                0x83 => {
                    self.pos += 1;
                    text.push_str(&self.table_str()?);
                }
                0x40..=0x42 => {
                    self.pos += 1;
                    let s = self.inline()?;
                    text.push_str(&format!("$({s})"));
                }
                0x80..=0x82 => {
                    self.pos += 1;
                    let s = self.table_str()?;
                    text.push_str(&format!("$({s})"));
                }
                0xC0..=0xC2 => {
                    self.pos += 1;
                }
                0x43 => {
                    self.pos += 1;
                    self.skip_pi()?;
                }
                0xC3 => {
                    self.pos += 1;
                    let d = self.opaque()?;
                    if self.lang.is_some_and(|l| l.cdata_opaque) {
                        flush(&mut text, el);
                        el.children.push(Node::CData(self.decode_str(d)));
                    } else {
                        text.push_str(&self.decode_str(d));
                    }
                }
                _ => {
                    flush(&mut text, el);
                    let child = self.element(depth + 1)?;
                    let _ = at;
                    el.children.push(Node::Element(child));
                }
            }
        }
    }
}
