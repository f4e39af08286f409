-- What the EPP face keeps: the test CA and the server certificate it
-- signed (made once, so that a restart serves the same ones and clients
-- trusting the CA keep working), and the client's and the server's
-- transaction ids of each work request placed through EPP (a poll message
-- about its end carries them in panData).

create table epp_tls (
    id         integer primary key check (id = 1),
    ca_cert    text not null,
    cert       text not null,
    key        text not null,
    created_at integer not null
);

create table epp_transactions (
    request_id integer primary key references requests(id),
    cl_trid    text,
    sv_trid    text not null,
    pending    integer not null default 0 check (pending in (0, 1)),
    at         integer not null
);

-- Each account's count of unread notifications, kept by triggers: every
-- EPP poll and ack answers it (msgQ count), and counting a long queue's
-- index entries at each one cost more than the rest of the command.
create table unread_counts (
    account_id integer primary key references accounts(id) on delete cascade,
    unread     integer not null
);
insert into unread_counts (account_id, unread)
    select account_id, count(*) from notifications where read_at is null group by account_id;

create trigger unread_counts_insert after insert on notifications when new.read_at is null
begin
    insert into unread_counts (account_id, unread) values (new.account_id, 1)
        on conflict (account_id) do update set unread = unread + 1;
end;
create trigger unread_counts_read after update of read_at on notifications
    when old.read_at is null and new.read_at is not null
begin
    update unread_counts set unread = unread - 1 where account_id = new.account_id;
end;
create trigger unread_counts_unread after update of read_at on notifications
    when old.read_at is not null and new.read_at is null
begin
    update unread_counts set unread = unread + 1 where account_id = new.account_id;
end;
create trigger unread_counts_delete after delete on notifications when old.read_at is null
begin
    update unread_counts set unread = unread - 1 where account_id = old.account_id;
end;
