-- The OpenSRS-style XCP face: a shared secret per account for signing, and
-- the order events its clients poll and acknowledge.

-- XCP signs with md5(md5(body + key) + key), so the key itself must be kept
-- (a digest of it would not let us check a signature).
alter table accounts add column api_key text;
update accounts set api_key = lower(hex(randomblob(16))) where api_key is null;

-- One row per change of an order's mapped `order_status` (SPEC section 4),
-- written in the transaction of the transition that caused it.
create table order_events (
    id           integer primary key,
    -- 32 hex, chosen once and shown to the client as `event_id`.
    event_id     text not null unique,
    account_id   integer not null references accounts(id),
    request_id   integer not null references requests(id),
    domain       text not null,
    order_status text not null,
    reg_type     text not null,
    created_at   integer not null,
    acked_at     integer
);
-- POLL: the oldest unacknowledged events of an account, and their count.
create index order_events_unacked on order_events(account_id, id) where acked_at is null;
create index order_events_request on order_events(request_id, id);
