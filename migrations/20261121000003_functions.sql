-- functions: code in a runtime, inside a namespace (owned by the functions service).
create table functions (
    id text primary key,
    organization_id text not null,
    project_id text not null,
    region text not null,
    namespace_id text not null,
    name text not null,
    description text not null,
    -- JSON object of name -> value.
    environment_variables text not null,
    min_scale integer not null,
    max_scale integer not null,
    runtime text not null,
    memory_limit integer not null,
    timeout_ms bigint not null,
    handler text not null,
    privacy text not null,
    endpoint text not null,
    -- created -> pending -> ready | error; deleting -> gone.
    status text not null,
    error_message text not null,
    -- 1 when a change since the last deploy needs a redeploy.
    redeploy_due integer not null,
    created_at bigint not null,
    updated_at bigint not null,
    constraint functions_name_unique unique (namespace_id, name)
);
create index functions_organization_id_region_created_at on functions (organization_id, region, created_at);
create index functions_status on functions (status);
