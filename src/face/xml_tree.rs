//! The element-tree reader both XML faces parse with (the XCP envelope,
//! task-face delete bodies): UTF-8 only, an explicit stack at most
//! [`MAX_DEPTH`] deep, no DTD ever read, and only character references and
//! the five predefined entities resolved, so that entity expansion attacks
//! have nothing to work with. Each face turns an [`XmlError`] into its own
//! refusal.

#![forbid(unsafe_code)]

use std::fmt;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::error::quoted;

/// The deepest element nesting a parsed body may have.
pub const MAX_DEPTH: usize = 32;

/// Why a body was refused, by this reader or by the face that reads it (an
/// XCP envelope, a task-face delete body): a sentence naming the problem,
/// e.g. `missing item "action"` or `<task_id> "x" is not an xs:int`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub message: String,
}

impl XmlError {
    pub fn new(message: impl Into<String>) -> XmlError {
        XmlError {
            message: message.into(),
        }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for XmlError {}

/// What a document type declaration may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doctype {
    /// None at all.
    Refused,
    /// One naming an external DTD only (never read), before the root: what
    /// OpenSRS clients send.
    ExternalOnly,
}

/// A parsed element; the tree is at most `MAX_DEPTH` deep.
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

pub enum Node {
    Element(Element),
    Text(String),
}

fn malformed(reader: &Reader<&[u8]>, err: impl fmt::Display) -> XmlError {
    XmlError::new(format!(
        "malformed XML at byte {}: {err}",
        reader.error_position()
    ))
}

/// Reads the whole document into a tree with an explicit stack, refusing
/// everything that could expand or nest without bound.
pub fn read_tree(body: &[u8], doctype: Doctype) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| XmlError::new(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut seen_markup = false;
    let mut seen_doctype = false;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&reader, e))?;
        // Blank text before the declaration is tolerated ("whitespace anywhere").
        let markup = !matches!(&event, Event::Text(t) if is_blank(t));
        match event {
            Event::Decl(decl) => {
                if seen_markup {
                    return Err(XmlError::new("the XML declaration must come first"));
                }
                if let Some(Ok(encoding)) = decl.encoding() {
                    check_encoding(&encoding, text)?;
                }
            }
            Event::DocType(declared) => {
                if doctype == Doctype::Refused {
                    return Err(XmlError::new(
                        "DOCTYPE is not allowed (no DTDs, no ENTITY declarations)",
                    ));
                }
                if seen_doctype || root.is_some() || !stack.is_empty() {
                    return Err(XmlError::new(
                        "DOCTYPE is only allowed once, before the root element",
                    ));
                }
                check_doctype(&declared)?;
                seen_doctype = true;
            }
            Event::Start(tag) => open(&mut stack, &root, &tag, &reader)?,
            Event::Empty(tag) => {
                // Not produced with expand_empty_elements; handled anyway.
                open(&mut stack, &root, &tag, &reader)?;
                close(&mut stack, &mut root)?;
            }
            Event::End(_) => close(&mut stack, &mut root)?,
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved = resolve_reference(&r)?;
                push_text(&mut stack, &resolved)?;
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
        seen_markup |= markup;
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::new(format!(
            "unexpected end of document inside <{}>",
            open.name
        )));
    }
    root.ok_or_else(|| XmlError::new("no root element"))
}

fn open(
    stack: &mut Vec<Element>,
    root: &Option<Element>,
    tag: &BytesStart<'_>,
    reader: &Reader<&[u8]>,
) -> Result<(), XmlError> {
    if root.is_some() && stack.is_empty() {
        return Err(XmlError::new("content after the root element"));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(XmlError::new(format!(
            "nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    let name = tag.name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for attr in tag.attributes() {
        let attr = attr.map_err(|e| malformed(reader, e))?;
        let key = attr.key.as_ref().to_owned();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| attribute_error(&key, &name, e))?;
        check_chars(&value)?;
        attrs.push((key, value.into_owned()));
    }
    stack.push(Element {
        name,
        attrs,
        children: Vec::new(),
    });
    Ok(())
}

fn attribute_error(key: &str, element: &str, err: quick_xml::Error) -> XmlError {
    match err {
        quick_xml::Error::Escape(e) => XmlError::new(format!(
            "attribute {key} of <{element}>: {e} (only &lt; &gt; &amp; &apos; &quot; and character references are allowed)"
        )),
        other => XmlError::new(format!("attribute {key} of <{element}>: {other}")),
    }
}

fn close(stack: &mut Vec<Element>, root: &mut Option<Element>) -> Result<(), XmlError> {
    let element = stack
        .pop()
        .ok_or_else(|| XmlError::new("closing tag without an opening tag"))?;
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    check_chars(text)?;
    let Some(parent) = stack.last_mut() else {
        if is_blank(text) {
            return Ok(());
        }
        return Err(XmlError::new("text outside the root element"));
    };
    if let Some(Node::Text(previous)) = parent.children.last_mut() {
        previous.push_str(text);
    } else {
        parent.children.push(Node::Text(text.to_owned()));
    }
    Ok(())
}

/// Resolves a reference without ever consulting a DTD: character
/// references and the five predefined entities only.
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<String, XmlError> {
    let name: &str = r;
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => Ok(c.to_string()),
            _ => Err(XmlError::new(format!(
                "invalid character reference &{name};"
            ))),
        };
    }
    resolve_predefined_entity(name)
        .map(str::to_owned)
        .ok_or_else(|| XmlError::new(format!("undefined entity reference &{name};")))
}

fn check_doctype(doctype: &str) -> Result<(), XmlError> {
    let upper = doctype.to_ascii_uppercase();
    if doctype.contains('[') || doctype.contains('<') || upper.contains("ENTITY") {
        return Err(XmlError::new(
            "DOCTYPE with internal subset/ENTITY declarations are not allowed",
        ));
    }
    Ok(())
}

/// Only UTF-8 is read. A declaration naming another encoding is tolerated
/// when the body is plain ASCII, which reads the same in every such encoding.
fn check_encoding(encoding: &str, text: &str) -> Result<(), XmlError> {
    let utf8 = ["UTF-8", "UTF8", "US-ASCII", "ASCII"]
        .iter()
        .any(|known| encoding.eq_ignore_ascii_case(known));
    if utf8 || text.is_ascii() {
        Ok(())
    } else {
        Err(XmlError::new(format!(
            "unsupported encoding {encoding:?}: send UTF-8"
        )))
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
}

fn check_chars(text: &str) -> Result<(), XmlError> {
    match text.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(XmlError::new(format!(
            "character U+{:04X} is not allowed in XML",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

fn is_blank(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// The child elements of `element`, refusing any text that is not blank.
pub fn child_elements(element: Element) -> Result<Vec<Element>, XmlError> {
    let mut out = Vec::new();
    for child in element.children {
        match child {
            Node::Element(e) => out.push(e),
            Node::Text(t) if is_blank(&t) => {}
            Node::Text(t) => {
                return Err(XmlError::new(format!(
                    "unexpected text {} in <{}>",
                    quoted(t.trim()),
                    element.name
                )));
            }
        }
    }
    Ok(out)
}

/// A flat, whitespace-free picture of an element tree: tags, attributes,
/// non-blank text, in document order, or the error reading it (the codecs'
/// tests compare documents with it).
#[cfg(test)]
pub fn shape(xml: &str, doctype: Doctype) -> Vec<String> {
    fn walk(e: &Element, out: &mut Vec<String>) {
        let attrs: Vec<String> = e.attrs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        out.push(format!("<{} {}>", e.name, attrs.join(" ")));
        for child in &e.children {
            match child {
                Node::Element(c) => walk(c, out),
                Node::Text(t) if is_blank(t) => {}
                Node::Text(t) => out.push(format!("text {t:?}")),
            }
        }
        out.push(format!("</{}>", e.name));
    }
    let mut out = Vec::new();
    match read_tree(xml.as_bytes(), doctype) {
        Ok(root) => walk(&root, &mut out),
        Err(e) => out.push(format!("error: {e}")),
    }
    out
}
