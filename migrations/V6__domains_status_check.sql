-- The same portfolio table, with its status check written as comparisons.
-- SQLite codes `status in ('active', 'on_hold', 'pending_release')` by
-- building a temporary B-tree of the three values at every insert and
-- update of a row (OpenEphemeral in the statement's program), about 3% of
-- the writer while the ticker registered names (perf, B3). A check cannot
-- be changed in place, so the table is built again and its rows copied.
create table domains_v6 (
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
insert into domains_v6 (id, account_id, name, status, expires_at, transfer_lock, privacy,
                        auth_code, contacts, nameservers, created_at, updated_at)
    select id, account_id, name, status, expires_at, transfer_lock, privacy,
           auth_code, contacts, nameservers, created_at, updated_at
    from domains;
drop table domains;
alter table domains_v6 rename to domains;
create index domains_account on domains(account_id, name);
