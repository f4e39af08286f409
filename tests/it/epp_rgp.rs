//! The domain lifecycle on the EPP face: RFC 3915's RGP status in domain
//! info, the restore request and report through domain update (driven by
//! `instant-epp`'s rgp extension), and the poll messages the lifecycle's
//! steps leave (read as raw XML, which the client library does not parse).

use chrono::{DateTime, Utc};
use instant_epp::client::RustlsConnector;
use instant_epp::domain::update::DomainChangeInfo;
use instant_epp::domain::{DomainInfo, DomainUpdate};
use instant_epp::extensions::rgp::report::{RgpRestoreReport, Update as ReportUpdate};
use instant_epp::extensions::rgp::request::{RgpRequestResponse, RgpRestoreRequest, Update};
use instant_epp::extensions::rgp::RgpStatus;
use instant_epp::login::Login;
use instant_epp::poll::Ack;
use instant_epp::response::ResultCode;
use instant_epp::EppClient;
use serde_json::{json, Value};

use crate::epp::{code, connect, epp_customer, registered, set_rules, start, PASSWORD};
use crate::support::Server;

const RGP: &str = "urn:ietf:params:xml:ns:rgp-1.0";

type Client = EppClient<RustlsConnector>;

/// A session of `name`, logged in naming RFC 3915's extension or not.
async fn session(s: &Server, port: u16, name: &str, rgp: bool) -> Client {
    let mut c = connect(s, port).await;
    let ext = [RGP];
    let uris = rgp.then_some(&ext[..]);
    let r = c
        .transact(&Login::new(name, PASSWORD, None, uris), "login-r")
        .await
        .expect("login");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    c
}

fn epp(inner: &str, cl_trid: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><command>{inner}\
         <clTRID>{cl_trid}</clTRID></command></epp>"
    )
}

/// A domain info's answer, as XML.
async fn info_xml(c: &mut Client, name: &str) -> String {
    let inner = format!(
        "<info><domain:info xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\">\
         <domain:name>{name}</domain:name></domain:info></info>"
    );
    c.transact_xml(&epp(&inner, "inf-x")).await.expect("info")
}

/// The domain update RFC 3915 extends: a name and an empty `<chg/>`.
fn bare_update(name: &str) -> DomainUpdate<'_> {
    let mut u = DomainUpdate::new(name);
    u.info(DomainChangeInfo {
        registrant: None,
        auth_info: None,
    });
    u
}

/// The RGP status domain info reports, through the client's rgp extension.
async fn rgp_status(c: &mut Client, name: &str) -> Vec<RgpStatus> {
    let ext = Update {
        data: RgpRestoreRequest::default(),
    };
    let r = c
        .transact((&DomainInfo::new(name, None), &ext), "inf-rgp")
        .await
        .expect("info");
    match r.extension {
        Some(e) => match e.data {
            RgpRequestResponse::Info(i) => i.rgp_status,
            other => panic!("not an infData: {other:?}"),
        },
        None => Vec::new(),
    }
}

/// Every message in the queue, oldest first, each acknowledged once read.
async fn drain(c: &mut Client) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let xml = c
            .transact_xml(&epp("<poll op=\"req\"/>", "poll-x"))
            .await
            .expect("poll");
        if xml.contains("<result code=\"1300\">") {
            return out;
        }
        let id = xml
            .split("<msgQ count=\"")
            .nth(1)
            .and_then(|rest| rest.split(" id=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no msgQ id in {xml}"))
            .to_string();
        c.transact(&Ack { message_id: &id }, "ack-x")
            .await
            .expect("ack");
        out.push(xml);
    }
    panic!("the queue did not empty");
}

/// Sends the command `inner` and checks it is refused with `code`, for a
/// reason that names `needle`.
async fn refused(c: &mut Client, inner: &str, code: u16, needle: &str) {
    let xml = c.transact_xml(&epp(inner, "bad-1")).await.expect("answer");
    assert!(xml.contains(&format!("<result code=\"{code}\">")), "{xml}");
    assert!(xml.contains(needle), "{xml}");
}

/// The one message that contains every one of `needles`.
fn message<'a>(all: &'a [String], needles: &[&str]) -> &'a str {
    let found: Vec<&String> = all
        .iter()
        .filter(|m| needles.iter().all(|n| m.contains(n)))
        .collect();
    assert_eq!(found.len(), 1, "{needles:?} in {all:#?}");
    found[0]
}

fn restore_request() -> Update<RgpRestoreRequest<'static>> {
    Update {
        data: RgpRestoreRequest::default(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_domain_in_redemption_is_restored_after_review_and_its_report_is_read_first() {
    let (s, port) = start(&["--test-clock", "--epp-wait-ms", "0"]);
    let token = epp_customer(&s, "rita");
    let mut c = session(&s, port, "rita", true).await;
    let mut plain = session(&s, port, "rita", false).await;
    assert!(c
        .xml_greeting()
        .contains(&format!("<extURI>{RGP}</extURI>")));
    registered(&s, &mut c, "lapse.com", "auth-1234").await;

    // Active: no RGP status, and a restore is refused with the reason.
    assert!(rgp_status(&mut c, "lapse.com").await.is_empty());
    let active = c
        .transact((&bare_update("lapse.com"), &restore_request()), "rs-0")
        .await;
    assert_eq!(code(active), ResultCode::ObjectStatusProhibitsOperation);
    let restore = restore_xml("lapse.com", "request");
    refused(&mut c, &restore, 2304, "only a domain in redemption").await;

    // A year and a grace period later: redemption.
    s.advance("396d");
    assert_eq!(
        rgp_status(&mut c, "lapse.com").await,
        [RgpStatus::RedemptionPeriod]
    );
    let xml = info_xml(&mut c, "lapse.com").await;
    assert!(
        xml.contains(
            "<extension><rgp:infData xmlns:rgp=\"urn:ietf:params:xml:ns:rgp-1.0\">\
             <rgp:rgpStatus s=\"redemptionPeriod\"/></rgp:infData></extension>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<domain:status s=\"pendingDelete\"/>"),
        "{xml}"
    );
    // A session that did not name the extension gets no RGP data.
    let xml = info_xml(&mut plain, "lapse.com").await;
    assert!(!xml.contains("<extension>"), "{xml}");
    assert!(
        xml.contains("<domain:status s=\"pendingDelete\"/>"),
        "{xml}"
    );

    // A report with no restore waiting is refused.
    let early = c
        .transact((&bare_update("lapse.com"), &report("early")), "rp-0")
        .await;
    assert_eq!(code(early), ResultCode::ObjectStatusProhibitsOperation);

    // The request goes to review: 1001, pendingRestore.
    let r = c
        .transact((&bare_update("lapse.com"), &restore_request()), "rs-1")
        .await
        .expect("restore request");
    assert_eq!(
        r.result.code,
        ResultCode::CommandCompletedSuccessfullyActionPending
    );
    match r.extension.map(|e| e.data) {
        Some(RgpRequestResponse::Update(u)) => {
            assert_eq!(u.rgp_status, [RgpStatus::PendingRestore])
        }
        other => panic!("no upData: {other:?}"),
    }
    assert_eq!(
        rgp_status(&mut c, "lapse.com").await,
        [RgpStatus::PendingRestore]
    );

    // The report is recorded on the request in review.
    let r = c
        .transact(
            (&bare_update("lapse.com"), &report("Registrant error.")),
            "rp-1",
        )
        .await
        .expect("report");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    let waiting = s
        .get(
            "/api/v1/requests?operation=restore&state=review",
            &s.operator,
        )
        .json();
    let id = waiting["items"][0]["id"]
        .as_i64()
        .expect("a restore in review");
    let detail = s.request(&s.operator, id);
    let notes: Vec<&str> = detail["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .filter_map(|a| a["text"].as_str())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("Reason: Registrant error.")
            && n.contains("Before deletion: registered to rita")
            && n.contains("Statement: I have not restored it to use it myself")),
        "{notes:?}"
    );

    // The operator authorises it; the restore ends and is polled with
    // panData naming the command that asked for it.
    let a = s.post(
        &format!("/api/v1/requests/{id}/authorise"),
        &s.operator,
        json!({}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    s.tick();
    assert!(rgp_status(&mut c, "lapse.com").await.is_empty());
    let xml = info_xml(&mut c, "lapse.com").await;
    assert!(xml.contains("<domain:status s=\"ok\"/>"), "{xml}");
    let all = drain(&mut c).await;
    let restored = message(&all, &["Domain restore successful"]);
    assert!(
        restored.contains("<domain:name paResult=\"1\">lapse.com</domain:name>"),
        "{restored}"
    );
    assert!(restored.contains("<clTRID>rs-1</clTRID>"), "{restored}");
    // The lifecycle's steps are readable messages naming the domain.
    let expired = message(&all, &["<msg>lapse.com: Domain expired on"]);
    assert!(!expired.contains("<resData>"), "{expired}");
    message(&all, &["<msg>lapse.com: Domain is in redemption"]);
    assert_eq!(s.get("/api/v1/notification", &token).status, 204);
}

fn restore_xml(name: &str, op: &str) -> String {
    format!(
        "<update><domain:update xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\">\
         <domain:name>{name}</domain:name><domain:chg/></domain:update></update>\
         <extension><rgp:update xmlns:rgp=\"{RGP}\"><rgp:restore op=\"{op}\"/></rgp:update></extension>"
    )
}

fn report(reason: &'static str) -> ReportUpdate<RgpRestoreReport<'static>> {
    let at = |t: &str| t.parse::<DateTime<Utc>>().expect("a time");
    ReportUpdate {
        data: RgpRestoreReport::new(
            "registered to rita",
            "registered to rita again",
            at("2027-12-07T00:00:00Z"),
            at("2028-01-10T00:00:00Z"),
            reason,
            &["I have not restored it to use it myself", "This is true"],
            "nothing else",
        ),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_report_missing_its_reason_or_with_a_bad_time_changes_nothing() {
    let (s, port) = start(&["--test-clock", "--epp-wait-ms", "0"]);
    epp_customer(&s, "remy");
    let mut c = session(&s, port, "remy", true).await;
    let body = |reason: &str, del: &str| {
        format!(
            "<update><domain:update xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\">\
             <domain:name>x.com</domain:name><domain:chg/></domain:update></update>\
             <extension><rgp:update xmlns:rgp=\"{RGP}\"><rgp:restore op=\"report\"><rgp:report>\
             <rgp:preData>a</rgp:preData><rgp:postData>b</rgp:postData>\
             <rgp:delTime>{del}</rgp:delTime><rgp:resTime>2028-01-10T00:00:00.0Z</rgp:resTime>\
             {reason}<rgp:statement>s</rgp:statement></rgp:report></rgp:restore></rgp:update></extension>"
        )
    };
    registered(&s, &mut c, "x.com", "auth-1234").await;
    let missing = body("", "2027-12-07T00:00:00Z");
    refused(&mut c, &missing, 2003, "resReason").await;
    let bad_time = body("<rgp:resReason>r</rgp:resReason>", "yesterday");
    refused(&mut c, &bad_time, 2005, "delTime").await;
    refused(&mut c, &restore_xml("x.com", "undo"), 2001, "op=").await;
}

/// A domain's expiry as the JSON API shows it.
fn expiry(s: &Server, token: &str, name: &str) -> String {
    let d: Value = s.get(&format!("/api/v1/domains/{name}"), token).json();
    d["expires_at"].as_str().expect("an expiry").to_string()
}

#[tokio::test(flavor = "current_thread")]
async fn auto_renewals_and_a_deletion_are_each_polled() {
    let (s, port) = start(&["--test-clock", "--epp-wait-ms", "0"]);
    let token = epp_customer(&s, "otto");
    set_rules(
        &s,
        json!([{"pattern": "refused.com", "operation": "renew", "outcome": "registry_error"}]),
    );
    let mut c = session(&s, port, "otto", true).await;
    for name in ["kept.com", "refused.com", "gone.com"] {
        registered(&s, &mut c, name, "auth-1234").await;
    }
    for name in ["kept.com", "refused.com"] {
        let body = json!({ "auto_renew": true }).to_string();
        let path = format!("/api/v1/domains/{name}");
        let a = s.call("PATCH", &path, Some(&token), Some(&body));
        assert_eq!(a.status, 200, "{}", a.text);
    }
    drain(&mut c).await;

    // Past gone.com's deletion (its expiry, grace, redemption, pending delete).
    s.advance("431d");
    let all = drain(&mut c).await;
    let renewed = message(
        &all,
        &["<msg>kept.com: Domain renewal successful (auto-renewal)</msg>"],
    );
    let ex = expiry(&s, &token, "kept.com");
    assert!(
        renewed.contains(&format!(
            "<domain:renData xmlns:domain=\"urn:ietf:params:xml:ns:domain-1.0\">\
             <domain:name>kept.com</domain:name><domain:exDate>{ex}</domain:exDate></domain:renData>"
        )),
        "{renewed}"
    );
    let refused = message(
        &all,
        &["<msg>refused.com: Domain renewal failed (auto-renewal)</msg>"],
    );
    assert!(
        refused.contains("<domain:name paResult=\"0\">refused.com</domain:name>"),
        "{refused}"
    );
    let deleted = message(&all, &["<msg>gone.com: Domain delete successful"]);
    assert!(deleted.contains("the name is free"), "{deleted}");
    assert!(!deleted.contains("<resData>"), "{deleted}");
    message(&all, &["<msg>gone.com: Domain is pending deletion</msg>"]);
    let info = info_xml(&mut c, "gone.com").await;
    assert!(info.contains("<result code=\"2303\">"), "{info}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_restore_is_answered_at_once_though_its_review_waits_for_an_operator() {
    let (s, port) = start(&["--test-clock", "--epp-wait-ms", "60000"]);
    let token = epp_customer(&s, "rosa");
    let r = s.order(&token, "wait.com", "create", crate::support::owner());
    s.tick();
    let id = r["id"].as_i64().expect("a request id");
    assert_eq!(s.request(&token, id)["state"], "finished");
    s.advance("396d");
    let mut c = session(&s, port, "rosa", true).await;
    let asked = std::time::Instant::now();
    let r = c
        .transact((&bare_update("wait.com"), &restore_request()), "rs-w")
        .await
        .expect("restore request");
    assert_eq!(
        r.result.code,
        ResultCode::CommandCompletedSuccessfullyActionPending
    );
    // Nothing but an operator moves a request in review: waiting out
    // --epp-wait-ms would only hold the client up.
    assert!(asked.elapsed() < std::time::Duration::from_secs(30));
}
