-- Delivery: notification webhooks per account, their delivery log, and
-- retry scheduling for the mail outbox. Times are integer milliseconds.

-- At most one endpoint per account; the secret signs every delivery.
create table webhook_endpoints (
    account_id integer primary key references accounts(id),
    url        text not null,
    secret     text not null,
    created_at integer not null,
    updated_at integer not null
);

-- One row per notification sent to an endpoint, created in the same
-- transaction as the notification so that none is lost.
create table webhook_deliveries (
    id              integer primary key,
    notification_id integer not null references notifications(id),
    account_id      integer not null references accounts(id),
    url             text not null,
    state           text not null default 'pending' check (state in ('pending', 'delivered', 'failed')),
    attempts        integer not null default 0,
    last_status     integer,
    last_error      text,
    next_attempt_at integer not null,
    delivered_at    integer,
    created_at      integer not null
);
create index webhook_deliveries_due on webhook_deliveries(next_attempt_at, id) where state = 'pending';
create index webhook_deliveries_account on webhook_deliveries(account_id, id);

-- Mail: the next sending attempt is not before this (null: at once).
alter table mail add column next_attempt_at integer;
