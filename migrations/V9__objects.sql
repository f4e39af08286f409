-- Contact and host objects of an account (RFC 5733, RFC 5732), changed at
-- once rather than through work requests, and the transfers of a domain
-- from the account holding it here to another account here.

create table contacts (
    -- Chosen by the client (an EPP clIDType: 3 to 16 characters), unique
    -- across accounts.
    id         text primary key,
    account_id integer not null references accounts(id),
    name       text not null,
    org        text,
    -- A JSON list of 0 to 3 lines.
    street     text not null default '[]',
    city       text not null,
    sp         text,
    pc         text,
    cc         text not null,
    voice      text,
    fax        text,
    email      text not null,
    auth_info  text not null,
    created_at integer not null,
    updated_at integer not null
);
create index contacts_account on contacts(account_id, id);

create table hosts (
    -- A lower-case host name, unique across accounts.
    name       text primary key,
    account_id integer not null references accounts(id),
    -- A JSON list of IPv4 and IPv6 addresses as text.
    addresses  text not null default '[]',
    created_at integer not null,
    updated_at integer not null
);
create index hosts_account on hosts(account_id, name);

-- One row per transfer between accounts, made when its work request starts
-- to wait on the holder; the request keeps the state, this row who is who
-- and how it ended.
create table transfers (
    request_id      integer primary key references requests(id),
    domain          text not null,
    status          text not null check (status in ('pending', 'clientApproved',
                        'clientRejected', 'clientCancelled', 'serverApproved')),
    gaining_account integer not null references accounts(id),
    losing_account  integer not null references accounts(id),
    requested_at    integer not null,
    -- Approved by the ticker at this time unless answered before.
    act_by          integer not null,
    -- The domain's expiry once transferred.
    expires_at      integer,
    ended_at        integer
);
create index transfers_domain on transfers(domain, request_id);
create index transfers_pending on transfers(domain) where status = 'pending';
-- The open transfer requests, which each tick looks through for those of a
-- name another account holds here.
create index requests_open_transfers on requests(id)
    where operation = 'transfer' and state in ('queued', 'processing');
