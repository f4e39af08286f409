//! The BDOM task face codec: `/bdom/task/…` path parsing, `Task.xsd` validation of delete bodies, and the task/scheduled/message/error XML writers.
//!
//! Bodies are read through quick-xml into a small element tree built with
//! an explicit stack (at most [`MAX_DEPTH`] deep). No DOCTYPE is accepted
//! and only the five predefined entities and character references are
//! resolved, so entity expansion attacks have nothing to work with.
//! Writing goes through the quick-xml `Writer`, which escapes every value;
//! output has no XML declaration and one element per line, as in the seed.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use super::xml_tree::{child_elements, read_tree, Doctype, Element, Node, XmlError};

use crate::error::quoted;

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

pub use super::xml_tree::MAX_DEPTH;

/// The face's verb, the OPCODE segment of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskVerb {
    /// `GET …/status/…`: tasks and their status.
    Status,
    /// `GET …/scheduled/…`: tasks waiting for their `exec-date`.
    Scheduled,
    /// `POST …/delete/…`: cancel scheduled tasks listed in the body.
    Delete,
}

impl TaskVerb {
    /// The verb as spelled in paths (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskVerb::Status => "status",
            TaskVerb::Scheduled => "scheduled",
            TaskVerb::Delete => "delete",
        }
    }
}

impl fmt::Display for TaskVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task status as BDOM reports it (the STATUS segment and `<status>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Finished (the source reserves it "for future use"; regdesk uses it).
    Success,
    /// Waiting for an internal job.
    PendingInt,
    /// Waiting for an external job (registry, registrant).
    PendingExt,
    /// Failed internal validation, or depends on a failed task.
    FailedInt,
    /// Failed for external reasons (registry).
    FailedExt,
}

impl TaskStatus {
    /// Every status, in the order the seed lists them.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Success,
        TaskStatus::PendingInt,
        TaskStatus::FailedInt,
        TaskStatus::PendingExt,
        TaskStatus::FailedExt,
    ];

    /// The status as spelled on the wire (upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Success => "SUCCESS",
            TaskStatus::PendingInt => "PENDING_INT",
            TaskStatus::PendingExt => "PENDING_EXT",
            TaskStatus::FailedInt => "FAILED_INT",
            TaskStatus::FailedExt => "FAILED_EXT",
        }
    }

    /// Parses a status, case-insensitively.
    pub fn parse(text: &str) -> Option<TaskStatus> {
        TaskStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of object a task is about (the OBJECT segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskObject {
    /// `domain`, the only kind BDOM documents.
    Domain,
}

impl TaskObject {
    /// The object as spelled on the wire (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskObject::Domain => "domain",
        }
    }
}

/// A parsed `/bdom/task/OPCODE/TASK_ID/STATUS/OBJECT/NAME/USER_ID/` path;
/// `None` is the `-` wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPath {
    /// OPCODE: what the caller wants done.
    pub verb: TaskVerb,
    /// TASK_ID: a positive task id.
    pub task_id: Option<i64>,
    /// STATUS: only tasks in this status.
    pub status: Option<TaskStatus>,
    /// OBJECT: only tasks about this kind of object.
    pub object: Option<TaskObject>,
    /// NAME: a domain name, lower-cased, without a trailing dot. Only with `object`.
    pub name: Option<String>,
    /// USER_ID: the account the tasks belong to; never a wildcard.
    pub user_id: i64,
}

/// A path refused by [`parse_task_path`]: which segment, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPathError {
    /// `path`, `OPCODE`, `TASK_ID`, `STATUS`, `OBJECT`, `NAME` or `USER_ID`.
    pub segment: &'static str,
    /// A sentence naming the bad value.
    pub message: String,
}

impl fmt::Display for TaskPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.segment, self.message)
    }
}

impl std::error::Error for TaskPathError {}

fn path_error(segment: &'static str, message: impl Into<String>) -> TaskPathError {
    TaskPathError {
        segment,
        message: message.into(),
    }
}

const PATH_PREFIX: &str = "/bdom/task/";
const SEGMENTS: [&str; 6] = ["OPCODE", "TASK_ID", "STATUS", "OBJECT", "NAME", "USER_ID"];

/// Parses a task path (query string already stripped). The trailing slash
/// is optional; segments are percent-decoded; `-` is a wildcard except for
/// USER_ID, which is required.
pub fn parse_task_path(path: &str) -> Result<TaskPath, TaskPathError> {
    let rest = path.strip_prefix(PATH_PREFIX).ok_or_else(|| {
        path_error(
            "path",
            format!("{path:?} does not start with {PATH_PREFIX}"),
        )
    })?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let raw: Vec<&str> = rest.split('/').collect();
    let [opcode, task_id, status, object, name, user_id] = raw.as_slice() else {
        return Err(path_error(
            "path",
            format!(
                "expected 6 segments {} after {PATH_PREFIX}, got {} in {path:?}",
                SEGMENTS.join("/"),
                raw.len()
            ),
        ));
    };
    let opcode = segment("OPCODE", opcode)?;
    let task_id = segment("TASK_ID", task_id)?;
    let status = segment("STATUS", status)?;
    let object = segment("OBJECT", object)?;
    let name = segment("NAME", name)?;
    let user_id = segment("USER_ID", user_id)?;

    let verb = match opcode.to_ascii_lowercase().as_str() {
        "status" => TaskVerb::Status,
        "scheduled" => TaskVerb::Scheduled,
        "delete" => TaskVerb::Delete,
        _ => {
            return Err(path_error(
                "OPCODE",
                format!("unknown opcode {opcode:?} (expected status, scheduled or delete)"),
            ));
        }
    };
    let task_id = wildcard(&task_id)
        .map(|id| positive_id("TASK_ID", id))
        .transpose()?;
    let status = wildcard(&status)
        .map(|s| {
            TaskStatus::parse(s).ok_or_else(|| {
                path_error(
                    "STATUS",
                    format!(
                        "unknown status {s:?} (expected SUCCESS, PENDING_INT, PENDING_EXT, FAILED_INT or FAILED_EXT)"
                    ),
                )
            })
        })
        .transpose()?;
    let object = wildcard(&object)
        .map(|o| {
            if o.eq_ignore_ascii_case("domain") {
                Ok(TaskObject::Domain)
            } else {
                Err(path_error(
                    "OBJECT",
                    format!("unknown object {o:?} (expected domain)"),
                ))
            }
        })
        .transpose()?;
    let name = wildcard(&name).map(domain_name).transpose()?;
    if name.is_some() && object.is_none() {
        return Err(path_error(
            "NAME",
            "to search by name, object must be supplied",
        ));
    }
    if wildcard(&user_id).is_none() {
        return Err(path_error("USER_ID", "USER_ID is required, not \"-\""));
    }
    let user_id = positive_id("USER_ID", &user_id)?;
    Ok(TaskPath {
        verb,
        task_id,
        status,
        object,
        name,
        user_id,
    })
}

/// A percent-decoded, non-empty segment.
fn segment(name: &'static str, raw: &str) -> Result<String, TaskPathError> {
    if raw.is_empty() {
        return Err(path_error(name, "empty segment (use - for any)"));
    }
    let decoded = percent_decode(raw)
        .ok_or_else(|| path_error(name, format!("bad percent-encoding in {}", quoted(raw))))?;
    if decoded.is_empty() {
        return Err(path_error(name, "empty segment (use - for any)"));
    }
    Ok(decoded)
}

/// `None` for the `-` wildcard.
fn wildcard(segment: &str) -> Option<&str> {
    (segment != "-").then_some(segment)
}

fn percent_decode(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn positive_id(name: &'static str, text: &str) -> Result<i64, TaskPathError> {
    let bad = || path_error(name, format!("{} is not a positive integer", quoted(text)));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad()),
    }
}

/// A host name of letters, digits and hyphens (IDNs in their `xn--` form),
/// at least two labels; returned lower-cased without a trailing dot.
fn domain_name(text: &str) -> Result<String, TaskPathError> {
    let bad = |why: &str| {
        path_error(
            "NAME",
            format!("{} is not a domain name: {why}", quoted(text)),
        )
    };
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("it needs at least two labels"));
    }
    for label in labels {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label must have 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "only letters, digits and hyphens are allowed (use the xn-- form for IDNs)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label may not start or end with a hyphen"));
        }
    }
    Ok(name)
}

// ---------------------------------------------------------------------------
// Delete bodies.

/// Validates a delete body against `Task.xsd` (seed 004, example 6.1) and
/// returns its task ids in document order, repeats included. A `<request>`
/// without `<delete>` is valid and yields an empty list.
///
/// Allowed on `<request>`: namespace declarations (`xmlns`, `xmlns:*`) and
/// the `xsi:schemaLocation`/`xsi:noNamespaceSchemaLocation` hints, which are
/// never fetched. Comments and processing instructions are ignored.
pub fn parse_delete_body(body: &[u8]) -> Result<Vec<i64>, XmlError> {
    let root = read_tree(body, Doctype::Refused)?;
    if root.name != "request" {
        return Err(XmlError::new(format!(
            "unexpected root element <{}>, expected <request>",
            root.name
        )));
    }
    for (key, _) in &root.attrs {
        let allowed = key == "xmlns"
            || key.starts_with("xmlns:")
            || key == "xsi:schemaLocation"
            || key == "xsi:noNamespaceSchemaLocation";
        if !allowed {
            return Err(XmlError::new(format!(
                "unexpected attribute {key} on <request>"
            )));
        }
    }
    let mut delete = None;
    for child in child_elements(root)? {
        match child.name.as_str() {
            "delete" if delete.is_none() => delete = Some(child),
            "delete" => return Err(XmlError::new("more than one <delete> in <request>")),
            other => {
                return Err(XmlError::new(format!(
                    "unexpected element <{other}> in <request> (only <delete> is allowed)"
                )));
            }
        }
    }
    let Some(delete) = delete else {
        return Ok(Vec::new());
    };
    no_attributes(&delete)?;
    let mut ids = Vec::new();
    for task in child_elements(delete)? {
        if task.name != "task_id" {
            return Err(XmlError::new(format!(
                "unexpected element <{}> in <delete> (only <task_id> is allowed)",
                task.name
            )));
        }
        no_attributes(&task)?;
        ids.push(xs_int(task)?);
    }
    if ids.is_empty() {
        return Err(XmlError::new("<delete> needs at least one <task_id>"));
    }
    Ok(ids)
}

fn no_attributes(element: &Element) -> Result<(), XmlError> {
    match element.attrs.first() {
        Some((key, _)) => Err(XmlError::new(format!(
            "unexpected attribute {key} on <{}>",
            element.name
        ))),
        None => Ok(()),
    }
}

/// The content of a `<task_id>` as an `xs:int`: whitespace collapsed, an
/// optional sign, digits, within the 32-bit range.
fn xs_int(element: Element) -> Result<i64, XmlError> {
    let mut text = String::new();
    for child in element.children {
        match child {
            Node::Text(t) => text.push_str(&t),
            Node::Element(e) => {
                return Err(XmlError::new(format!(
                    "unexpected element <{}> in <task_id>",
                    e.name
                )));
            }
        }
    }
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    let not_int = || XmlError::new(format!("<task_id> {trimmed:?} is not an xs:int"));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_int());
    }
    let value = trimmed
        .parse::<i64>()
        .ok()
        .and_then(|n| i32::try_from(n).ok());
    match value {
        Some(n) => Ok(i64::from(n)),
        None => Err(XmlError::new(format!(
            "<task_id> {trimmed} is outside the xs:int range"
        ))),
    }
}

// ---------------------------------------------------------------------------
// Writers.

/// One task, as in examples 6.4-6.7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// When the task was created, `YYYY-MM-DD HH:MM:SS`.
    pub date: String,
    /// The domain name.
    pub name: String,
    /// `domain`.
    pub object: String,
    /// The operation, e.g. `transfer-in`.
    pub opcode: String,
    /// A [`TaskStatus`] spelling, e.g. `PENDING_EXT`.
    pub status: String,
    /// The task id.
    pub task_id: i64,
    /// The owning account.
    pub user_id: i64,
}

/// One scheduled task, as in example 6.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRow {
    /// e.g. `RELAUNCH`.
    pub class: String,
    /// When it will run, `YYYY-MM-DD` (written as `<exec-date>`).
    pub exec_date: String,
    /// The domain name.
    pub name: String,
    /// `domain`.
    pub object: String,
    /// The operation, e.g. `delete`.
    pub opcode: String,
    /// The task id.
    pub task_id: i64,
    /// When it was scheduled, `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
    /// The TLD's id.
    pub tld_id: i64,
    /// e.g. `COMPLEX`.
    pub r#type: String,
}

/// Writes tasks: a bare `<response>` when `single` is set and there is
/// exactly one row, otherwise a `<multiresponse>` of `<response>` (an empty
/// list writes `<multiresponse>` with start and end tags, never self-closed).
pub fn write_tasks(rows: &[TaskRow], single: bool) -> String {
    finish(|w| {
        let fields = |row: &TaskRow| {
            [
                ("date", row.date.clone()),
                ("name", row.name.clone()),
                ("object", row.object.clone()),
                ("opcode", row.opcode.clone()),
                ("status", row.status.clone()),
                ("task_id", row.task_id.to_string()),
                ("user_id", row.user_id.to_string()),
            ]
        };
        match rows {
            [only] if single => write_record(w, &fields(only)),
            _ => {
                start(w, "multiresponse")?;
                for row in rows {
                    write_record(w, &fields(row))?;
                }
                end(w, "multiresponse")
            }
        }
    })
}

/// Writes scheduled tasks as a `<multiresponse>` (empty list: start and end
/// tags, never self-closed).
pub fn write_scheduled(rows: &[ScheduledRow]) -> String {
    finish(|w| {
        start(w, "multiresponse")?;
        for row in rows {
            write_record(
                w,
                &[
                    ("class", row.class.clone()),
                    ("exec-date", row.exec_date.clone()),
                    ("name", row.name.clone()),
                    ("object", row.object.clone()),
                    ("opcode", row.opcode.clone()),
                    ("task_id", row.task_id.to_string()),
                    ("time", row.time.clone()),
                    ("tld_id", row.tld_id.to_string()),
                    ("type", row.r#type.clone()),
                ],
            )?;
        }
        end(w, "multiresponse")
    })
}

/// Writes `<response>text</response>`, e.g. `delete ok`.
pub fn write_message(text: &str) -> String {
    finish(|w| text_element(w, "response", text))
}

/// Writes `<error><code>400</code><message>…</message></error>`.
pub fn write_error(code: u16, message: &str) -> String {
    finish(|w| {
        start(w, "error")?;
        text_element(w, "code", &code.to_string())?;
        text_element(w, "message", message)?;
        end(w, "error")
    })
}

/// Runs a writing closure into a buffer: one element per line, no
/// indentation and no XML declaration (as in the seed), ending with a newline.
fn finish(write: impl FnOnce(&mut Writer<Vec<u8>>) -> io::Result<()>) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 0);
    let written = write(&mut writer);
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

fn write_record(w: &mut Writer<Vec<u8>>, fields: &[(&str, String)]) -> io::Result<()> {
    start(w, "response")?;
    for (tag, value) in fields {
        text_element(w, tag, value)?;
    }
    end(w, "response")
}

fn text_element(w: &mut Writer<Vec<u8>>, tag: &str, text: &str) -> io::Result<()> {
    start(w, tag)?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    end(w, tag)
}

fn start(w: &mut Writer<Vec<u8>>, name: &str) -> io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))
}

fn end(w: &mut Writer<Vec<u8>>, name: &str) -> io::Result<()> {
    w.write_event(Event::End(BytesEnd::new(name)))
}

// ---------------------------------------------------------------------------
// Reading: bytes → element tree.

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(xml: &str) -> Vec<String> {
        crate::face::xml_tree::shape(xml, Doctype::Refused)
    }

    fn path(
        verb: TaskVerb,
        task_id: Option<i64>,
        status: Option<TaskStatus>,
        object: Option<TaskObject>,
        name: Option<&str>,
        user_id: i64,
    ) -> TaskPath {
        TaskPath {
            verb,
            task_id,
            status,
            object,
            name: name.map(str::to_owned),
            user_id,
        }
    }

    #[test]
    fn seed_paths_parse() {
        use TaskVerb::*;
        let cases = [
            // 6.2
            (
                "/bdom/task/scheduled/-/-/-/-/13048/",
                path(Scheduled, None, None, None, None, 13048),
            ),
            // 6.3
            (
                "/bdom/task/delete/-/-/-/-/13048/",
                path(Delete, None, None, None, None, 13048),
            ),
            // 6.4
            (
                "/bdom/task/status/-/-/-/-/13048/",
                path(Status, None, None, None, None, 13048),
            ),
            // 6.5
            (
                "/bdom/task/status/3151063/-/-/-/13048/",
                path(Status, Some(3151063), None, None, None, 13048),
            ),
            // 6.6
            (
                "/bdom/task/status/-/-/domain/nic-domain-example.de/13048/",
                path(
                    Status,
                    None,
                    None,
                    Some(TaskObject::Domain),
                    Some("nic-domain-example.de"),
                    13048,
                ),
            ),
            // 6.7
            (
                "/bdom/task/status/-/PENDING_EXT/-/-/13048/",
                path(
                    Status,
                    None,
                    Some(TaskStatus::PendingExt),
                    None,
                    None,
                    13048,
                ),
            ),
            // Variations: no trailing slash, case, percent-encoding.
            (
                "/bdom/task/STATUS/-/pending_int/DOMAIN/Nic-Domain-Example.DE./13048",
                path(
                    Status,
                    None,
                    Some(TaskStatus::PendingInt),
                    Some(TaskObject::Domain),
                    Some("nic-domain-example.de"),
                    13048,
                ),
            ),
            (
                "/bdom/task/Scheduled/%33/%2D/-/-/%31%32/",
                path(Scheduled, Some(3), None, None, None, 12),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(parse_task_path(url), Ok(want), "{url}");
        }
        for status in TaskStatus::ALL {
            let url = format!("/bdom/task/status/-/{status}/-/-/1/");
            assert_eq!(parse_task_path(&url).map(|p| p.status), Ok(Some(status)));
        }
    }

    #[test]
    fn bad_paths_name_the_segment() {
        let cases = [
            ("/bdom/task/status/-/-/-/-/", "path", "got 5"),
            ("/bdom/task/status/-/-/-/-/13048/x/", "path", "got 7"),
            ("/bdom/task/status/-/-/-/-/13048//", "path", "got 7"),
            ("/bdom/task/", "path", "got 1"),
            (
                "/bdom/tasks/status/-/-/-/-/1/",
                "path",
                "does not start with",
            ),
            ("/bdom/task/fetch/-/-/-/-/1/", "OPCODE", "\"fetch\""),
            ("/bdom/task/status/abc/-/-/-/1/", "TASK_ID", "\"abc\""),
            ("/bdom/task/status/0/-/-/-/1/", "TASK_ID", "\"0\""),
            ("/bdom/task/status/-5/-/-/-/1/", "TASK_ID", "\"-5\""),
            ("/bdom/task/status/+5/-/-/-/1/", "TASK_ID", "\"+5\""),
            (
                "/bdom/task/status/99999999999999999999/-/-/-/1/",
                "TASK_ID",
                "99999999999999999999",
            ),
            ("/bdom/task/status/-/DONE/-/-/1/", "STATUS", "\"DONE\""),
            ("/bdom/task/status/-/-/host/-/1/", "OBJECT", "\"host\""),
            (
                "/bdom/task/status/-/-/-/example.com/1/",
                "NAME",
                "to search by name, object must be supplied",
            ),
            (
                "/bdom/task/status/-/-/domain/exa_mple.com/1/",
                "NAME",
                "exa_mple.com",
            ),
            (
                "/bdom/task/status/-/-/domain/localhost/1/",
                "NAME",
                "localhost",
            ),
            ("/bdom/task/status/-/-/domain/-a.com/1/", "NAME", "-a.com"),
            ("/bdom/task/status/-/-/domain/a..com/1/", "NAME", "a..com"),
            (
                "/bdom/task/status/-/-/domain/b%FCcher.de/1/",
                "NAME",
                "b%FCcher.de",
            ),
            ("/bdom/task/status/-/-/-/-/-/", "USER_ID", "required"),
            ("/bdom/task/status/-/-/-/-/x1/", "USER_ID", "\"x1\""),
            ("/bdom/task/status/-/-/-/-/0/", "USER_ID", "\"0\""),
            ("/bdom/task/status//-/-/-/1/", "TASK_ID", "empty segment"),
            ("/bdom/task//-/-/-/-/1/", "OPCODE", "empty segment"),
            ("/bdom/task/status/-/-/-/-/%zz/", "USER_ID", "%zz"),
            ("/bdom/task/status/-/-/-/-/%4/", "USER_ID", "%4"),
        ];
        for (url, segment, in_message) in cases {
            match parse_task_path(url) {
                Ok(p) => panic!("accepted {url} as {p:?}"),
                Err(e) => {
                    assert_eq!(e.segment, segment, "{url}: {e}");
                    assert!(e.message.contains(in_message), "{url}: {e}");
                }
            }
        }
    }

    const SEED_DELETE: &str = include_str!("../../tests/seeds/bdom_6_3_request.xml");

    #[test]
    fn seed_delete_body_parses() {
        assert_eq!(
            parse_delete_body(SEED_DELETE.as_bytes()),
            Ok(vec![3315581, 3190159])
        );
    }

    #[test]
    fn valid_delete_bodies() {
        let cases: &[(&str, &[i64])] = &[
            ("<request/>", &[]),
            ("<request>\n</request>", &[]),
            (
                "<request xmlns=\"\"><delete><task_id>1</task_id></delete></request>",
                &[1],
            ),
            (
                "<?xml version='1.0'?><!-- hi --><request xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xsi:noNamespaceSchemaLocation='Task.xsd'><delete><task_id> +7 </task_id><task_id>\n-3\t</task_id><task_id>0007</task_id><task_id>7</task_id></delete></request>",
                &[7, -3, 7, 7],
            ),
            (
                "<request><delete><task_id>2147483647</task_id><task_id>-2147483648</task_id></delete></request>",
                &[2147483647, -2147483648],
            ),
            (
                "<request><delete><task_id>&#49;2</task_id></delete></request>",
                &[12],
            ),
            (
                "<request><delete><task_id><![CDATA[42]]></task_id></delete></request>",
                &[42],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_delete_body(body.as_bytes()).as_deref(),
                Ok(*want),
                "{body}"
            );
        }
    }

    #[test]
    fn invalid_delete_bodies_are_refused() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE request [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><request><delete><task_id>&lol2;</task_id></delete></request>"#;
        let xxe = r#"<!DOCTYPE request [<!ENTITY x SYSTEM "file:///etc/passwd">]><request><delete><task_id>&x;</task_id></delete></request>"#;
        let mut deep = String::from("<request>");
        for _ in 0..50_000 {
            deep.push_str("<delete>");
        }
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"<response/>".to_vec(), "unexpected root element <response>"),
            (b"<request foo='1'/>".to_vec(), "unexpected attribute foo on <request>"),
            (b"<request>hi</request>".to_vec(), "unexpected text \"hi\" in <request>"),
            (b"<request><cancel/></request>".to_vec(), "unexpected element <cancel> in <request>"),
            (b"<request><delete><task_id>1</task_id></delete><delete><task_id>2</task_id></delete></request>".to_vec(), "more than one <delete>"),
            (b"<request><delete/></request>".to_vec(), "at least one <task_id>"),
            (b"<request><delete>\n</delete></request>".to_vec(), "at least one <task_id>"),
            (b"<request><delete><task/></delete></request>".to_vec(), "unexpected element <task> in <delete>"),
            (b"<request><delete>5<task_id>1</task_id></delete></request>".to_vec(), "unexpected text \"5\" in <delete>"),
            (b"<request><delete a='b'><task_id>1</task_id></delete></request>".to_vec(), "unexpected attribute a on <delete>"),
            (b"<request><delete><task_id id='1'>1</task_id></delete></request>".to_vec(), "unexpected attribute id on <task_id>"),
            (b"<request><delete><task_id>abc</task_id></delete></request>".to_vec(), "\"abc\" is not an xs:int"),
            (b"<request><delete><task_id></task_id></delete></request>".to_vec(), "\"\" is not an xs:int"),
            (b"<request><delete><task_id>1.0</task_id></delete></request>".to_vec(), "\"1.0\" is not an xs:int"),
            (b"<request><delete><task_id>1 2</task_id></delete></request>".to_vec(), "\"1 2\" is not an xs:int"),
            (b"<request><delete><task_id>+</task_id></delete></request>".to_vec(), "\"+\" is not an xs:int"),
            (b"<request><delete><task_id>--1</task_id></delete></request>".to_vec(), "\"--1\" is not an xs:int"),
            (b"<request><delete><task_id>2147483648</task_id></delete></request>".to_vec(), "outside the xs:int range"),
            (b"<request><delete><task_id>-2147483649</task_id></delete></request>".to_vec(), "outside the xs:int range"),
            (b"<request><delete><task_id>99999999999999999999999</task_id></delete></request>".to_vec(), "outside the xs:int range"),
            (b"<request><delete><task_id><b>1</b></task_id></delete></request>".to_vec(), "unexpected element <b> in <task_id>"),
            (b"<x:request xmlns:x='urn:x'/>".to_vec(), "unexpected root element <x:request>"),
            (laughs.as_bytes().to_vec(), "DOCTYPE is not allowed"),
            (xxe.as_bytes().to_vec(), "DOCTYPE is not allowed"),
            (b"<request><delete><task_id>&lol;</task_id></delete></request>".to_vec(), "undefined entity reference &lol;"),
            (b"<request><delete><task_id>&#0;</task_id></delete></request>".to_vec(), "invalid character reference"),
            (deep.into_bytes(), "nesting deeper than 32 levels"),
            (b"<request>\xc3\x28</request>".to_vec(), "invalid UTF-8 at byte 9"),
            (b"".to_vec(), "no root element"),
            (b"<request>".to_vec(), "unexpected end of document inside <request>"),
            (b"<request/><request/>".to_vec(), "content after the root element"),
            (b"<request></delete>".to_vec(), "malformed XML at byte"),
            (b"<request/><?xml version='1.0'?>".to_vec(), "XML declaration must come first"),
        ];
        for (body, want) in cases {
            let shown = String::from_utf8_lossy(&body)
                .chars()
                .take(120)
                .collect::<String>();
            match parse_delete_body(&body) {
                Ok(ids) => panic!("accepted {shown:?} as {ids:?}"),
                Err(e) => assert!(
                    e.message.contains(want),
                    "{shown:?}\n  {e}\n  wanted {want:?}"
                ),
            }
        }
    }

    // The seed's examples (004, 6.2, 6.4, 6.5), verbatim.
    const SEED_6_2: &str = include_str!("../../tests/seeds/bdom_6_2.xml");
    const SEED_6_4: &str = include_str!("../../tests/seeds/bdom_6_4.xml");
    const SEED_6_5: &str = include_str!("../../tests/seeds/bdom_6_5.xml");

    fn task(date: &str, name: &str, task_id: i64) -> TaskRow {
        TaskRow {
            date: date.into(),
            name: name.into(),
            object: "domain".into(),
            opcode: "transfer-in".into(),
            status: TaskStatus::PendingExt.as_str().into(),
            task_id,
            user_id: 13048,
        }
    }

    fn scheduled(exec_date: &str, name: &str, task_id: i64, time: &str) -> ScheduledRow {
        ScheduledRow {
            class: "RELAUNCH".into(),
            exec_date: exec_date.into(),
            name: name.into(),
            object: "domain".into(),
            opcode: "delete".into(),
            task_id,
            time: time.into(),
            tld_id: 7,
            r#type: "COMPLEX".into(),
        }
    }

    /// Compares element trees and, since the writer mimics the seed's
    /// layout, the exact text too.
    fn check_written(written: &str, seed: &str) {
        assert_eq!(shape(written), shape(seed), "\n{written}");
        assert_eq!(written, seed);
    }

    #[test]
    fn writers_reproduce_the_seed() {
        let t1 = task("2009-01-20 21:07:56", "examples-nic-domain.de", 3071767);
        let t2 = task("2009-02-27 17:09:50", "nic-domain-example.de", 3151063);
        check_written(&write_tasks(&[t1.clone(), t2.clone()], false), SEED_6_4);
        check_written(&write_tasks(&[t1, t2.clone()], true), SEED_6_4);
        check_written(&write_tasks(std::slice::from_ref(&t2), true), SEED_6_5);
        check_written(
            &write_scheduled(&[
                scheduled(
                    "2010-01-17",
                    "nic-domain-example.de",
                    3190159,
                    "2009-03-18 18:10:10",
                ),
                scheduled(
                    "2010-02-21",
                    "examples-nic-domain.de",
                    3315581,
                    "2009-05-14 19:42:07",
                ),
            ]),
            SEED_6_2,
        );
        check_written(
            &write_message("delete ok"),
            "<response>delete ok</response>\n",
        );
    }

    #[test]
    fn writers_escape_and_handle_empty_lists() {
        assert_eq!(
            write_tasks(&[], false),
            "<multiresponse>\n</multiresponse>\n"
        );
        assert_eq!(
            write_tasks(&[], true),
            "<multiresponse>\n</multiresponse>\n"
        );
        assert_eq!(write_scheduled(&[]), "<multiresponse>\n</multiresponse>\n");
        let error = write_error(400, "bad <task_id> & \"more\"");
        assert_eq!(
            shape(&error),
            [
                "<error >",
                "<code >",
                "text \"400\"",
                "</code>",
                "<message >",
                "text \"bad <task_id> & \\\"more\\\"\"",
                "</message>",
                "</error>"
            ]
        );
        assert!(error.contains("bad &lt;task_id&gt; &amp;"), "{error}");
        let mut row = task("d", "<x>&", 1);
        row.opcode = "]]>".into();
        let written = write_tasks(&[row], true);
        assert!(
            shape(&written).contains(&"text \"<x>&\"".to_owned()),
            "{written}"
        );
    }

    #[test]
    fn mutated_inputs_never_panic() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds = [
            SEED_DELETE.as_bytes(),
            b"/bdom/task/status/-/-/domain/nic-domain-example.de/13048/",
        ];
        for round in 0..2_000 {
            let mut input = seeds[round % 2].to_vec();
            for _ in 0..(next() % 6 + 1) {
                let at = (next() % input.len().max(1) as u64) as usize;
                match next() % 3 {
                    0 => {
                        if let Some(b) = input.get_mut(at) {
                            *b = (next() % 256) as u8;
                        }
                    }
                    1 => input.truncate(at),
                    _ => {
                        let byte = *b"<>&;/%-.".get((next() % 8) as usize).unwrap_or(&b'/');
                        input.insert(at.min(input.len()), byte);
                    }
                }
            }
            let _ = parse_delete_body(&input);
            let _ = parse_task_path(&String::from_utf8_lossy(&input));
        }
    }
}
