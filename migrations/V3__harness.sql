-- Simulated-registry rules that stop after N uses, answer late or apply by
-- chance; and the answers the simulated registry is holding back.

-- Uses left; null: the rule never runs out.
alter table sim_rules add column times integer;
-- How late the registry answers, in milliseconds of the regdesk clock.
alter table sim_rules add column latency_ms integer not null default 0;
-- The chance (0..1) that the rule applies to a matching request; null: always.
alter table sim_rules add column probability real;

-- An outcome the simulated registry decided but answers only at `answer_at`.
create table sim_deferred (
    request_id integer primary key references requests(id),
    outcome    text,
    answer_at  integer not null
);
