-- The same tables, with their state checks written as comparisons. SQLite
-- codes a check like `status in ('active', 'on_hold', 'pending_release')`
-- by building a temporary B-tree of the values at every insert and update
-- of a row (OpenEphemeral in the statement's program): about 5% of the
-- writer while the ticker registered names (perf, B3: the domain insert
-- went from 10.5% to 5.6% of the writer). A check cannot be changed in
-- place, so each table is built again: its rows are copied aside, and the
-- table is dropped, created under its name and filled again, and its
-- indexes made again. (Renaming a new table into place instead made this
-- migration take three times as long on an empty database, which every new
-- database pays at its first start.) The portfolio, the mail outbox and the
-- webhook delivery log had such checks; the others compare with at most
-- two values, which SQLite codes as comparisons already.

create temp table domains_copy as select * from domains;
drop table domains;
create table domains (
    id            integer primary key,
    account_id    integer not null references accounts(id),
    name          text not null unique,
    status        text not null
                  check (status = 'active' or status = 'on_hold' or status = 'pending_release'),
    expires_at    integer not null,
    transfer_lock integer not null default 1,
    privacy       integer not null default 0,
    auth_code     text not null,
    contacts      text not null default '{}',
    nameservers   text not null default '[]',
    created_at    integer not null,
    updated_at    integer not null
);
insert into domains (
    id, account_id, name, status, expires_at, transfer_lock, privacy,
    auth_code, contacts, nameservers, created_at, updated_at
)
select
    id, account_id, name, status, expires_at, transfer_lock, privacy,
    auth_code, contacts, nameservers, created_at, updated_at
from temp.domains_copy;
drop table temp.domains_copy;
create index domains_account on domains(account_id, name);

create temp table mail_copy as select * from mail;
drop table mail;
create table mail (
    id              integer primary key,
    request_id      integer references requests(id),
    recipient       text not null,
    subject         text not null,
    body            text not null,
    state           text not null default 'pending'
                    check (state = 'pending' or state = 'sent' or state = 'failed'),
    attempts        integer not null default 0,
    last_error      text,
    created_at      integer not null,
    sent_at         integer,
    next_attempt_at integer
);
insert into mail (
    id, request_id, recipient, subject, body, state, attempts, last_error,
    created_at, sent_at, next_attempt_at
)
select
    id, request_id, recipient, subject, body, state, attempts, last_error,
    created_at, sent_at, next_attempt_at
from temp.mail_copy;
drop table temp.mail_copy;
create index mail_request on mail(request_id);
create index mail_pending on mail(id) where state = 'pending';

create temp table webhook_deliveries_copy as select * from webhook_deliveries;
drop table webhook_deliveries;
create table webhook_deliveries (
    id              integer primary key,
    notification_id integer not null references notifications(id),
    account_id      integer not null references accounts(id),
    url             text not null,
    state           text not null default 'pending'
                    check (state = 'pending' or state = 'delivered' or state = 'failed'),
    attempts        integer not null default 0,
    last_status     integer,
    last_error      text,
    next_attempt_at integer not null,
    delivered_at    integer,
    created_at      integer not null
);
insert into webhook_deliveries (
    id, notification_id, account_id, url, state, attempts, last_status,
    last_error, next_attempt_at, delivered_at, created_at
)
select
    id, notification_id, account_id, url, state, attempts, last_status,
    last_error, next_attempt_at, delivered_at, created_at
from temp.webhook_deliveries_copy;
drop table temp.webhook_deliveries_copy;
create index webhook_deliveries_due on webhook_deliveries(next_attempt_at, id)
    where state = 'pending';
create index webhook_deliveries_account on webhook_deliveries(account_id, id);
