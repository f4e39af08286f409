-- Indexes that hold only what two of the ticker's queries look for. Without
-- them the dependency check read every queued request and its dependency
-- (21 ms a query at 100,000 queued) and the fulfilment query every request
-- in processing, waiting ones included.
create index requests_queued_deps on requests(depends_on)
    where state = 'queued' and depends_on is not null;
create index requests_fulfil on requests(id)
    where state = 'processing' and waiting_on = 'internal';
