-- The whole model of regdesk: accounts, domains, work requests and what they
-- leave behind. Times are integer milliseconds since the Unix epoch (UTC).

create table accounts (
    id                 integer primary key,
    name               text not null unique,
    email              text not null,
    role               text not null check (role in ('customer', 'operator')),
    -- Orders above this amount need an operator's authorisation.
    review_limit_cents integer not null default 50000,
    -- Every order of this account needs an operator's authorisation.
    review_all         integer not null default 0,
    created_at         integer not null
);

-- API tokens are shown once and stored as SHA-256 hex digests.
create table tokens (
    id         integer primary key,
    account_id integer not null references accounts(id) on delete cascade,
    hash       text not null unique,
    created_at integer not null
);
create index tokens_account on tokens(account_id);

-- The portfolio: what finished work requests created, changed or removed.
create table domains (
    id            integer primary key,
    account_id    integer not null references accounts(id),
    name          text not null unique,
    status        text not null check (status in ('active', 'on_hold', 'pending_release')),
    expires_at    integer not null,
    transfer_lock integer not null default 1,
    privacy       integer not null default 0,
    auth_code     text not null,
    contacts      text not null default '{}',
    nameservers   text not null default '[]',
    created_at    integer not null,
    updated_at    integer not null
);
create index domains_account on domains(account_id, name);

create table requests (
    id              integer primary key,
    account_id      integer not null references accounts(id),
    domain          text not null,
    operation       text not null,
    params          text not null default '{}',
    state           text not null,
    waiting_on      text,
    failure         text,
    missing         text not null default '[]',
    exec_date       integer,
    depends_on      integer references requests(id),
    attempts        integer not null default 0,
    -- processing (internal): the next fulfilment attempt is not before this.
    next_attempt_at integer,
    -- processing (waiting): the wait ends at this time.
    wait_until      integer,
    last_error      text,
    created_at      integer not null,
    updated_at      integer not null
);
create index requests_state on requests(state, id);
create index requests_account on requests(account_id, id);
create index requests_account_state on requests(account_id, state, id);
create index requests_domain on requests(domain, id);
create index requests_operation on requests(operation, id);
create index requests_depends on requests(depends_on) where depends_on is not null;
create index requests_due on requests(state, exec_date) where state = 'queued';
create index requests_waiting on requests(wait_until) where state = 'processing';

create table annotations (
    id         integer primary key,
    request_id integer not null references requests(id),
    actor      text not null,
    text       text not null,
    at         integer not null
);
create index annotations_request on annotations(request_id, id);

-- Append-only: every state change, the audit log and the event feed.
create table transitions (
    id         integer primary key,
    request_id integer not null references requests(id),
    account_id integer not null references accounts(id),
    from_state text,
    to_state   text not null,
    event      text not null,
    actor      text not null,
    reason     text,
    at         integer not null
);
create index transitions_request on transitions(request_id, id);
create index transitions_account on transitions(account_id, id);

create trigger transitions_append_only_update before update on transitions
begin
    select raise(abort, 'transitions are append-only');
end;
create trigger transitions_append_only_delete before delete on transitions
begin
    select raise(abort, 'transitions are append-only');
end;

create table notifications (
    id         integer primary key,
    account_id integer not null references accounts(id),
    request_id integer references requests(id),
    type       text not null,
    action     text not null,
    status     text not null,
    message    text not null,
    domain     text not null,
    created_at integer not null,
    read_at    integer
);
create index notifications_unread on notifications(account_id, id) where read_at is null;
create index notifications_account on notifications(account_id, id);
create index notifications_request on notifications(request_id);

create table invoice_items (
    id           integer primary key,
    request_id   integer not null references requests(id),
    account_id   integer not null references accounts(id),
    kind         text not null,
    description  text not null,
    amount_cents integer not null,
    created_at   integer not null,
    unique (request_id, kind)
);
create index invoice_items_account on invoice_items(account_id, id);

-- What a request did to the portfolio, so that a return to the user can undo it.
create table domain_changes (
    id         integer primary key,
    request_id integer not null references requests(id),
    domain     text not null,
    before     text,
    after      text,
    at         integer not null
);
create index domain_changes_request on domain_changes(request_id, id);

create table mail (
    id         integer primary key,
    request_id integer references requests(id),
    recipient  text not null,
    subject    text not null,
    body       text not null,
    state      text not null default 'pending' check (state in ('pending', 'sent', 'failed')),
    attempts   integer not null default 0,
    last_error text,
    created_at integer not null,
    sent_at    integer
);
create index mail_request on mail(request_id);
create index mail_pending on mail(id) where state = 'pending';

create table idempotency_keys (
    account_id integer not null references accounts(id),
    key        text not null,
    body_hash  text not null,
    status     integer not null,
    response   text not null,
    created_at integer not null,
    primary key (account_id, key)
);

create table sim_rules (
    position  integer primary key,
    pattern   text not null,
    operation text not null,
    outcome   text not null
);
