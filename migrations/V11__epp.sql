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
