//! Mail: the outbox sent over SMTP to a small SMTP server on 127.0.0.1 in
//! the test, retried, and always kept.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use serde_json::Value;

use crate::support::{owner, refused_start, Server};

/// One message the sink accepted.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A tiny SMTP server: enough of RFC 5321 for one client at a time.
/// `refuse(n)` says whether to answer the n-th `MAIL FROM` (from 0) with a
/// temporary failure.
struct Sink {
    url: String,
    mails: Receiver<Received>,
}

impl Sink {
    fn start(refuse: impl Fn(usize) -> bool + Send + 'static) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let (tx, mails) = mpsc::channel();
        thread::spawn(move || {
            let mut transactions = 0;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                if serve(stream, &tx, &refuse, &mut transactions).is_err() {
                    continue;
                }
            }
        });
        Sink { url, mails }
    }

    fn received(&self) -> Vec<Received> {
        self.mails.try_iter().collect()
    }
}

fn serve(
    stream: TcpStream,
    tx: &mpsc::Sender<Received>,
    refuse: &dyn Fn(usize) -> bool,
    transactions: &mut usize,
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut say = |text: &str| -> std::io::Result<()> {
        out.write_all(format!("{text}\r\n").as_bytes())?;
        out.flush()
    };
    say("220 sink.test ESMTP")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => say("250 sink.test")?,
            "MAIL" => {
                let n = *transactions;
                *transactions += 1;
                if refuse(n) {
                    say("451 4.3.0 try again later")?;
                } else {
                    from = line.clone();
                    to.clear();
                    say("250 2.1.0 ok")?;
                }
            }
            "RCPT" => {
                to.push(line.clone());
                say("250 2.1.5 ok")?;
            }
            "DATA" => {
                say("354 end with <CRLF>.<CRLF>")?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l)? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    // Undo dot-stuffing.
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                tx.send(Received {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                })
                .ok();
                say("250 2.0.0 queued")?;
            }
            "RSET" | "NOOP" => say("250 2.0.0 ok")?,
            "QUIT" => {
                say("221 2.0.0 bye")?;
                return Ok(());
            }
            _ => say("500 5.5.2 what?")?,
        }
    }
}

fn outbox(s: &Server, request_id: i64) -> Vec<Value> {
    let a = s.get(
        &format!("/api/v1/mail?request_id={request_id}"),
        &s.operator,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["items"].as_array().unwrap().clone()
}

fn id_of(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

#[test]
fn limbo_and_failure_notices_are_sent_over_smtp_with_the_request_details() {
    let sink = Sink::start(|_| false);
    let s = Server::start_with(&[
        "--test-clock",
        "--smtp-url",
        &sink.url,
        "--mail-from",
        "desk@example.org",
    ]);
    let (_, alice) = s.customer("alice");
    let limbo = id_of(&s.order(&alice, "x-limbo.com", "create", owner()));
    s.tick();
    let mails = sink.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert!(m.from.contains("<desk@example.org>"), "{m:?}");
    assert_eq!(m.to.len(), 1);
    assert!(m.to[0].contains("<operator@localhost>"), "{m:?}");
    let data = &m.data;
    for needle in [
        "Subject: [regdesk] request",
        "needs attention: create x-limbo.com",
        &format!("Request {limbo}: create x-limbo.com"),
        "State: limbo",
        "Last error:",
        "History:",
        "queued -> processing",
        "processing -> limbo",
        "Message-ID: <regdesk-mail-",
    ] {
        assert!(data.contains(needle), "{needle:?} not in:\n{data}");
    }
    let kept = outbox(&s, limbo);
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0]["state"].as_str(), kept[0]["attempts"].as_i64()),
        (Some("sent"), Some(1)),
        "{kept:?}"
    );
    assert!(
        kept[0]["sent_at"].is_string() && kept[0]["last_error"].is_null(),
        "{kept:?}"
    );

    // A failure notice goes to the owner.
    let failed = id_of(&s.order(&alice, "x-fail.com", "create", owner()));
    s.tick();
    let mails = sink.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].to[0].contains("<alice@example.net>"), "{mails:?}");
    assert!(
        mails[0].data.contains("create x-fail.com failed"),
        "{}",
        mails[0].data
    );
    assert!(
        mails[0].data.contains("State: failed (registry)"),
        "{}",
        mails[0].data
    );
    assert_eq!(outbox(&s, failed)[0]["state"], "sent");
    // Sent mail is not sent again.
    s.advance("1h");
    assert!(sink.received().is_empty());
}

#[test]
fn mail_is_retried_until_the_server_takes_it_and_kept_when_it_never_does() {
    // The first two attempts are refused for now (451).
    let sink = Sink::start(|n| n < 2);
    let s = Server::start_with(&[
        "--test-clock",
        "--smtp-url",
        &sink.url,
        "--mail-retry-base-ms",
        "20",
    ]);
    let (_, alice) = s.customer("alice");
    let id = id_of(&s.order(&alice, "x-fail.com", "create", owner()));
    s.tick();
    let m = &outbox(&s, id)[0];
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64()),
        (Some("pending"), Some(1)),
        "{m}"
    );
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("try again later"),
        "{m}"
    );
    assert!(m["next_attempt_at"].is_string(), "{m}");
    // Not before its backoff.
    s.tick();
    assert_eq!(outbox(&s, id)[0]["attempts"], 1);
    s.advance("1s");
    assert_eq!(outbox(&s, id)[0]["attempts"], 2);
    s.advance("1s");
    let m = &outbox(&s, id)[0];
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(3)),
        "{m}"
    );
    let got = sink.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].data.contains("x-fail.com"));

    // A server that is never there: failed after the last attempt, still kept.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Server::start_with(&[
        "--test-clock",
        "--smtp-url",
        &format!("smtp://127.0.0.1:{port}"),
        "--mail-retry-base-ms",
        "20",
        "--mail-max-attempts",
        "2",
    ]);
    let (_, bob) = s.customer("bob");
    let id = id_of(&s.order(&bob, "y-fail.com", "create", owner()));
    s.tick();
    s.advance("1s");
    s.advance("1h");
    let m = &outbox(&s, id)[0];
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some(2)),
        "{m}"
    );
    assert!(m["last_error"].is_string(), "{m}");
    assert!(m["body"].as_str().unwrap().contains("y-fail.com"));
}

#[test]
fn without_smtp_mail_waits_in_the_outbox_and_bad_settings_are_refused() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let id = id_of(&s.order(&alice, "x-fail.com", "create", owner()));
    s.tick();
    let m = &outbox(&s, id)[0];
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64()),
        (Some("pending"), Some(0)),
        "{m}"
    );
    let a = s.get("/api/v1/mail", &alice);
    assert_eq!(a.status, 403, "only operators read the outbox");

    for (args, field) in [
        (vec!["--smtp-url", "mail.example.net"], "smtp_url"),
        (
            vec!["--smtp-url", "smtp://user:pw@mail.example.net"],
            "smtp_url",
        ),
        (
            vec!["--smtp-url", "smtp://mail.example.net:70000"],
            "smtp_url",
        ),
        (
            vec![
                "--smtp-url",
                "smtp://mail.example.net",
                "--mail-from",
                "not an address",
            ],
            "mail_from",
        ),
        (
            vec![
                "--smtp-url",
                "smtp://mail.example.net",
                "--mail-max-attempts",
                "0",
            ],
            "mail_max_attempts",
        ),
    ] {
        let stderr = refused_start(&args, &[]);
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
}

#[test]
fn an_operator_sends_a_message_of_the_outbox_again() {
    let sink = Sink::start(|_| false);
    let s = Server::start_with(&["--test-clock", "--smtp-url", &sink.url]);
    let (_, alice) = s.customer("alice");
    let failed = id_of(&s.order(&alice, "again-fail.com", "create", owner()));
    s.tick();
    assert_eq!(sink.received().len(), 1);
    let mail = id_of(&outbox(&s, failed)[0]);
    let path = format!("/api/v1/mail/{mail}/resend");
    assert_eq!(s.call("POST", &path, Some(&alice), None).status, 403);
    let a = s.call("POST", &path, Some(&s.operator), None);
    assert_eq!(a.status, 200, "{}", a.text);
    s.tick();
    let again = sink.received();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].data.contains("again-fail.com failed"));
    assert_eq!(outbox(&s, failed)[0]["state"], "sent");
    let a = s.call("POST", "/api/v1/mail/999/resend", Some(&s.operator), None);
    assert_eq!(a.status, 404);
}

#[test]
fn a_pending_message_is_not_sent_twice_by_a_resend() {
    let s = Server::start_with(&["--test-clock"]);
    let (_, alice) = s.customer("alice");
    let failed = id_of(&s.order(&alice, "pending-fail.com", "create", owner()));
    s.tick();
    let mail = id_of(&outbox(&s, failed)[0]);
    let path = format!("/api/v1/mail/{mail}/resend");
    assert_eq!(s.call("POST", &path, Some(&s.operator), None).status, 409);
}

#[test]
fn a_set_password_link_goes_out_by_mail_when_smtp_is_configured() {
    let sink = Sink::start(|_| false);
    let s = Server::start_with(&["--test-clock", "--smtp-url", &sink.url]);
    let (id, _) = s.customer("alice");
    let path = format!("/api/v1/accounts/{id}/password-link");
    let a = s.call("POST", &path, Some(&s.operator), None);
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["mailed_to"], "alice@example.net");
    assert!(
        a.json()["url"].is_null(),
        "the link is not shown: {}",
        a.text
    );
    s.tick();
    let mails = sink.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].data.contains("#set-password="),
        "{}",
        mails[0].data
    );
}
