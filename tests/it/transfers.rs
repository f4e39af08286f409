//! Transfers of a domain from one account here to another: the holder is
//! told and approves or rejects, the gaining account may cancel, the one
//! clock approves what is left unanswered; a locked domain and a wrong auth
//! code are refused; both sides hear how it ended.

use serde_json::{json, Value};

use crate::support::{error_of, owner, Server};

const NAME: &str = "moving.example";

/// The two sides of a transfer of `NAME`, which the holder has registered
/// and (when `unlock`) unlocked: (holder, gainer, auth code).
fn sides(s: &Server, unlock: bool) -> (String, String, String) {
    let (_, holder) = s.customer("holder");
    let (_, gainer) = s.customer("gainer");
    s.order(&holder, NAME, "create", owner());
    if unlock {
        s.order(&holder, NAME, "update", json!({"transfer_lock": false}));
    }
    s.tick();
    let d = s.get(&format!("/api/v1/domains/{NAME}"), &holder).json();
    assert_eq!(d["transfer_lock"], !unlock, "{d}");
    // The holder's own notifications so far are read.
    drain(s, &holder);
    (holder, gainer, auth_code(s))
}

/// The auth code of `NAME`, as its holder (here the operator, who sees
/// every domain) reads it.
fn auth_code(s: &Server) -> String {
    let d = s
        .get(&format!("/api/v1/domains/{NAME}"), &s.operator)
        .json();
    d["auth_code"]
        .as_str()
        .expect("the holder sees the auth code")
        .into()
}

/// Reads (and marks read) every unread notification of `token`.
fn drain(s: &Server, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let a = s.get("/api/v1/notification", token);
        if a.status != 200 {
            return out;
        }
        let n = a.json();
        let id = n["id"].as_i64().unwrap();
        s.call(
            "DELETE",
            &format!("/api/v1/notification/{id}"),
            Some(token),
            None,
        );
        out.push(n);
    }
}

fn statuses(ns: &[Value]) -> Vec<(String, String)> {
    ns.iter()
        .map(|n| {
            (
                n["action"].as_str().unwrap().to_string(),
                n["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The gainer orders the transfer through the usual requests; after a
/// tick it waits on the holder. Its request id.
fn ask(s: &Server, gainer: &str, code: &str) -> i64 {
    let mut params = owner();
    params["auth_code"] = json!(code);
    params["period"] = json!(2);
    let id = s.order(gainer, NAME, "transfer", params)["id"]
        .as_i64()
        .unwrap();
    s.tick();
    id
}

fn answer(s: &Server, token: &str, action: &str) -> crate::support::Answer {
    s.post(
        &format!("/api/v1/domains/{NAME}/transfer/{action}"),
        token,
        json!({}),
    )
}

#[test]
fn the_holder_is_asked_and_approves_and_the_domain_moves_with_its_period() {
    let s = Server::start();
    let (holder, gainer, code) = sides(&s, true);
    let expiry = s.get(&format!("/api/v1/domains/{NAME}"), &holder).json()["expires_at"].clone();
    let id = ask(&s, &gainer, &code);
    let r = s.request(&gainer, id);
    assert_eq!(
        (r["state"].as_str(), r["waiting_on"].as_str()),
        (Some("processing"), Some("registrant")),
        "{r}"
    );

    let d = s.get(&format!("/api/v1/domains/{NAME}"), &holder).json();
    assert_eq!(d["transfer"]["status"], "pending", "{d}");
    assert_eq!(d["transfer"]["gaining_name"], "gainer");
    assert_eq!(d["transfer"]["request_id"], id);
    let told = drain(&s, &holder);
    assert_eq!(
        statuses(&told),
        [("transfer".to_string(), "pending".to_string())]
    );
    assert_eq!(
        (told[0]["type"].as_str(), told[0]["domain"].as_str()),
        (Some("domain"), Some(NAME))
    );

    // Only the holder answers.
    assert_eq!(error_of(&answer(&s, &gainer, "approve")).0, 403);
    let (_, stranger) = s.customer("stranger");
    assert_eq!(
        error_of(&answer(&s, &stranger, "approve")),
        (409, "no_transfer".into(), None)
    );

    let a = answer(&s, &holder, "approve");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["status"], "clientApproved");
    let r = s.request(&gainer, id);
    assert_eq!(r["state"], "finished", "{r}");
    assert_eq!(r["invoice_items"].as_array().unwrap().len(), 1);
    let d = s.get(&format!("/api/v1/domains/{NAME}"), &gainer).json();
    assert_eq!(d["transfer_lock"], true);
    assert_ne!(auth_code(&s), code);
    let two_years = 2 * 365 * 86_400_000_i64;
    let ms = |v: &Value| chrono_ms(v.as_str().unwrap());
    assert_eq!(ms(&d["expires_at"]) - ms(&expiry), two_years);
    assert_eq!(
        s.get(&format!("/api/v1/domains/{NAME}"), &holder).status,
        404
    );
    assert_eq!(
        statuses(&drain(&s, &holder)),
        [("transfer".into(), "clientApproved".into())]
    );
    assert_eq!(
        statuses(&drain(&s, &gainer)),
        [("transfer".into(), "success".into())]
    );
    // Nothing is pending any more.
    assert_eq!(error_of(&answer(&s, &holder, "reject")).1, "no_transfer");
}

/// Milliseconds of an RFC 3339 UTC time as the API writes it.
fn chrono_ms(text: &str) -> i64 {
    regdesk::clock::parse("t", text).unwrap()
}

#[test]
fn a_rejected_transfer_fails_for_the_gainer_and_the_holder_keeps_the_domain() {
    let s = Server::start();
    let (holder, gainer, code) = sides(&s, true);
    let id = ask(&s, &gainer, &code);
    drain(&s, &holder);
    // An answer that is none of approve, reject, cancel is not found and
    // leaves the transfer pending.
    assert_eq!(error_of(&answer(&s, &holder, "maybe")).0, 404);
    let d = s.get(&format!("/api/v1/domains/{NAME}"), &holder).json();
    assert_eq!(d["transfer"]["status"], "pending", "{d}");
    let a = answer(&s, &holder, "reject");
    assert_eq!(a.json()["status"], "clientRejected", "{}", a.text);
    let r = s.request(&gainer, id);
    assert_eq!(r["state"], "failed", "{r}");
    assert!(
        r["last_error"].as_str().unwrap().contains("rejected"),
        "{r}"
    );
    assert_eq!(r["invoice_items"], json!([]));
    let d = s.get(&format!("/api/v1/domains/{NAME}"), &holder).json();
    assert!(d["transfer"].is_null(), "{d}");
    assert_eq!(
        statuses(&drain(&s, &holder)),
        [("transfer".into(), "clientRejected".into())]
    );
    assert_eq!(
        statuses(&drain(&s, &gainer)),
        [("transfer".into(), "error".into())]
    );
}

#[test]
fn the_gainer_cancels_and_both_sides_are_told() {
    let s = Server::start();
    let (holder, gainer, code) = sides(&s, true);
    let id = ask(&s, &gainer, &code);
    drain(&s, &holder);
    assert_eq!(error_of(&answer(&s, &holder, "cancel")).0, 403);
    let a = answer(&s, &gainer, "cancel");
    assert_eq!(a.json()["status"], "clientCancelled", "{}", a.text);
    let r = s.request(&gainer, id);
    assert_eq!(r["state"], "failed");
    assert!(
        r["last_error"].as_str().unwrap().contains("cancelled"),
        "{r}"
    );
    assert_eq!(
        statuses(&drain(&s, &holder)),
        [("transfer".into(), "clientCancelled".into())]
    );
    assert_eq!(
        statuses(&drain(&s, &gainer)),
        [("transfer".into(), "error".into())]
    );
}

#[test]
fn an_unanswered_transfer_is_approved_by_the_system_when_its_days_pass() {
    let s = Server::start_with(&["--test-clock", "--transfer-auto-approve-days", "2"]);
    let (holder, gainer, code) = sides(&s, true);
    let id = ask(&s, &gainer, &code);
    s.advance("1d");
    assert_eq!(s.request(&gainer, id)["state"], "processing");
    s.advance("1d");
    let r = s.request(&gainer, id);
    assert_eq!(r["state"], "finished", "{r}");
    let last = r["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "system", "{last}");
    assert_eq!(
        s.get(&format!("/api/v1/domains/{NAME}"), &gainer).status,
        200
    );
    let told = statuses(&drain(&s, &holder));
    assert_eq!(
        told.last().unwrap(),
        &("transfer".to_string(), "serverApproved".to_string())
    );
}

#[test]
fn a_locked_domain_is_refused_and_its_holder_is_not_asked() {
    let s = Server::start();
    let (holder, gainer, code) = sides(&s, false);
    let id = ask(&s, &gainer, &code);
    let r = s.request(&gainer, id);
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("registry")),
        "{r}"
    );
    let reason = r["history"].as_array().unwrap().last().unwrap()["reason"].clone();
    assert!(
        reason
            .as_str()
            .unwrap()
            .contains("clientTransferProhibited"),
        "{reason}"
    );
    assert_eq!(drain(&s, &holder), Vec::<Value>::new());
    assert_eq!(
        s.get(&format!("/api/v1/domains/{NAME}"), &holder).status,
        200
    );
}

#[test]
fn a_wrong_auth_code_goes_back_to_the_gainer_and_a_second_transfer_waits_its_turn() {
    let s = Server::start();
    let (holder, gainer, code) = sides(&s, true);
    let id = ask(&s, &gainer, "not-the-code");
    let r = s.request(&gainer, id);
    assert_eq!(r["state"], "incomplete", "{r}");
    assert_eq!(r["missing"], json!(["auth_code"]));
    assert_eq!(drain(&s, &holder), Vec::<Value>::new());
    // With the right code it waits on the holder; a second one is refused.
    let first = ask(&s, &gainer, &code);
    assert_eq!(s.request(&gainer, first)["waiting_on"], "registrant");
    let (_, third) = s.customer("third");
    let mut params = owner();
    params["auth_code"] = json!(code);
    let second = s.order(&third, NAME, "transfer", params)["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let r = s.request(&third, second);
    assert_eq!(r["state"], "failed", "{r}");
    // The third account does not see the transfer on the domain's page.
    let a = answer(&s, &third, "approve");
    assert_eq!(error_of(&a).1, "no_transfer");
}

#[test]
fn a_wrong_number_of_days_to_approve_by_stops_the_start_naming_it() {
    for (args, env) in [
        (&["--transfer-auto-approve-days", "0"][..], &[][..]),
        (
            &[][..],
            &[("REGDESK_TRANSFER_AUTO_APPROVE_DAYS", "366")][..],
        ),
    ] {
        let stderr = crate::support::refused_start(args, env);
        assert!(
            stderr.contains("transfer_auto_approve_days"),
            "{args:?} {env:?}: {stderr}"
        );
    }
}
