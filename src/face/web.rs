//! The JSON the web desk needs beside the native API's: charges by month
//! (and as CSV), editing an account, the caller's API tokens, and sending
//! a message of the mail outbox again.

use serde_json::{json, Value};

use crate::clock;
use crate::desk::{self, charges};
use crate::error::{Error, Result};
use crate::face::json_args::{
    body_object, csv_field, only_keys, opt_bool, opt_i64, opt_str, query_i64,
};
use crate::http::{Req, Resp};
use crate::store::accounts::{valid_email, Account, AccountEdit, Role};
use crate::store::charges::Charge;
use crate::App;

/// The charges a query asks for: its `month` (this month by default) and
/// whose (`account_id`, scoped to the caller).
fn charges_of(app: &App, req: &Req, caller: &Account) -> Result<(String, Vec<Charge>)> {
    let month = req
        .query("month")
        .map(str::to_string)
        .unwrap_or_else(|| charges::month_of(app.clock.now()));
    let account = desk::account_scope(query_i64(req, "account_id")?, caller)?;
    let items = charges::list(app, account, &month)?;
    Ok((month, items))
}

/// `GET /charges?month=YYYY-MM&account_id=`: a month's invoice items and
/// their total.
pub fn charges(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let (month, items) = charges_of(app, req, caller)?;
    let total: i64 = items.iter().map(|c| c.amount_cents).sum();
    Ok(Resp::json(
        200,
        &json!({ "month": month, "items": items, "total_cents": total }),
    ))
}

/// `GET /charges.csv`: the same items as a spreadsheet.
pub fn charges_csv(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let (month, items) = charges_of(app, req, caller)?;
    let mut out = String::from(
        "id,created_at,account_id,request_id,domain,operation,kind,description,amount\n",
    );
    for c in &items {
        let fields = [
            c.id.to_string(),
            clock::format(c.created_at),
            c.account_id.to_string(),
            c.request_id.to_string(),
            c.domain.clone(),
            c.operation.clone(),
            c.kind.clone(),
            c.description.clone(),
            format!(
                "{}.{:02}",
                c.amount_cents / 100,
                (c.amount_cents % 100).abs()
            ),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    let file = format!("attachment; filename=\"charges-{month}.csv\"");
    Ok(Resp::new(200, "text/csv; charset=utf-8", out).with_header("Content-Disposition", &file))
}

/// `PATCH /accounts/{id}` `{email?, role?, review_limit_cents?, review_all?}`
/// (operators).
pub fn edit_account(app: &App, req: &Req, id: i64, caller: &Account) -> Result<Resp> {
    desk::require_operator(caller)?;
    let body = body_object(req)?;
    only_keys(
        &body,
        &["email", "role", "review_limit_cents", "review_all"],
    )?;
    let role =
        match opt_str(&body, "role")?.as_deref() {
            None => None,
            Some(r) => Some(r.parse::<Role>().map_err(|_| {
                Error::invalid("role", format!("{r:?} is not customer or operator"))
            })?),
        };
    let review_limit_cents = opt_i64(&body, "review_limit_cents")?;
    if review_limit_cents.is_some_and(|c| c < 0) {
        return Err(Error::invalid("review_limit_cents", "must not be negative"));
    }
    let edit = AccountEdit {
        email: opt_str(&body, "email")?
            .map(|e| valid_email(&e))
            .transpose()?,
        role,
        review_limit_cents,
        review_all: opt_bool(&body, "review_all")?,
    };
    if body.is_empty() {
        return Err(Error::invalid(
            "email",
            "give at least one of email, role, review_limit_cents, review_all",
        ));
    }
    let account = desk::accounts::edit(app, caller, id, edit)?;
    Ok(Resp::json(200, &account))
}

/// `GET /tokens`: the caller's API tokens (ids and ages).
pub fn tokens(app: &App, caller: &Account) -> Result<Resp> {
    let items = desk::accounts::tokens(app, caller)?;
    Ok(Resp::json(200, &json!({ "items": items })))
}

/// `POST /tokens`: a new API token for the caller, shown this once.
pub fn new_token(app: &App, caller: &Account) -> Result<Resp> {
    let (id, token) = desk::accounts::new_token(app, caller)?;
    Ok(Resp::json(201, &json!({ "id": id, "token": token })))
}

/// `DELETE /tokens/{id}`: revokes one of the caller's API tokens.
pub fn revoke_token(app: &App, req: &Req, id: i64, caller: &Account) -> Result<Resp> {
    let in_use = req
        .header("authorization")
        .and_then(|h| h.get(7..))
        .map(|t| t.trim().to_string());
    desk::accounts::revoke_token(app, caller, id, in_use)?;
    Ok(Resp::empty(204))
}

/// `POST /mail/{id}/resend`: sends a sent or failed message again
/// (operators).
pub fn resend_mail(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    desk::feed::resend_mail(app, caller, id)?;
    Ok(Resp::json(200, &Value::Object(Default::default())))
}
