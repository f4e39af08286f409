//! The EPP face, driven by a third-party EPP client (`instant-epp`) that
//! trusts the CA served at `/api/v1/epp/ca.pem`, and by a raw TLS
//! connection for what no client library sends (a bad frame length, XML
//! that is not well-formed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use instant_epp::client::RustlsConnector;
use instant_epp::domain::update::DomainChangeInfo;
use instant_epp::domain::{
    DomainAuthInfo, DomainCheck, DomainCreate, DomainDelete, DomainInfo, DomainRenew, DomainUpdate,
    HostInfo, HostObj, Period, PeriodLength,
};
use instant_epp::login::Login;
use instant_epp::poll::{Ack, Poll};
use instant_epp::response::ResultCode;
use instant_epp::EppClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::support::Server;

pub(crate) const PASSWORD: &str = "s3cret-pw";

pub(crate) fn years(n: u8) -> Period {
    Period::Years(PeriodLength::new(n).expect("a period"))
}

/// A server with the EPP face on a free port, and that port. Servers on
/// the real clock wait long for a request (`--epp-wait-ms`): a command is
/// answered as soon as its request ends, so a busy machine does not turn
/// a 1000 into a 1001.
pub(crate) fn start(args: &[&str]) -> (Server, u16) {
    let mut all = vec!["--epp-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut s = Server::start_with(&all);
    let line = s.stdout_line();
    let port = line
        .strip_prefix("epp listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected second line {line:?}"));
    (s, port)
}

/// A TLS client configuration trusting only the served test CA.
fn trusting(s: &Server) -> Arc<rustls::ClientConfig> {
    let a = s.call("GET", "/api/v1/epp/ca.pem", None, None);
    assert_eq!(a.status, 200, "{}", a.text);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(a.text.as_bytes()) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA");
    }
    client_config(roots)
}

/// A TLS client configuration (ring) trusting `roots`.
fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

pub(crate) async fn connect(s: &Server, port: u16) -> EppClient<RustlsConnector> {
    let connector = RustlsConnector::builder(("localhost".to_string(), port))
        .expect("server name")
        .build_with_config(trusting(s));
    EppClient::new(connector, "regdesk".into(), Duration::from_secs(20))
        .await
        .expect("connect and greeting")
}

/// Sets the simulated registry's outcome rules.
pub(crate) fn set_rules(s: &Server, rules: serde_json::Value) {
    let body = json!({ "rules": rules }).to_string();
    let a = s.call("PUT", "/api/v1/sim/rules", Some(&s.operator), Some(&body));
    assert_eq!(a.status, 200, "{}", a.text);
}

/// A customer with an EPP password; its API token.
pub(crate) fn epp_customer(s: &Server, name: &str) -> String {
    let (_, token) = s.customer(name);
    let body = json!({ "password": PASSWORD }).to_string();
    let a = s.call("PUT", "/api/v1/me/epp-password", Some(&token), Some(&body));
    assert_eq!(a.status, 204, "{}", a.text);
    token
}

async fn logged_in(s: &Server, port: u16, name: &str) -> EppClient<RustlsConnector> {
    let mut c = connect(s, port).await;
    let r = c
        .transact(&Login::new(name, PASSWORD, None, None), "login-1")
        .await
        .expect("login");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    c
}

pub(crate) fn code<T: std::fmt::Debug>(r: Result<T, instant_epp::Error>) -> ResultCode {
    match r {
        Ok(_) => ResultCode::CommandCompletedSuccessfully,
        Err(instant_epp::Error::Command(status)) => status.result.code,
        Err(other) => panic!("not an EPP answer: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn login_refuses_a_wrong_password_and_closes_after_the_third() {
    let (s, port) = start(&["--test-clock"]);
    let ana = epp_customer(&s, "ana");
    let (_, bob) = s.customer("b");
    // A password RFC 5730 does not allow, and a name no clID can be.
    let short = json!({ "password": "12345" }).to_string();
    let a = s.call("PUT", "/api/v1/me/epp-password", Some(&bob), Some(&short));
    assert_eq!(a.status, 422, "{}", a.text);
    let ok = json!({ "password": PASSWORD }).to_string();
    let a = s.call("PUT", "/api/v1/me/epp-password", Some(&bob), Some(&ok));
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("3 to 16"), "{}", a.text);

    // An operator sets any account's; a customer only its own.
    let ana_id = s.get("/api/v1/me", &ana).json()["id"].as_i64().expect("id");
    let path = format!("/api/v1/accounts/{ana_id}/epp-password");
    let a = s.call("PUT", &path, Some(&bob), Some(&ok));
    assert_eq!(a.status, 403, "{}", a.text);
    let a = s.call("PUT", &path, Some(&s.operator), Some(&ok));
    assert_eq!(a.status, 204, "{}", a.text);

    let mut c = connect(&s, port).await;
    // Nothing but a login before a login.
    let before = c
        .transact(
            &DomainCheck {
                domains: &["a.com"],
            },
            "t-0",
        )
        .await;
    assert_eq!(code(before), ResultCode::CommandUseError);
    for attempt in 1..=3 {
        let r = c
            .transact(&Login::new("ana", "wrong-pw", None, None), "t-1")
            .await;
        let want = if attempt < 3 {
            ResultCode::AuthenticationError
        } else {
            ResultCode::AuthenticationErrorServerClosingConnection
        };
        assert_eq!(code(r), want, "attempt {attempt}");
    }
    // The session is closed: the next command finds no connection.
    let after = c
        .transact(&Login::new("ana", PASSWORD, None, None), "t-2")
        .await;
    assert!(after.is_err());

    // The right password works in a new session, and a newPW changes it.
    let mut c = connect(&s, port).await;
    let r = c
        .transact(&Login::new("ana", PASSWORD, Some("n3w-pass"), None), "t-3")
        .await
        .expect("login with newPW");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    let mut c = connect(&s, port).await;
    let old = c
        .transact(&Login::new("ana", PASSWORD, None, None), "t-4")
        .await;
    assert_eq!(code(old), ResultCode::AuthenticationError);
    let new = c
        .transact(&Login::new("ana", "n3w-pass", None, None), "t-5")
        .await;
    assert_eq!(code(new), ResultCode::CommandCompletedSuccessfully);
}

#[tokio::test(flavor = "current_thread")]
async fn a_domain_is_checked_created_read_renewed_updated_and_deleted() {
    let (s, port) = start(&["--epp-wait-ms", "20000"]);
    let token = epp_customer(&s, "carla");
    let mut c = logged_in(&s, port, "carla").await;

    let r = c
        .transact(
            &DomainCheck {
                domains: &["fresh.com", "not a name"],
            },
            "chk-1",
        )
        .await
        .expect("check");
    let cds = &r.res_data().expect("chkData").list;
    assert!(cds[0].name.available);
    assert!(!cds[1].name.available);
    assert!(cds[1].reason.is_some());

    let ns = [HostInfo::Obj(HostObj {
        name: "ns1.example.net".into(),
    })];
    let create = DomainCreate::new("fresh.com", years(2), Some(&ns), None, "", None);
    let r = c.transact(&create, "cre-1").await.expect("create");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    assert_eq!(r.tr_ids.client_tr_id.as_deref(), Some("cre-1"));
    let cre = r.res_data().expect("creData");
    let expiry = cre.expiring_at.expect("exDate");
    assert_eq!((expiry - cre.created_at).num_days(), 730);

    let again = c.transact(&create, "cre-2").await;
    assert_eq!(code(again), ResultCode::ObjectExists);
    let r = c
        .transact(
            &DomainCheck {
                domains: &["fresh.com"],
            },
            "chk-2",
        )
        .await
        .expect("check");
    assert!(!r.res_data().unwrap().list[0].name.available);

    let r = c
        .transact(&DomainInfo::new("fresh.com", None), "inf-1")
        .await
        .expect("info");
    let info = r.res_data().expect("infData");
    assert_eq!(info.client_id, "carla");
    assert!(info
        .auth_info
        .as_ref()
        .is_some_and(|a| !a.password.is_empty()));
    // Created through EPP without the lock: the client sets it.
    let statuses: Vec<String> = info
        .statuses
        .iter()
        .flatten()
        .map(|s| format!("{s:?}"))
        .collect();
    assert_eq!(statuses, ["Ok"]);

    // Renew: the right curExpDate, a wrong one, and past ten years.
    let cur = expiry.date_naive();
    let wrong = c
        .transact(
            &DomainRenew::new("fresh.com", cur.succ_opt().unwrap(), years(1)),
            "ren-0",
        )
        .await;
    assert_eq!(code(wrong), ResultCode::ParameterValuePolicyError);
    let far = c
        .transact(&DomainRenew::new("fresh.com", cur, years(9)), "ren-1")
        .await;
    assert_eq!(code(far), ResultCode::ParameterValuePolicyError);
    let r = c
        .transact(&DomainRenew::new("fresh.com", cur, years(1)), "ren-2")
        .await
        .expect("renew");
    let renewed = r.res_data().expect("renData").expiring_at.expect("exDate");
    assert_eq!((renewed - expiry).num_days(), 365);

    let mut update = DomainUpdate::new("fresh.com");
    update.add(instant_epp::domain::update::DomainAdd {
        ns: None,
        contacts: None,
        statuses: Some(&[instant_epp::domain::Status::ClientTransferProhibited]),
    });
    let r = c.transact(&update, "upd-1").await.expect("update");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    let domain = s.get("/api/v1/domains/fresh.com", &token).json();
    assert_eq!(domain["transfer_lock"], true, "{domain}");
    let mut auth_change = DomainUpdate::new("fresh.com");
    auth_change.info(DomainChangeInfo {
        registrant: None,
        auth_info: Some(DomainAuthInfo::new("other")),
    });
    let r = c
        .transact(&auth_change, "upd-2")
        .await
        .expect("auth change");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    let domain = s.get("/api/v1/domains/fresh.com", &token).json();
    assert_eq!(domain["auth_code"], "other", "{domain}");
    // An empty one asks for a new code.
    let mut auth_new = DomainUpdate::new("fresh.com");
    auth_new.info(DomainChangeInfo {
        registrant: None,
        auth_info: Some(DomainAuthInfo::new("")),
    });
    let r = c.transact(&auth_new, "upd-3").await.expect("new auth");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    let domain = s.get("/api/v1/domains/fresh.com", &token).json();
    let made = domain["auth_code"].as_str().unwrap_or_default();
    assert!(!made.is_empty() && made != "other", "{domain}");

    // Every change went through the core as a work request.
    let requests = s.get("/api/v1/requests?domain=fresh.com", &token).json();
    let ops: Vec<&str> = requests["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops.len(), 5, "{requests}");
    let first = requests["items"][0]["id"].as_i64().unwrap();
    let history = s.request(&token, first)["history"].to_string();
    assert!(history.contains("through epp"), "{history}");

    let r = c
        .transact(&DomainDelete::new("fresh.com"), "del-1")
        .await
        .expect("delete");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    let gone = c
        .transact(&DomainInfo::new("fresh.com", None), "inf-2")
        .await;
    assert_eq!(code(gone), ResultCode::ObjectDoesNotExist);
}

#[tokio::test(flavor = "current_thread")]
async fn another_accounts_domain_is_hidden_without_its_auth_info() {
    let (s, port) = start(&["--epp-wait-ms", "20000"]);
    epp_customer(&s, "dora");
    epp_customer(&s, "emil");
    let mut dora = logged_in(&s, port, "dora").await;
    let create = DomainCreate::new("doras.net", years(1), None, None, "d0ra-auth", None);
    dora.transact(&create, "cre-1").await.expect("create");

    let mut emil = logged_in(&s, port, "emil").await;
    let r = emil
        .transact(&DomainInfo::new("doras.net", None), "inf-1")
        .await;
    assert_eq!(code(r), ResultCode::AuthorizationError);
    let r = emil
        .transact(&DomainInfo::new("doras.net", Some("wrong")), "inf-2")
        .await;
    assert_eq!(code(r), ResultCode::InvalidAuthorizationInformation);
    let r = emil
        .transact(&DomainInfo::new("doras.net", Some("d0ra-auth")), "inf-3")
        .await
        .expect("info with the auth info");
    let info = r.res_data().unwrap();
    assert_eq!(info.client_id, "dora");
    assert!(
        info.auth_info.is_none(),
        "the auth info goes to the sponsor only"
    );
    let renew = DomainRenew::new("doras.net", chrono::Utc::now().date_naive(), years(1));
    assert_eq!(
        code(emil.transact(&renew, "ren-1").await),
        ResultCode::AuthorizationError
    );
    assert_eq!(
        code(
            emil.transact(&DomainDelete::new("doras.net"), "del-1")
                .await
        ),
        ResultCode::AuthorizationError
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_registry_answers_1001_then_a_poll_message_with_pan_data() {
    let (s, port) = start(&["--test-clock", "--epp-wait-ms", "200"]);
    let token = epp_customer(&s, "fay");
    set_rules(
        &s,
        json!([{"pattern": "slow*", "operation": "create", "outcome": "success", "latency": "5s"}]),
    );
    let mut c = logged_in(&s, port, "fay").await;
    let create = DomainCreate::new("slow.org", years(1), None, None, "", None);
    let r = c.transact(&create, "cre-slow").await.expect("create");
    assert_eq!(
        r.result.code,
        ResultCode::CommandCompletedSuccessfullyActionPending
    );
    let sv_trid = r.tr_ids.server_tr_id.clone();

    let empty = c.transact(&Poll, "poll-0").await.expect("poll");
    assert_eq!(
        empty.result.code,
        ResultCode::CommandCompletedSuccessfullyNoMessages
    );
    s.tick();
    s.advance("6s");
    s.tick();
    let xml = c
        .transact_xml(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><command><poll op=\"req\"/>\
             <clTRID>poll-1</clTRID></command></epp>",
        )
        .await
        .expect("poll");
    assert!(xml.contains("<result code=\"1301\">"), "{xml}");
    assert!(xml.contains("<msgQ count=\"1\" id=\""), "{xml}");
    assert!(
        xml.contains("<domain:name paResult=\"1\">slow.org</domain:name>"),
        "{xml}"
    );
    assert!(xml.contains("<clTRID>cre-slow</clTRID>"), "{xml}");
    assert!(
        xml.contains(&format!("<svTRID>{sv_trid}</svTRID>")),
        "{xml}"
    );

    // The same message is the JSON face's next notification, and an ack on
    // either face acknowledges it on both.
    let n = s.get("/api/v1/notification", &token).json();
    let id = n["id"].as_i64().expect("notification id");
    assert!(xml.contains(&format!("id=\"{id}\"")), "{xml}");
    let id_text = id.to_string();
    let r = c
        .transact(
            &Ack {
                message_id: &id_text,
            },
            "ack-1",
        )
        .await
        .expect("ack");
    assert_eq!(r.message_queue().expect("msgQ").count, 0);
    assert_eq!(s.get("/api/v1/notification", &token).status, 204);
}

#[tokio::test(flavor = "current_thread")]
async fn poll_counts_the_queue_and_an_ack_on_the_json_face_counts_too() {
    let (s, port) = start(&["--epp-wait-ms", "20000"]);
    let token = epp_customer(&s, "gus");
    let mut c = logged_in(&s, port, "gus").await;
    for name in ["one.com", "two.com", "three.com"] {
        let create = DomainCreate::new(name, years(1), None, None, "", None);
        c.transact(&create, "cre-n").await.expect("create");
    }
    let r = c.transact(&Poll, "poll-1").await.expect("poll");
    assert_eq!(
        r.result.code,
        ResultCode::CommandCompletedSuccessfullyAckToDequeue
    );
    let q = r.message_queue().expect("msgQ");
    assert_eq!(q.count, 3);
    assert!(q.date.is_some());
    let first = q.id.clone();
    // Acknowledged on the JSON face: EPP sees two left.
    let a = s.call(
        "DELETE",
        &format!("/api/v1/notification/{first}"),
        Some(&token),
        None,
    );
    assert_eq!(a.status, 204, "{}", a.text);
    let r = c.transact(&Poll, "poll-2").await.expect("poll");
    let q = r.message_queue().expect("msgQ");
    assert_eq!(q.count, 2);
    assert_ne!(q.id, first);
    let r = c
        .transact(&Ack { message_id: &q.id }, "ack-1")
        .await
        .expect("ack");
    assert_eq!(r.message_queue().expect("msgQ").count, 1);
    let bad = c
        .transact(
            &Ack {
                message_id: "999999",
            },
            "ack-2",
        )
        .await;
    assert_eq!(code(bad), ResultCode::ObjectDoesNotExist);
}

/// A raw TLS connection to the listener, its greeting read.
fn raw(s: &Server, port: u16) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(trusting(s), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let greeting = read_raw(&mut tls).expect("a greeting");
    assert!(greeting.contains("<greeting>"), "{greeting}");
    tls
}

fn read_raw(r: &mut impl Read) -> std::io::Result<String> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize - 4];
    r.read_exact(&mut body)?;
    Ok(String::from_utf8(body).unwrap())
}

fn send_raw(w: &mut impl Write, xml: &str) {
    let mut frame = ((xml.len() + 4) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(xml.as_bytes());
    w.write_all(&frame).unwrap();
    w.flush().unwrap();
}

#[test]
fn xml_that_is_not_well_formed_is_2001_and_a_bad_frame_length_closes() {
    let (s, port) = start(&["--test-clock"]);
    let mut tls = raw(&s, port);
    send_raw(
        &mut tls,
        "<epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><hello>",
    );
    let answer = read_raw(&mut tls).unwrap();
    assert!(answer.contains("<result code=\"2001\">"), "{answer}");
    // The session stays open: a hello is answered with the greeting.
    send_raw(
        &mut tls,
        "<epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><hello/></epp>",
    );
    assert!(read_raw(&mut tls).unwrap().contains("<greeting>"));
    // An entity declaration is refused, not expanded.
    send_raw(
        &mut tls,
        "<!DOCTYPE epp [<!ENTITY x \"y\">]><epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><hello/></epp>",
    );
    assert!(read_raw(&mut tls)
        .unwrap()
        .contains("<result code=\"2001\">"));

    for header in [3u32.to_be_bytes(), (2u32 << 20).to_be_bytes()] {
        let mut tls = raw(&s, port);
        tls.write_all(&header).unwrap();
        tls.flush().unwrap();
        let mut rest = Vec::new();
        let closed = tls.read_to_end(&mut rest);
        assert!(closed.is_err() || rest.is_empty(), "{closed:?} {rest:?}");
    }
}

#[test]
fn the_test_ca_is_kept_across_a_restart() {
    let (s, _) = start(&["--test-clock"]);
    let first = s.call("GET", "/api/v1/epp/ca.pem", None, None).text;
    let mut s = s.restart();
    assert!(s.stdout_line().starts_with("epp listening on "));
    let again = s.call("GET", "/api/v1/epp/ca.pem", None, None);
    assert_eq!(again.status, 200);
    assert_eq!(again.text, first);
}

#[tokio::test(flavor = "current_thread")]
async fn contacts_and_hosts_are_objects_a_domain_names() {
    use instant_epp::contact::{
        Address, ContactCheck, ContactCreate, ContactDelete, ContactInfo, ContactUpdate, InfoType,
        PostalInfo, Voice,
    };
    use instant_epp::domain::DomainContact;
    use instant_epp::host::update::HostAdd;
    use instant_epp::host::HostUpdate;
    use instant_epp::host::{HostCheck, HostCreate, HostDelete, HostInfo as HostInfoCmd};

    let (s, port) = start(&["--epp-wait-ms", "20000"]);
    let token = epp_customer(&s, "hana");
    epp_customer(&s, "ivan");
    let mut c = logged_in(&s, port, "hana").await;

    // RFC 5733's optional fields (street, voice, fax) may be left out.
    let address = Address::new(&[], "Paris", None, None, "FR".parse().unwrap());
    let postal = PostalInfo::new(InfoType::Local, "Hana Ito", None, address);
    let create = ContactCreate::new("hana-1", "hana@example.net", postal, None, "");
    let r = c.transact(&create, "cc-1").await.expect("contact create");
    assert_eq!(r.res_data().expect("creData").id, "hana-1");
    assert_eq!(
        code(c.transact(&create, "cc-2").await),
        ResultCode::ObjectExists
    );
    let r = c
        .transact(
            &ContactCheck {
                contact_ids: &["hana-1", "free-1", "x"],
            },
            "ck-1",
        )
        .await
        .expect("contact check");
    let avail: Vec<bool> = r
        .res_data()
        .unwrap()
        .list
        .iter()
        .map(|c| c.id.available)
        .collect();
    assert_eq!(avail, [false, true, false]);
    let r = c
        .transact(&ContactInfo::new("hana-1", ""), "ci-1")
        .await
        .expect("contact info");
    let info = r.res_data().unwrap();
    assert_eq!(
        (info.email.as_str(), info.client_id.as_str()),
        ("hana@example.net", "hana")
    );

    let addr: [std::net::IpAddr; 1] = ["192.0.2.1".parse().unwrap()];
    let r = c
        .transact(&HostCreate::new("ns1.hana.net", Some(&addr)), "hc-1")
        .await
        .expect("host create");
    assert_eq!(r.result.code, ResultCode::CommandCompletedSuccessfully);
    let r = c
        .transact(
            &HostCheck {
                hosts: &["ns1.hana.net", "ns2.hana.net"],
            },
            "hk-1",
        )
        .await
        .expect("host check");
    let avail: Vec<bool> = r
        .res_data()
        .unwrap()
        .list
        .iter()
        .map(|h| h.name.available)
        .collect();
    assert_eq!(avail, [false, true]);
    let r = c
        .transact(&HostInfoCmd::new("ns1.hana.net"), "hi-1")
        .await
        .expect("host info");
    assert_eq!(r.res_data().unwrap().addresses, addr);

    // A domain whose registrant and contacts are the contact objects.
    let ns = [HostInfo::Obj(HostObj {
        name: "ns1.hana.net".into(),
    })];
    let contacts = [DomainContact {
        contact_type: "tech".into(),
        id: "hana-1".into(),
    }];
    let create = DomainCreate::new(
        "hana.net",
        years(1),
        Some(&ns),
        Some("hana-1"),
        "",
        Some(&contacts),
    );
    c.transact(&create, "dc-1").await.expect("domain create");
    let r = c
        .transact(&DomainInfo::new("hana.net", None), "di-1")
        .await
        .expect("domain info");
    let info = r.res_data().unwrap();
    assert_eq!(info.registrant.as_deref(), Some("hana-1"));
    let domain = s.get("/api/v1/domains/hana.net", &token).json();
    assert_eq!(
        domain["contacts"]["owner"]["email"], "hana@example.net",
        "{domain}"
    );

    // Changes: a contact's details, a host's addresses, a domain's contacts.
    let mut change = ContactUpdate::new("hana-1");
    let address = Address::new(
        &["1 Rue"],
        "Lyon",
        None,
        Some("69001"),
        "FR".parse().unwrap(),
    );
    let postal = PostalInfo::new(InfoType::Local, "Hana Ito", None, address);
    change.set_info(
        "hana@example.org",
        postal,
        Voice::new("+33.123456789"),
        "pw-hana-1",
    );
    c.transact(&change, "cu-1").await.expect("contact update");
    let r = c
        .transact(&ContactInfo::new("hana-1", ""), "ci-3")
        .await
        .expect("info");
    let info = r.res_data().unwrap();
    assert_eq!(info.email, "hana@example.org");
    assert_eq!(info.postal_info.address.city, "Lyon");
    let mut host = HostUpdate::new("ns1.hana.net");
    let more: [std::net::IpAddr; 1] = ["2001:db8::1".parse().unwrap()];
    host.add(HostAdd {
        addresses: Some(&more),
        statuses: None,
    });
    c.transact(&host, "hu-1").await.expect("host update");
    let r = c
        .transact(&HostInfoCmd::new("ns1.hana.net"), "hi-2")
        .await
        .expect("info");
    assert_eq!(r.res_data().unwrap().addresses.len(), 2);
    let second = ContactCreate::new(
        "hana-2",
        "admin@example.net",
        PostalInfo::new(
            InfoType::Local,
            "Admin",
            None,
            Address::new(&[], "Paris", None, None, "FR".parse().unwrap()),
        ),
        None,
        "",
    );
    c.transact(&second, "cc-3").await.expect("contact create");
    let mut update = DomainUpdate::new("hana.net");
    let admin = [DomainContact {
        contact_type: "admin".into(),
        id: "hana-2".into(),
    }];
    update.add(instant_epp::domain::update::DomainAdd {
        ns: None,
        contacts: Some(&admin),
        statuses: None,
    });
    c.transact(&update, "du-1").await.expect("domain update");
    let r = c
        .transact(&DomainInfo::new("hana.net", None), "di-2")
        .await
        .expect("info");
    let contacts = format!("{:?}", r.res_data().unwrap().contacts);
    assert!(
        contacts.contains("hana-2") && contacts.contains("admin"),
        "{contacts}"
    );

    // Named by a domain, neither may go.
    assert_eq!(
        code(c.transact(&ContactDelete::new("hana-1"), "cd-1").await),
        ResultCode::ObjectAssociationProhibitsOperation
    );
    assert_eq!(
        code(c.transact(&HostDelete::new("ns1.hana.net"), "hd-1").await),
        ResultCode::ObjectAssociationProhibitsOperation
    );
    // Another account sees neither without the auth info.
    let mut other = logged_in(&s, port, "ivan").await;
    assert_eq!(
        code(
            other
                .transact(&ContactInfo::new("hana-1", ""), "ci-2")
                .await
        ),
        ResultCode::AuthorizationError
    );
    assert_eq!(
        code(other.transact(&ContactDelete::new("hana-1"), "cd-2").await),
        ResultCode::AuthorizationError
    );
}

/// A domain `name` of the session's account, made through EPP and
/// finished by a tick (the test clock is frozen), unlocked; its auth info.
pub(crate) async fn registered(
    s: &Server,
    c: &mut EppClient<RustlsConnector>,
    name: &str,
    auth: &str,
) {
    let create = DomainCreate::new(name, years(1), None, None, auth, None);
    c.transact(&create, "cre-t").await.expect("create");
    s.tick();
    let r = c
        .transact(&DomainInfo::new(name, None), "inf-t")
        .await
        .expect("info");
    assert!(!r.res_data().unwrap().client_id.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_transfer_between_accounts_is_approved_rejected_cancelled_or_approved_by_time() {
    use instant_epp::domain::transfer::DomainTransfer;

    let (s, port) = start(&["--test-clock", "--epp-wait-ms", "0"]);
    let holder_token = epp_customer(&s, "jack");
    let gainer_token = epp_customer(&s, "kira");
    let mut holder = logged_in(&s, port, "jack").await;
    let mut gainer = logged_in(&s, port, "kira").await;
    for name in ["a1.com", "r1.com", "c1.com", "t1.com"] {
        registered(&s, &mut holder, name, "auth-1234").await;
    }
    // Creating them told the holder four times (with panData, which the
    // client library does not read): acknowledged on the JSON face.
    for _ in 0..4 {
        let n = s.get("/api/v1/notification", &holder_token).json();
        let id = n["id"].as_i64().expect("a notification");
        let a = s.call(
            "DELETE",
            &format!("/api/v1/notification/{id}"),
            Some(&holder_token),
            None,
        );
        assert_eq!(a.status, 204);
    }

    let own = holder
        .transact(&DomainTransfer::new("a1.com", None, "auth-1234"), "tr-00")
        .await;
    assert_eq!(code(own), ResultCode::ObjectIsNotEligibleForTransfer);
    let wrong = gainer
        .transact(&DomainTransfer::new("a1.com", None, "nope"), "tr-0")
        .await;
    assert_eq!(code(wrong), ResultCode::InvalidAuthorizationInformation);
    let r = gainer
        .transact(&DomainTransfer::new("a1.com", None, "auth-1234"), "tr-1")
        .await
        .expect("transfer request");
    assert_eq!(
        r.result.code,
        ResultCode::CommandCompletedSuccessfullyActionPending
    );
    let trn = r.res_data().expect("trnData");
    assert_eq!(
        (
            trn.transfer_status.as_str(),
            trn.requester_id.as_str(),
            trn.ack_id.as_str()
        ),
        ("pending", "kira", "jack")
    );
    let again = gainer
        .transact(&DomainTransfer::new("a1.com", None, "auth-1234"), "tr-2")
        .await;
    assert_eq!(code(again), ResultCode::ObjectPendingTransfer);

    // The holder is told, with trnData, and sees the pending status.
    let r = holder.transact(&Poll, "p-1").await.expect("poll");
    let data = r.res_data().expect("a transfer message");
    assert!(
        matches!(data, instant_epp::poll::PollData::DomainTransfer(t) if t.transfer_status == "pending")
    );
    let r = holder
        .transact(&DomainInfo::new("a1.com", None), "i-1")
        .await
        .expect("info");
    let statuses = format!("{:?}", r.res_data().unwrap().statuses);
    assert!(statuses.contains("PendingTransfer"), "{statuses}");
    // The gaining account may not answer it; the holder approves.
    assert_eq!(
        code(
            gainer
                .transact(&DomainTransfer::approve("a1.com"), "ap-0")
                .await
        ),
        ResultCode::AuthorizationError
    );
    let r = holder
        .transact(&DomainTransfer::approve("a1.com"), "ap-1")
        .await
        .expect("approve");
    assert_eq!(r.res_data().unwrap().transfer_status, "clientApproved");
    let moved = s.get("/api/v1/domains/a1.com", &gainer_token);
    assert_eq!(moved.status, 200, "{}", moved.text);
    // The gaining account's message about its request carries the end.
    let r = gainer.transact(&Poll, "p-2").await.expect("poll");
    let data = r.res_data().expect("a transfer message");
    assert!(
        matches!(data, instant_epp::poll::PollData::DomainTransfer(t) if t.transfer_status == "clientApproved"),
        "{data:?}"
    );
    let id = r.message_queue().expect("msgQ").id.clone();
    gainer
        .transact(&Ack { message_id: &id }, "a-2")
        .await
        .expect("ack");

    // Rejected.
    gainer
        .transact(&DomainTransfer::new("r1.com", None, "auth-1234"), "tr-3")
        .await
        .expect("request");
    let r = holder
        .transact(&DomainTransfer::reject("r1.com"), "rj-1")
        .await
        .expect("reject");
    assert_eq!(r.res_data().unwrap().transfer_status, "clientRejected");
    let r = gainer
        .transact(&DomainTransfer::query("r1.com", ""), "q-1")
        .await
        .expect("query");
    assert_eq!(r.res_data().unwrap().transfer_status, "clientRejected");
    assert_eq!(s.get("/api/v1/domains/r1.com", &holder_token).status, 200);

    // Cancelled by the gaining account.
    gainer
        .transact(&DomainTransfer::new("c1.com", None, "auth-1234"), "tr-4")
        .await
        .expect("request");
    let r = gainer
        .transact(&DomainTransfer::cancel("c1.com"), "cn-1")
        .await
        .expect("cancel");
    assert_eq!(r.res_data().unwrap().transfer_status, "clientCancelled");
    assert_eq!(
        code(
            gainer
                .transact(&DomainTransfer::cancel("c1.com"), "cn-2")
                .await
        ),
        ResultCode::ObjectNotPendingTransfer
    );

    // Unanswered: approved when the days pass on the one clock.
    gainer
        .transact(&DomainTransfer::new("t1.com", None, "auth-1234"), "tr-5")
        .await
        .expect("request");
    s.advance("5d");
    s.tick();
    let r = gainer
        .transact(&DomainTransfer::query("t1.com", ""), "q-2")
        .await
        .expect("query");
    assert_eq!(r.res_data().unwrap().transfer_status, "serverApproved");
    assert_eq!(s.get("/api/v1/domains/t1.com", &gainer_token).status, 200);
}

#[tokio::test(flavor = "current_thread")]
async fn a_locked_domain_refuses_a_transfer_with_2304() {
    use instant_epp::domain::transfer::DomainTransfer;

    let (s, port) = start(&["--test-clock", "--epp-wait-ms", "0"]);
    let holder_token = epp_customer(&s, "lena");
    epp_customer(&s, "milo");
    // Ordered through the JSON face: locked by default.
    let order =
        json!({"period": 1, "contacts": {"owner": {"name": "L", "email": "l@example.net"}}});
    s.order(&holder_token, "locked.com", "create", order);
    s.tick();
    let mut holder = logged_in(&s, port, "lena").await;
    let r = holder
        .transact(&DomainInfo::new("locked.com", None), "inf-1")
        .await
        .expect("info");
    let info = r.res_data().unwrap();
    assert!(format!("{:?}", info.statuses).contains("ClientTransferProhibited"));
    let auth = info
        .auth_info
        .as_ref()
        .expect("auth info")
        .password
        .to_string();
    let mut gainer = logged_in(&s, port, "milo").await;
    let r = gainer
        .transact(&DomainTransfer::new("locked.com", None, &auth), "tr-1")
        .await;
    assert_eq!(code(r), ResultCode::ObjectStatusProhibitsOperation);
}

#[tokio::test(flavor = "current_thread")]
async fn sessions_are_bounded_per_account_and_a_silent_peer_is_closed() {
    let (s, port) = start(&[
        "--test-clock",
        "--epp-sessions-per-account",
        "1",
        "--epp-login-timeout-ms",
        "300",
        "--epp-idle-timeout-ms",
        "400",
    ]);
    epp_customer(&s, "nora");
    let _first = logged_in(&s, port, "nora").await;
    // The open sessions are a gauge of /metrics.
    let metrics = s.get("/metrics", &s.operator).text;
    assert!(metrics.contains("\nregdesk_epp_sessions 1\n"), "{metrics}");
    let mut second = connect(&s, port).await;
    let r = second
        .transact(&Login::new("nora", PASSWORD, None, None), "l-2")
        .await;
    assert_eq!(
        code(r),
        ResultCode::SessionLimitExceededServerClosingConnection
    );

    // A logged-in session that falls silent is closed once idle too long.
    epp_customer(&s, "pia");
    let mut tls = raw(&s, port);
    send_raw(
        &mut tls,
        &format!(
            "<epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><command><login><clID>pia</clID>\
             <pw>{PASSWORD}</pw><options><version>1.0</version><lang>en</lang></options>\
             </login></command></epp>"
        ),
    );
    assert!(read_raw(&mut tls)
        .unwrap()
        .contains("<result code=\"1000\">"));
    let mut rest = Vec::new();
    let closed = tls.read_to_end(&mut rest);
    assert!(closed.is_err() || rest.is_empty(), "{closed:?} {rest:?}");

    // A peer that never logs in is closed once the login time is up.
    let mut tls = raw(&s, port);
    let mut rest = Vec::new();
    let closed = tls.read_to_end(&mut rest);
    assert!(closed.is_err() || rest.is_empty(), "{closed:?} {rest:?}");
    // ...and a peer that never finishes its TLS handshake too.
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let mut rest = Vec::new();
    if let Err(e) = tcp.read_to_end(&mut rest) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset,
            "closed, not timed out"
        );
    }
}

#[test]
fn connections_past_the_session_bound_are_closed_at_once() {
    let (s, port) = start(&["--test-clock", "--epp-max-sessions", "1"]);
    let _first = raw(&s, port);
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    if let Err(e) = tcp.read_to_end(&mut rest) {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    }
    assert!(rest.is_empty());
    drop(_first);
}

#[tokio::test(flavor = "current_thread")]
async fn the_operators_certificate_is_served_and_no_test_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &Issuer::new(ca, ca_key))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let (s, port) = start(&[
        "--test-clock",
        "--epp-cert",
        cert_path.to_str().unwrap(),
        "--epp-key",
        key_path.to_str().unwrap(),
    ]);
    assert_eq!(s.call("GET", "/api/v1/epp/ca.pem", None, None).status, 404);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let connector = RustlsConnector::builder(("localhost".to_string(), port))
        .unwrap()
        .build_with_config(client_config(roots));
    let c = EppClient::new(connector, "regdesk".into(), Duration::from_secs(20)).await;
    assert!(c
        .expect("a greeting over the operator's certificate")
        .greeting()
        .is_ok());
}

#[tokio::test(flavor = "current_thread")]
async fn failed_logins_across_sessions_refuse_the_account_for_a_while() {
    let (s, port) = start(&["--test-clock"]);
    epp_customer(&s, "olga");
    let wrong = Login::new("olga", "wrong-pw", None, None);
    for _ in 0..2 {
        let mut c = connect(&s, port).await;
        for _ in 0..2 {
            let r = c.transact(&wrong, "w-1").await;
            assert_eq!(code(r), ResultCode::AuthenticationError);
        }
    }
    let mut c = connect(&s, port).await;
    assert_eq!(
        code(c.transact(&wrong, "w-1").await),
        ResultCode::AuthenticationError
    );
    // The fifth failure refuses even the right password, and closes.
    let right = Login::new("olga", PASSWORD, None, None);
    assert_eq!(
        code(c.transact(&right, "r-1").await),
        ResultCode::AuthenticationErrorServerClosingConnection
    );
    s.advance("16m");
    let mut c = connect(&s, port).await;
    assert_eq!(
        code(c.transact(&right, "r-2").await),
        ResultCode::CommandCompletedSuccessfully
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalled_peer_does_not_hold_up_another_session() {
    let (s, port) = start(&["--test-clock"]);
    epp_customer(&s, "quin");
    // Half a TLS ClientHello, and then nothing.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let mut c = logged_in(&s, port, "quin").await;
    let r = c
        .transact(
            &DomainCheck {
                domains: &["free.com"],
            },
            "chk-1",
        )
        .await
        .expect("a check while another peer stalls");
    assert!(r.res_data().unwrap().list[0].name.available);
    drop(stalled);
}
