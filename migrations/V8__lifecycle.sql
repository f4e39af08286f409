-- The domain lifecycle: reminders, auto-renew, expiry, grace, redemption,
-- pending delete and deletion, each step done once per domain and expiry.

-- The `auto_renew` of the account's domains that have none of their own.
alter table accounts add column auto_renew integer not null default 0;

-- Whether an order to renew is placed before expiry; null: as the owner's
-- account says.
alter table domains add column auto_renew integer;
-- active, expired (in grace), redemption or pending_delete.
alter table domains add column lifecycle text not null default 'active'
    check (lifecycle = 'active' or lifecycle = 'expired' or lifecycle = 'redemption'
           or lifecycle = 'pending_delete');
-- The next step of the domain's lifecycle and when it is due. None: the
-- cycle's first step, due a fixed time before `expires_at` (a new or
-- renewed domain needs no write to be scheduled); `wait` (never due) holds
-- the steps while a renewal or a restore is under way.
alter table domains add column step text;
alter table domains add column step_at integer;

-- The sweep reads what is due, oldest first, from these two indexes alone:
-- scheduled steps, and the first steps of cycles (by expiry).
create index domains_due on domains(step_at) where step_at is not null;
create index domains_fresh on domains(expires_at) where step is null;
-- Lists by lifecycle; `active`, most of the portfolio, is left out.
create index domains_lifecycle on domains(lifecycle, name) where lifecycle <> 'active';

-- Every step done: what makes each happen once however the clock moves.
create table domain_steps (
    id         integer primary key,
    domain_id  integer not null,
    -- The expiry the step belongs to: a renewal starts a new cycle.
    expires_at integer not null,
    step       text not null,
    due_at     integer not null,
    done_at    integer not null,
    -- The order the step placed (auto-renew, deletion).
    request_id integer references requests(id),
    note       text,
    unique (domain_id, expires_at, step)
);

-- A new expiry (a renewal, a restore) starts the cycle again.
create trigger domains_new_expiry after update of expires_at on domains
when new.expires_at <> old.expires_at
begin
    update domains set lifecycle = 'active', step = null, step_at = null
    where id = new.id;
end;

-- A renewal or restore that ended lets the held steps go on.
create trigger requests_renewal_ended after update of state on requests
when (new.state = 'finished' or new.state = 'failed')
     and (new.operation = 'renew' or new.operation = 'restore')
begin
    update domains set step = null, step_at = null
    where name = new.domain and step = 'wait';
end;

-- OpenSRS's DOMAIN events of the lifecycle (EXPIRED, RENEWED, DELETED),
-- polled and acknowledged on the XCP face with the order events.
create table domain_events (
    id          integer primary key,
    event_id    text not null unique,
    account_id  integer not null references accounts(id),
    domain      text not null,
    event       text not null,
    -- The event's `object_data`, as JSON.
    object_data text not null,
    created_at  integer not null,
    acked_at    integer
);
create index domain_events_unacked on domain_events(account_id, id) where acked_at is null;
