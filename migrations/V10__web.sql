-- The web desk's sign-in: a session is a cookie's secret, kept as its
-- SHA-256 digest, listed and revocable by its account; a set-password link
-- is a one-time secret, kept the same way, removed when it is used.
create table sessions (
    id integer primary key,
    account_id integer not null references accounts(id) on delete cascade,
    hash text not null unique,
    created_at integer not null,
    expires_at integer not null,
    address text,
    user_agent text
);
create index sessions_by_account on sessions(account_id);

create table password_links (
    hash text primary key,
    account_id integer not null references accounts(id) on delete cascade,
    created_at integer not null,
    expires_at integer not null
);
create index password_links_by_account on password_links(account_id);

-- The charges view lists a month of invoice items, of one account or all.
create index invoice_items_created on invoice_items(created_at);
