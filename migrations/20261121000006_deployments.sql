-- deployments: each deploy of a function (owned by the functions service).
create table deployments (
    id text primary key,
    function_id text not null,
    organization_id text not null,
    -- queued -> succeeded | failed; superseded when a newer deploy started first.
    status text not null,
    error_message text not null,
    archive_digest text not null,
    image_reference text not null,
    image_digest text not null,
    created_at bigint not null,
    finished_at bigint not null
);
create index deployments_function_id_created_at on deployments (function_id, created_at);

-- build_jobs: the builder's durable queue (owned by the builder service).
create table build_jobs (
    id text primary key,
    function_id text not null,
    organization_id text not null,
    namespace_id text not null,
    runtime text not null,
    handler text not null,
    archive_key text not null,
    repository text not null,
    -- queued -> running -> done | failed; superseded by a newer job of the same function.
    status text not null,
    attempts integer not null,
    -- Unix microseconds until which a running job belongs to its worker.
    lease_until bigint not null,
    -- What the build checked and ran, for the logs.
    log text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index build_jobs_status_created_at on build_jobs (status, created_at);
