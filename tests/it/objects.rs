//! Contact and host objects over the JSON API: made, listed, changed and
//! deleted by their account, hidden from others, refused field by field,
//! and kept while a domain names them.

use serde_json::{json, Value};

use crate::support::{error_of, Server};

fn contact(id: &str) -> Value {
    json!({"id": id, "name": "Ada Lovelace", "city": "London", "cc": "gb",
           "email": "ada@example.net"})
}

#[test]
fn a_contact_is_made_with_only_the_required_fields_changed_and_deleted() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let a = s.post("/api/v1/contacts", &alice, contact("ada-1"));
    assert_eq!(a.status, 201, "{}", a.text);
    let c = a.json();
    assert_eq!(
        (c["id"].as_str(), c["cc"].as_str()),
        (Some("ada-1"), Some("GB"))
    );
    assert_eq!(c["street"], json!([]));
    assert!(c["voice"].is_null() && c["org"].is_null());
    assert!(c["auth_info"].as_str().unwrap().len() >= 6, "{c}");

    let a = s.call(
        "PATCH",
        "/api/v1/contacts/ada-1",
        Some(&alice),
        Some(
            &json!({"street": ["12 St James's Square"], "voice": "+44.2079460000",
                     "org": "Analytical Engines"})
            .to_string(),
        ),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s.call(
        "PATCH",
        "/api/v1/contacts/ada-1",
        Some(&alice),
        Some(r#"{"org": null}"#),
    );
    let c = a.json();
    assert_eq!(
        (c["voice"].as_str(), c["org"].as_str()),
        (Some("+44.2079460000"), None)
    );
    assert_eq!(c["street"], json!(["12 St James's Square"]));
    assert_eq!(s.get("/api/v1/contacts/ada-1", &alice).json(), c);
    let list = s.get("/api/v1/contacts", &alice).json();
    assert_eq!(list["items"], json!([c]));

    let a = s.post("/api/v1/contacts", &alice, contact("ada-1"));
    assert_eq!(error_of(&a), (409, "exists".into(), None));
    let a = s.call("DELETE", "/api/v1/contacts/ada-1", Some(&alice), None);
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(s.get("/api/v1/contacts/ada-1", &alice).status, 404);
}

#[test]
fn another_accounts_contacts_and_hosts_are_not_found_and_operators_see_all() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    assert_eq!(
        s.post("/api/v1/contacts", &alice, contact("alice-c"))
            .status,
        201
    );
    let host = json!({"name": "ns1.alice.example", "addresses": ["192.0.2.1"]});
    assert_eq!(s.post("/api/v1/hosts", &alice, host).status, 201);
    for path in [
        "/api/v1/contacts/alice-c",
        "/api/v1/hosts/ns1.alice.example",
    ] {
        assert_eq!(error_of(&s.get(path, &bob)).0, 404, "{path}");
        let a = s.call("PATCH", path, Some(&bob), Some("{}"));
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(
            s.call("DELETE", path, Some(&bob), None).status,
            404,
            "{path}"
        );
        assert_eq!(s.get(path, &alice).status, 200, "{path}");
        assert_eq!(s.get(path, &s.operator).status, 200, "{path}");
    }
    for list in ["/api/v1/contacts", "/api/v1/hosts"] {
        assert_eq!(s.get(list, &bob).json()["items"], json!([]), "{list}");
        assert_eq!(
            s.get(list, &s.operator).json()["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
    // Ids are unique across accounts.
    let a = s.post("/api/v1/contacts", &bob, contact("alice-c"));
    assert_eq!(error_of(&a).1, "exists");
}

#[test]
fn every_bad_contact_value_is_refused_naming_its_field_and_nothing_is_made() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let cases: &[(&str, Value, &str)] = &[
        ("id", json!("ab"), "id"),
        ("id", json!("has space"), "id"),
        ("id", json!("x".repeat(17)), "id"),
        ("cc", json!("GBR"), "cc"),
        ("voice", json!("555-1234"), "voice"),
        ("fax", json!("+44.12a"), "fax"),
        ("email", json!("not an address"), "email"),
        ("name", json!("  "), "name"),
        ("city", json!(7), "city"),
        ("street", json!(["a", "b", "c", "d"]), "street"),
        ("street", json!([1]), "street[0]"),
        ("auth_info", json!("short"), "auth_info"),
        ("nickname", json!("x"), "nickname"),
    ];
    for (field, value, named) in cases {
        let mut body = contact("ok-id");
        body[*field] = value.clone();
        let a = s.post("/api/v1/contacts", &alice, body);
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some(named.to_string())),
            "{field}: {}",
            a.text
        );
    }
    for missing in ["id", "name", "city", "cc", "email"] {
        let mut body = contact("ok-id");
        body.as_object_mut().unwrap().remove(missing);
        let a = s.post("/api/v1/contacts", &alice, body);
        assert_eq!(error_of(&a).2.as_deref(), Some(missing));
    }
    assert_eq!(s.get("/api/v1/contacts", &alice).json()["items"], json!([]));
    assert_eq!(
        s.post("/api/v1/contacts", &alice, contact("ok-id")).status,
        201
    );
    let a = s.call(
        "PATCH",
        "/api/v1/contacts/ok-id",
        Some(&alice),
        Some(r#"{"email": null}"#),
    );
    assert_eq!(error_of(&a).2.as_deref(), Some("email"));
}

#[test]
fn a_host_is_made_given_and_taken_addresses_renamed_and_refused_field_by_field() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let a = s.post("/api/v1/hosts", &alice, json!({"name": "NS1.Example.NET."}));
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["name"], "ns1.example.net");
    let patch = json!({"add": ["192.0.2.7", "2001:db8::7"]}).to_string();
    let a = s.call(
        "PATCH",
        "/api/v1/hosts/ns1.example.net",
        Some(&alice),
        Some(&patch),
    );
    assert_eq!(a.json()["addresses"], json!(["192.0.2.7", "2001:db8::7"]));
    let patch = json!({"remove": ["192.0.2.7"], "name": "ns2.example.net"}).to_string();
    let a = s.call(
        "PATCH",
        "/api/v1/hosts/ns1.example.net",
        Some(&alice),
        Some(&patch),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["addresses"], json!(["2001:db8::7"]));
    assert_eq!(s.get("/api/v1/hosts/ns1.example.net", &alice).status, 404);
    assert_eq!(s.get("/api/v1/hosts/ns2.example.net", &alice).status, 200);

    let bad: &[(Value, &str)] = &[
        (json!({"name": "no_dots"}), "name"),
        (
            json!({"name": "ns3.example.net", "addresses": ["300.1.1.1"]}),
            "addresses[0]",
        ),
        (
            json!({"name": "ns3.example.net", "addresses": "192.0.2.1"}),
            "addresses",
        ),
        (
            json!({"name": "ns3.example.net", "addresses": ["192.0.2.1", "192.0.2.1"]}),
            "addresses",
        ),
        (json!({"name": "ns3.example.net", "glue": []}), "glue"),
    ];
    for (body, field) in bad {
        let a = s.post("/api/v1/hosts", &alice, body.clone());
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some(field.to_string())),
            "{body}"
        );
    }
    let patch = json!({"remove": ["192.0.2.99"]}).to_string();
    let a = s.call(
        "PATCH",
        "/api/v1/hosts/ns2.example.net",
        Some(&alice),
        Some(&patch),
    );
    assert_eq!(error_of(&a).2.as_deref(), Some("remove"));
    let a = s.post("/api/v1/hosts", &alice, json!({"name": "ns2.example.net"}));
    assert_eq!(error_of(&a).1, "exists");
    assert_eq!(
        s.get("/api/v1/hosts", &alice).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_contact_or_host_a_domain_names_is_kept_until_nothing_names_it() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    assert_eq!(
        s.post("/api/v1/contacts", &alice, contact("owner-1"))
            .status,
        201
    );
    assert_eq!(
        s.post(
            "/api/v1/hosts",
            &alice,
            json!({"name": "ns1.named.example"})
        )
        .status,
        201
    );
    let params = json!({
        "contacts": {"owner": {"id": "owner-1", "name": "Ada Lovelace", "email": "ada@example.net"}},
        "nameservers": ["ns1.named.example"],
    });
    let id = s.order(&alice, "named.example", "create", params)["id"]
        .as_i64()
        .unwrap();
    // An open request names them, and then the domain it made.
    for _ in 0..2 {
        let a = s.call("DELETE", "/api/v1/contacts/owner-1", Some(&alice), None);
        assert_eq!(error_of(&a).1, "in_use", "{}", a.text);
        let a = s.call(
            "DELETE",
            "/api/v1/hosts/ns1.named.example",
            Some(&alice),
            None,
        );
        assert_eq!(error_of(&a).1, "in_use", "{}", a.text);
        let patch = json!({"name": "ns9.named.example"}).to_string();
        let a = s.call(
            "PATCH",
            "/api/v1/hosts/ns1.named.example",
            Some(&alice),
            Some(&patch),
        );
        assert_eq!(error_of(&a), (409, "in_use".into(), None));
        s.tick();
    }
    assert_eq!(s.request(&alice, id)["state"], "finished");
    assert_eq!(
        s.get("/api/v1/domains/named.example", &alice).json()["contacts"]["owner"]["id"],
        "owner-1"
    );
}

#[test]
fn a_host_under_another_accounts_domain_is_refused() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    s.order(&alice, "alice.example", "create", crate::support::owner());
    s.tick();
    let glue = json!({"name": "ns1.alice.example", "addresses": ["192.0.2.1"]});
    let a = s.post("/api/v1/hosts", &bob, glue.clone());
    assert_eq!(error_of(&a), (403, "not_yours".into(), None), "{}", a.text);
    assert_eq!(
        s.post("/api/v1/hosts", &bob, json!({"name": "ns1.bob.example"}))
            .status,
        201
    );
    let rename = json!({"name": "ns2.alice.example"}).to_string();
    let a = s.call(
        "PATCH",
        "/api/v1/hosts/ns1.bob.example",
        Some(&bob),
        Some(&rename),
    );
    assert_eq!(error_of(&a).1, "not_yours");
    assert_eq!(s.post("/api/v1/hosts", &alice, glue).status, 201);
}
