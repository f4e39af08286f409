-- Passwords of accounts (argon2 PHC strings): one for the web desk, one
-- for EPP logins; either may be unset. The failed sign-ins of the last
-- minutes, and the refusals they caused, per account and per address.
alter table accounts add column password_hash text;
alter table accounts add column epp_password_hash text;

-- `subject` is `account:ID` or `address:IP`; `secret` is `web` or `epp`.
create table sign_in_failures (
    id      integer primary key,
    secret  text not null,
    subject text not null,
    at      integer not null
);
create index sign_in_failures_subject on sign_in_failures(secret, subject, at);

create table sign_in_locks (
    secret  text not null,
    subject text not null,
    until   integer not null,
    primary key (secret, subject)
) without rowid;
