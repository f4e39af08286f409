-- When the lifecycle began in a database that held domains before it had
-- one (V8 ran on it after it was made): the steps that fell due before
-- then are not done, and an expiry that had passed by then counts from
-- then. Null, or no row: the lifecycle began with the database (or its
-- reset), as in every new one.

create table lifecycle_start (
    id         integer primary key check (id = 1),
    started_at integer
);

-- refinery dates each migration it applies (RFC 3339, UTC), and a new
-- database has every migration dated to when it was made: V8's date, when
-- it differs from V1's, is when the lifecycle began.
insert into lifecycle_start (id, started_at)
select 1,
       case when v8.applied_on <> v1.applied_on and exists (select 1 from domains)
            then cast(round((julianday(v8.applied_on) - 2440587.5) * 86400000.0) as integer)
       end
from refinery_schema_history v8, refinery_schema_history v1
where v8.version = 8 and v1.version = 1;
