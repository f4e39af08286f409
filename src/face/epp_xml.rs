//! The EPP codec (RFC 5730-5733): a command frame read into a typed
//! [`Request`] through `xml_tree` (no DTD, no entities, its depth bound),
//! with namespaces resolved; and the writers of a greeting and of a
//! response, as RFC 5730's examples are written (`<epp>` in the EPP default
//! namespace, object data under its usual prefix, attributes in double
//! quotes). The face decides what a command means; this only reads and
//! writes.

#![forbid(unsafe_code)]

use quick_xml::escape::escape;

use super::xml_tree::{read_tree, Doctype, Element, Node};

pub const EPP_NS: &str = "urn:ietf:params:xml:ns:epp-1.0";
pub const DOMAIN_NS: &str = "urn:ietf:params:xml:ns:domain-1.0";
pub const CONTACT_NS: &str = "urn:ietf:params:xml:ns:contact-1.0";
pub const HOST_NS: &str = "urn:ietf:params:xml:ns:host-1.0";
/// RFC 3915's registry grace period extension.
pub const RGP_NS: &str = "urn:ietf:params:xml:ns:rgp-1.0";

/// Children of one element a command may have: more is a refusal, not a
/// loop over a megabyte of names.
const MAX_CHILDREN: usize = 1000;

/// A refusal of a frame: the result code, the message, and the client's
/// transaction id when it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
    pub cl_trid: Option<String>,
}

impl Refusal {
    pub fn new(code: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            cl_trid: None,
        }
    }
}

/// The object a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Domain,
    Contact,
    Host,
}

impl Object {
    fn from_ns(ns: &str) -> Option<Object> {
        match ns {
            DOMAIN_NS => Some(Object::Domain),
            CONTACT_NS => Some(Object::Contact),
            HOST_NS => Some(Object::Host),
            _ => None,
        }
    }
}

/// A period as sent: a number and its unit (`y` or `m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub value: u32,
    pub months: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOp {
    Request,
    Query,
    Approve,
    Reject,
    Cancel,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    pub cl_id: String,
    pub pw: String,
    pub new_pw: Option<String>,
    pub version: String,
    pub lang: String,
    /// The `<svcExtension>`'s `<extURI>` values: the extensions the client
    /// reads in answers.
    pub ext_uris: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainCreate {
    pub name: String,
    pub period: Option<Period>,
    pub nameservers: Vec<String>,
    pub registrant: Option<String>,
    /// `(type, id)`.
    pub contacts: Vec<(String, String)>,
    /// `None` when absent or empty (regdesk makes one).
    pub auth: Option<String>,
}

/// One side (`add` or `rem`) of a domain update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainSide {
    pub nameservers: Vec<String>,
    pub contacts: Vec<(String, String)>,
    pub statuses: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainUpdate {
    pub name: String,
    pub add: DomainSide,
    pub rem: DomainSide,
    pub registrant: Option<String>,
    pub auth: Option<String>,
    /// RFC 3915's `<rgp:update>`, when the command carries one.
    pub restore: Option<Restore>,
}

impl DomainUpdate {
    /// Whether it changes anything besides a restore (`add`, `rem`, `chg`).
    pub fn changes(&self) -> bool {
        self.add != DomainSide::default()
            || self.rem != DomainSide::default()
            || self.registrant.is_some()
            || self.auth.is_some()
    }
}

/// RFC 3915's `<rgp:restore>`: `op="request"`, or `op="report"` with its
/// report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    Request,
    Report(Box<Report>),
}

/// RFC 3915's `<rgp:report>`, each text as sent (trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub pre_data: String,
    pub post_data: String,
    pub del_time: String,
    pub res_time: String,
    pub res_reason: String,
    /// One or two.
    pub statements: Vec<String>,
    pub other: Option<String>,
}

/// A contact's fields as sent; every one optional (an update changes only
/// what it names; a create's required ones are checked by the face).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFields {
    pub name: Option<String>,
    pub org: Option<String>,
    /// `Some` when an `<addr>` was sent.
    pub street: Option<Vec<String>>,
    pub city: Option<String>,
    pub sp: Option<String>,
    pub pc: Option<String>,
    pub cc: Option<String>,
    pub voice: Option<String>,
    pub fax: Option<String>,
    pub email: Option<String>,
    pub auth: Option<String>,
}

/// A command, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Login(Login),
    Logout,
    PollReq,
    PollAck(String),
    Check(Object, Vec<String>),
    /// The object's name or id and the auth info sent with it.
    Info(Object, String, Option<String>),
    Delete(Object, String),
    DomainCreate(DomainCreate),
    DomainRenew {
        name: String,
        cur_exp_date: String,
        period: Option<Period>,
    },
    DomainUpdate(DomainUpdate),
    Transfer {
        op: TransferOp,
        object: Object,
        name: String,
        auth: Option<String>,
        period: Option<Period>,
    },
    ContactCreate(String, ContactFields),
    ContactUpdate(String, ContactFields),
    HostCreate(String, Vec<String>),
    HostUpdate {
        name: String,
        add: Vec<String>,
        rem: Vec<String>,
        new_name: Option<String>,
    },
}

/// A frame, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello,
    Command {
        command: Box<Command>,
        cl_trid: Option<String>,
    },
}

/// An element with its namespace resolved and its text gathered.
#[derive(Debug, Clone, Default)]
struct X {
    ns: String,
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<X>,
    text: String,
    /// Its text pieces, each after how many children it comes (to read
    /// mixed content in document order).
    pieces: Vec<(usize, String)>,
}

impl X {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&X> {
        self.children.iter().find(|c| c.name == name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a X> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.trim().to_string())
    }

    fn required(&self, name: &str) -> Result<String, Refusal> {
        self.text_of(name)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| missing(&format!("<{}> in <{}>", name, self.name)))
    }
}

fn missing(what: &str) -> Refusal {
    Refusal::new(2003, format!("required parameter missing: {what}"))
}

fn syntax(message: impl Into<String>) -> Refusal {
    Refusal::new(2001, message)
}

/// Resolves namespaces from the prefixes in scope (`scope`: prefix, URI;
/// the empty prefix is the default namespace).
fn resolve(e: Element, scope: &[(String, String)]) -> Result<X, Refusal> {
    let mut scope = scope.to_vec();
    let mut attrs = Vec::new();
    for (k, v) in e.attrs {
        if k == "xmlns" {
            scope.push((String::new(), v));
        } else if let Some(prefix) = k.strip_prefix("xmlns:") {
            scope.push((prefix.to_string(), v));
        } else {
            let local = k.rsplit(':').next().unwrap_or(&k).to_string();
            attrs.push((local, v));
        }
    }
    let (prefix, name) = match e.name.split_once(':') {
        Some((p, n)) => (p.to_string(), n.to_string()),
        None => (String::new(), e.name.clone()),
    };
    let ns = scope
        .iter()
        .rev()
        .find(|(p, _)| *p == prefix)
        .map(|(_, uri)| uri.clone());
    let ns = match (ns, prefix.is_empty()) {
        (Some(ns), _) => ns,
        (None, true) => String::new(),
        (None, false) => return Err(syntax(format!("undeclared namespace prefix {prefix:?}"))),
    };
    let mut x = X {
        ns,
        name,
        attrs,
        ..X::default()
    };
    for child in e.children {
        match child {
            Node::Element(c) => {
                if x.children.len() >= MAX_CHILDREN {
                    return Err(Refusal::new(
                        2004,
                        format!("more than {MAX_CHILDREN} elements in <{}>", x.name),
                    ));
                }
                x.children.push(resolve(c, &scope)?);
            }
            Node::Text(t) => {
                x.text.push_str(&t);
                x.pieces.push((x.children.len(), t));
            }
        }
    }
    Ok(x)
}

/// Reads one frame's XML into a request. Not well-formed or not valid:
/// 2001; a required element missing: 2003.
pub fn parse(body: &[u8]) -> Result<Request, Refusal> {
    let tree = read_tree(body, Doctype::Refused).map_err(|e| syntax(e.message))?;
    let root = resolve(tree, &[])?;
    if root.name != "epp" || root.ns != EPP_NS {
        return Err(syntax(format!(
            "the root element must be <epp xmlns=\"{EPP_NS}\">"
        )));
    }
    let [inner] = root.children.as_slice() else {
        return Err(syntax("<epp> must hold exactly one element"));
    };
    match inner.name.as_str() {
        "hello" => Ok(Request::Hello),
        "command" => {
            let cl_trid = inner.text_of("clTRID").filter(|t| !t.is_empty());
            if let Some(t) = &cl_trid {
                if !(3..=64).contains(&t.chars().count()) {
                    return Err(syntax("<clTRID> must have 3 to 64 characters"));
                }
            }
            let command = command(inner).map_err(|mut r| {
                r.cl_trid = cl_trid.clone();
                r
            })?;
            Ok(Request::Command {
                command: Box::new(command),
                cl_trid,
            })
        }
        other => Err(syntax(format!(
            "<{other}> is not a command this server takes"
        ))),
    }
}

fn command(c: &X) -> Result<Command, Refusal> {
    let verb = c
        .children
        .iter()
        .find(|v| v.name != "extension" && v.name != "clTRID")
        .ok_or_else(|| missing("a command in <command>"))?;
    match verb.name.as_str() {
        "login" => login(verb).map(Command::Login),
        "logout" => Ok(Command::Logout),
        "poll" => match verb.attr("op") {
            Some("req") => Ok(Command::PollReq),
            Some("ack") => verb
                .attr("msgID")
                .map(|id| Command::PollAck(id.to_string()))
                .ok_or_else(|| missing("msgID of <poll op=\"ack\">")),
            _ => Err(syntax("<poll> needs op=\"req\" or op=\"ack\"")),
        },
        "check" | "info" | "create" | "delete" | "renew" | "update" | "transfer" => {
            object_command(verb, c.child("extension"))
        }
        other => Err(Refusal::new(2000, format!("unknown command <{other}>"))),
    }
}

fn login(l: &X) -> Result<Login, Refusal> {
    let options = l.child("options");
    Ok(Login {
        cl_id: l.required("clID")?,
        pw: l.text_of("pw").ok_or_else(|| missing("<pw> in <login>"))?,
        new_pw: l.text_of("newPW"),
        version: options
            .and_then(|o| o.text_of("version"))
            .ok_or_else(|| missing("<options><version> in <login>"))?,
        lang: options
            .and_then(|o| o.text_of("lang"))
            .ok_or_else(|| missing("<options><lang> in <login>"))?,
        ext_uris: l
            .child("svcs")
            .and_then(|s| s.child("svcExtension"))
            .map(|e| e.all("extURI").map(|u| u.text.trim().to_string()).collect())
            .unwrap_or_default(),
    })
}

fn object_command(verb: &X, extension: Option<&X>) -> Result<Command, Refusal> {
    let data = verb
        .children
        .first()
        .ok_or_else(|| missing(&format!("an object in <{}>", verb.name)))?;
    let object = Object::from_ns(&data.ns).ok_or_else(|| {
        Refusal::new(
            2307,
            format!("objects of namespace {:?} are not served", data.ns),
        )
    })?;
    if data.name != verb.name {
        return Err(syntax(format!(
            "<{}> holds <{}>, not <{}>",
            verb.name, data.name, verb.name
        )));
    }
    let key = if object == Object::Contact {
        "id"
    } else {
        "name"
    };
    match verb.name.as_str() {
        "check" => {
            let names: Vec<String> = data.all(key).map(|n| n.text.trim().to_string()).collect();
            if names.is_empty() {
                return Err(missing(&format!("<{key}> in <check>")));
            }
            Ok(Command::Check(object, names))
        }
        "info" => Ok(Command::Info(object, data.required(key)?, auth(data))),
        "delete" => Ok(Command::Delete(object, data.required(key)?)),
        "transfer" => transfer(verb, data, object, key),
        "create" => create(data, object),
        "update" => update(data, object, extension),
        _ => renew(data, object),
    }
}

/// `<authInfo><pw>`: `None` when absent or empty.
fn auth(data: &X) -> Option<String> {
    data.child("authInfo")
        .and_then(|a| a.text_of("pw"))
        .filter(|pw| !pw.is_empty())
}

fn period(data: &X) -> Result<Option<Period>, Refusal> {
    let Some(p) = data.child("period") else {
        return Ok(None);
    };
    let value =
        p.text.trim().parse::<u32>().map_err(|_| {
            Refusal::new(2005, format!("period {:?} is not a number", p.text.trim()))
        })?;
    let months = match p.attr("unit") {
        Some("y") => false,
        Some("m") => true,
        _ => return Err(Refusal::new(2005, "period unit must be \"y\" or \"m\"")),
    };
    Ok(Some(Period { value, months }))
}

fn transfer(verb: &X, data: &X, object: Object, key: &str) -> Result<Command, Refusal> {
    let op =
        match verb.attr("op") {
            Some("request") => TransferOp::Request,
            Some("query") => TransferOp::Query,
            Some("approve") => TransferOp::Approve,
            Some("reject") => TransferOp::Reject,
            Some("cancel") => TransferOp::Cancel,
            _ => return Err(syntax(
                "<transfer> needs op=\"request\", \"query\", \"approve\", \"reject\" or \"cancel\"",
            )),
        };
    Ok(Command::Transfer {
        op,
        object,
        name: data.required(key)?,
        auth: auth(data),
        period: period(data)?,
    })
}

fn renew(data: &X, object: Object) -> Result<Command, Refusal> {
    if object != Object::Domain {
        return Err(Refusal::new(2101, "only domains are renewed"));
    }
    Ok(Command::DomainRenew {
        name: data.required("name")?,
        cur_exp_date: data.required("curExpDate")?,
        period: period(data)?,
    })
}

fn nameservers(ns: Option<&X>) -> Vec<String> {
    let Some(ns) = ns else {
        return Vec::new();
    };
    let objs = ns.all("hostObj").map(|h| h.text.trim().to_string());
    let attrs = ns.all("hostAttr").filter_map(|h| h.text_of("hostName"));
    objs.chain(attrs).collect()
}

fn contacts(data: &X) -> Result<Vec<(String, String)>, Refusal> {
    data.all("contact")
        .map(|c| {
            let kind = c.attr("type").ok_or_else(|| missing("type of <contact>"))?;
            Ok((kind.to_string(), c.text.trim().to_string()))
        })
        .collect()
}

fn create(data: &X, object: Object) -> Result<Command, Refusal> {
    match object {
        Object::Domain => Ok(Command::DomainCreate(DomainCreate {
            name: data.required("name")?,
            period: period(data)?,
            nameservers: nameservers(data.child("ns")),
            registrant: data.text_of("registrant").filter(|r| !r.is_empty()),
            contacts: contacts(data)?,
            auth: auth(data),
        })),
        Object::Contact => Ok(Command::ContactCreate(
            data.required("id")?,
            contact_fields(data),
        )),
        Object::Host => Ok(Command::HostCreate(data.required("name")?, addresses(data))),
    }
}

fn addresses(data: &X) -> Vec<String> {
    data.all("addr")
        .map(|a| a.text.trim().to_string())
        .collect()
}

fn domain_side(side: Option<&X>) -> Result<DomainSide, Refusal> {
    let Some(side) = side else {
        return Ok(DomainSide::default());
    };
    Ok(DomainSide {
        nameservers: nameservers(side.child("ns")),
        contacts: contacts(side)?,
        statuses: side
            .all("status")
            .filter_map(|s| s.attr("s").map(str::to_string))
            .collect(),
    })
}

fn update(data: &X, object: Object, extension: Option<&X>) -> Result<Command, Refusal> {
    match object {
        Object::Domain => {
            let chg = data.child("chg");
            Ok(Command::DomainUpdate(DomainUpdate {
                name: data.required("name")?,
                add: domain_side(data.child("add"))?,
                rem: domain_side(data.child("rem"))?,
                registrant: chg.and_then(|c| c.text_of("registrant")),
                // Empty here is a request for a new one, not "no change".
                auth: chg.and_then(|c| c.child("authInfo")?.text_of("pw")),
                restore: restore(extension)?,
            }))
        }
        Object::Contact => {
            let fields = data.child("chg").map(contact_fields).unwrap_or_default();
            Ok(Command::ContactUpdate(data.required("id")?, fields))
        }
        Object::Host => Ok(Command::HostUpdate {
            name: data.required("name")?,
            add: data.child("add").map(addresses).unwrap_or_default(),
            rem: data.child("rem").map(addresses).unwrap_or_default(),
            new_name: data.child("chg").and_then(|c| c.text_of("name")),
        }),
    }
}

/// RFC 3915's `<rgp:update><rgp:restore op="…">` in a domain update's
/// `<extension>`, if there is one.
fn restore(extension: Option<&X>) -> Result<Option<Restore>, Refusal> {
    let Some(update) = extension
        .into_iter()
        .flat_map(|e| e.children.iter())
        .find(|x| x.ns == RGP_NS && x.name == "update")
    else {
        return Ok(None);
    };
    let restore = update
        .child("restore")
        .ok_or_else(|| missing("<rgp:restore> in <rgp:update>"))?;
    match restore.attr("op") {
        Some("request") => Ok(Some(Restore::Request)),
        Some("report") => {
            let report = restore
                .child("report")
                .ok_or_else(|| missing("<rgp:report> in <rgp:restore op=\"report\">"))?;
            Ok(Some(Restore::Report(Box::new(rgp_report(report)?))))
        }
        _ => Err(syntax(
            "<rgp:restore> needs op=\"request\" or op=\"report\"",
        )),
    }
}

/// An element's text with its descendants' (`preData` and `postData` may
/// hold XML as well as free text).
fn deep_text(x: &X) -> String {
    fn gather(x: &X, out: &mut String) {
        let mut pieces = x.pieces.iter().peekable();
        for i in 0..=x.children.len() {
            while let Some((_, t)) = pieces.next_if(|(at, _)| *at == i) {
                out.push_str(t);
            }
            if let Some(c) = x.children.get(i) {
                gather(c, out);
            }
        }
    }
    let mut out = String::new();
    gather(x, &mut out);
    out.trim().to_string()
}

fn rgp_report(r: &X) -> Result<Report, Refusal> {
    let data = |name: &str| {
        r.child(name)
            .map(deep_text)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| missing(&format!("<rgp:{name}> in <rgp:report>")))
    };
    let statements: Vec<String> = r.all("statement").map(deep_text).collect();
    if statements.is_empty() {
        return Err(missing("<rgp:statement> in <rgp:report>"));
    }
    if statements.len() > 2 {
        return Err(syntax("<rgp:report> holds at most two <rgp:statement>"));
    }
    Ok(Report {
        pre_data: data("preData")?,
        post_data: data("postData")?,
        del_time: data("delTime")?,
        res_time: data("resTime")?,
        res_reason: data("resReason")?,
        statements,
        other: r.child("other").map(deep_text).filter(|t| !t.is_empty()),
    })
}

fn contact_fields(data: &X) -> ContactFields {
    let postal = data.child("postalInfo");
    let addr = postal.and_then(|p| p.child("addr"));
    ContactFields {
        name: postal.and_then(|p| p.text_of("name")),
        org: postal.and_then(|p| p.text_of("org")),
        street: addr.map(|a| a.all("street").map(|s| s.text.trim().to_string()).collect()),
        city: addr.and_then(|a| a.text_of("city")),
        sp: addr.and_then(|a| a.text_of("sp")),
        pc: addr.and_then(|a| a.text_of("pc")),
        cc: addr.and_then(|a| a.text_of("cc")),
        voice: data.text_of("voice"),
        fax: data.text_of("fax"),
        email: data.text_of("email"),
        auth: data
            .child("authInfo")
            .map(|a| a.text_of("pw").unwrap_or_default()),
    }
}

/// XML text being written: elements with escaped text and attributes in
/// double quotes.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// `<tag a="v">`.
    pub fn open(&mut self, tag: &str, attrs: &[(&str, &str)]) -> &mut Writer {
        self.out.push('<');
        self.out.push_str(tag);
        for (k, v) in attrs {
            self.out.push_str(&format!(" {k}=\"{}\"", escape(*v)));
        }
        self.out.push('>');
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Writer {
        self.out.push_str(&format!("</{tag}>"));
        self
    }

    /// `<tag a="v"/>`.
    pub fn empty(&mut self, tag: &str, attrs: &[(&str, &str)]) -> &mut Writer {
        self.open(tag, attrs);
        self.out.pop();
        self.out.push_str("/>");
        self
    }

    /// `<tag a="v">text</tag>`.
    pub fn text(&mut self, tag: &str, attrs: &[(&str, &str)], text: &str) -> &mut Writer {
        self.open(tag, attrs);
        self.out.push_str(&escape(text));
        self.close(tag)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

const PROLOG: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>";

/// RFC 5730's text for a result code.
pub fn result_text(code: u16) -> &'static str {
    match code {
        1000 => "Command completed successfully",
        1001 => "Command completed successfully; action pending",
        1300 => "Command completed successfully; no messages",
        1301 => "Command completed successfully; ack to dequeue",
        1500 => "Command completed successfully; ending session",
        2000 => "Unknown command",
        2001 => "Command syntax error",
        2002 => "Command use error",
        2003 => "Required parameter missing",
        2004 => "Parameter value range error",
        2005 => "Parameter value syntax error",
        2100 => "Unimplemented protocol version",
        2101 => "Unimplemented command",
        2102 => "Unimplemented option",
        2103 => "Unimplemented extension",
        2106 => "Object is not eligible for transfer",
        2200 => "Authentication error",
        2201 => "Authorization error",
        2202 => "Invalid authorization information",
        2300 => "Object pending transfer",
        2301 => "Object not pending transfer",
        2302 => "Object exists",
        2303 => "Object does not exist",
        2304 => "Object status prohibits operation",
        2305 => "Object association prohibits operation",
        2306 => "Parameter value policy error",
        2307 => "Unimplemented object service",
        2400 => "Command failed",
        2500 => "Command failed; server closing connection",
        2501 => "Authentication error; server closing connection",
        2502 => "Session limit exceeded; server closing connection",
        _ => "Command failed",
    }
}

/// The message queue part of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgQ {
    pub count: i64,
    pub id: i64,
    /// `qDate` and `msg`, for a poll request's answer.
    pub message: Option<(String, String)>,
}

/// A response, to be written.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub code: u16,
    /// Why, beside the code's text (in `extValue`'s `reason`).
    pub reason: Option<String>,
    pub msg_q: Option<MsgQ>,
    /// `resData`'s content, written already.
    pub res_data: Option<String>,
    /// `extension`'s content, written already.
    pub extension: Option<String>,
    pub cl_trid: Option<String>,
    pub sv_trid: String,
}

/// Writes `a` as an EPP response document.
pub fn response(a: &Answer) -> String {
    let mut w = Writer::new();
    w.out.push_str(PROLOG);
    let code = a.code.to_string();
    w.open("epp", &[("xmlns", EPP_NS)]).open("response", &[]);
    w.open("result", &[("code", &code)])
        .text("msg", &[], result_text(a.code));
    if let Some(reason) = &a.reason {
        w.open("extValue", &[])
            .open("value", &[("xmlns:epp", EPP_NS)])
            .empty("epp:undef", &[])
            .close("value")
            .text("reason", &[], reason)
            .close("extValue");
    }
    w.close("result");
    if let Some(q) = &a.msg_q {
        let (count, id) = (q.count.to_string(), q.id.to_string());
        let attrs = [("count", count.as_str()), ("id", id.as_str())];
        match &q.message {
            None => {
                w.empty("msgQ", &attrs);
            }
            Some((date, msg)) => {
                w.open("msgQ", &attrs)
                    .text("qDate", &[], date)
                    .text("msg", &[], msg)
                    .close("msgQ");
            }
        }
    }
    if let Some(data) = &a.res_data {
        w.open("resData", &[]);
        w.out.push_str(data);
        w.close("resData");
    }
    if let Some(ext) = &a.extension {
        w.open("extension", &[]);
        w.out.push_str(ext);
        w.close("extension");
    }
    w.open("trID", &[]);
    if let Some(t) = &a.cl_trid {
        w.text("clTRID", &[], t);
    }
    w.text("svTRID", &[], &a.sv_trid)
        .close("trID")
        .close("response")
        .close("epp");
    w.finish()
}

/// The greeting: the server's name and time, and what it serves.
pub fn greeting(sv_id: &str, sv_date: &str) -> String {
    let mut w = Writer::new();
    w.out.push_str(PROLOG);
    w.open("epp", &[("xmlns", EPP_NS)])
        .open("greeting", &[])
        .text("svID", &[], sv_id)
        .text("svDate", &[], sv_date)
        .open("svcMenu", &[])
        .text("version", &[], "1.0")
        .text("lang", &[], "en");
    for uri in [DOMAIN_NS, CONTACT_NS, HOST_NS] {
        w.text("objURI", &[], uri);
    }
    w.open("svcExtension", &[])
        .text("extURI", &[], RGP_NS)
        .close("svcExtension")
        .close("svcMenu")
        .open("dcp", &[])
        .open("access", &[])
        .empty("all", &[])
        .close("access")
        .open("statement", &[])
        .open("purpose", &[])
        .empty("admin", &[])
        .empty("prov", &[])
        .close("purpose")
        .open("recipient", &[])
        .empty("ours", &[])
        .close("recipient")
        .open("retention", &[])
        .empty("stated", &[])
        .close("retention")
        .close("statement")
        .close("dcp")
        .close("greeting")
        .close("epp");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(inner: &str) -> Result<Request, Refusal> {
        let doc = format!(
            "<?xml version=\"1.0\"?><epp xmlns=\"{EPP_NS}\"><command>{inner}<clTRID>abc-1</clTRID></command></epp>"
        );
        parse(doc.as_bytes())
    }

    #[test]
    fn a_check_under_any_prefix_is_read_with_its_names() {
        let got = cmd(&format!(
            "<check><d:check xmlns:d=\"{DOMAIN_NS}\"><d:name>a.com</d:name><d:name>b.net</d:name></d:check></check>"
        ))
        .unwrap();
        assert_eq!(
            got,
            Request::Command {
                command: Box::new(Command::Check(
                    Object::Domain,
                    vec!["a.com".into(), "b.net".into()]
                )),
                cl_trid: Some("abc-1".into())
            }
        );
    }

    #[test]
    fn refusals_carry_their_code_and_the_client_transaction_id() {
        let r = cmd(&format!(
            "<info><domain:info xmlns:domain=\"{DOMAIN_NS}\"/></info>"
        ))
        .unwrap_err();
        assert_eq!((r.code, r.cl_trid.as_deref()), (2003, Some("abc-1")));
        let r = cmd("<info><x:info xmlns:x=\"urn:other\"><x:name>a</x:name></x:info></info>")
            .unwrap_err();
        assert_eq!(r.code, 2307);
        assert_eq!(cmd("<frobnicate/>").unwrap_err().code, 2000);
        assert_eq!(parse(b"<epp><hello/>").unwrap_err().code, 2001);
        let dtd =
            format!("<!DOCTYPE epp [<!ENTITY x \"y\">]><epp xmlns=\"{EPP_NS}\"><hello/></epp>");
        assert_eq!(parse(dtd.as_bytes()).unwrap_err().code, 2001);
    }

    #[test]
    fn rfc_3915s_restore_report_is_read_with_every_field() {
        let got = cmd(&format!(
            "<update><domain:update xmlns:domain=\"{DOMAIN_NS}\"><domain:name>example.com</domain:name>\
             <domain:chg/></domain:update></update><extension><rgp:update xmlns:rgp=\"{RGP_NS}\">\
             <rgp:restore op=\"report\"><rgp:report><rgp:preData>Pre-delete data.</rgp:preData>\
             <rgp:postData><x:d xmlns:x=\"urn:x\">Post-restore</x:d> data.</rgp:postData>\
             <rgp:delTime>2003-07-10T22:00:00.0Z</rgp:delTime><rgp:resTime>2003-07-20T22:00:00.0Z</rgp:resTime>\
             <rgp:resReason>Registrant error.</rgp:resReason><rgp:statement>One.</rgp:statement>\
             <rgp:statement>Two.</rgp:statement><rgp:other>More.</rgp:other></rgp:report>\
             </rgp:restore></rgp:update></extension>"
        ))
        .unwrap();
        let Request::Command { command, .. } = got else {
            panic!("not a command: {got:?}");
        };
        let Command::DomainUpdate(u) = *command else {
            panic!("not a domain update: {command:?}");
        };
        assert!(!u.changes());
        let want = Report {
            pre_data: "Pre-delete data.".into(),
            post_data: "Post-restore data.".into(),
            del_time: "2003-07-10T22:00:00.0Z".into(),
            res_time: "2003-07-20T22:00:00.0Z".into(),
            res_reason: "Registrant error.".into(),
            statements: vec!["One.".into(), "Two.".into()],
            other: Some("More.".into()),
        };
        assert_eq!(u.restore, Some(Restore::Report(Box::new(want))));
        assert!(greeting("x", "y").contains(&format!(
            "<svcExtension><extURI>{RGP_NS}</extURI></svcExtension></svcMenu>"
        )));
    }

    #[test]
    fn an_answer_is_written_as_the_rfc_examples_are() {
        let text = response(&Answer {
            code: 1000,
            cl_trid: Some("a<b".into()),
            sv_trid: "S-1".into(),
            ..Answer::default()
        });
        assert!(text.contains("<epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><response><result code=\"1000\"><msg>Command completed successfully</msg></result>"));
        assert!(text.contains("<clTRID>a&lt;b</clTRID><svTRID>S-1</svTRID>"));
        assert!(matches!(parse(greeting("x", "y").as_bytes()), Err(r) if r.code == 2001));
    }
}
