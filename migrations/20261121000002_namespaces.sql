-- namespaces: a tenant's namespaces and their registry namespace.
create table namespaces (
    id text primary key,
    organization_id text not null,
    region text not null,
    project_id text not null,
    name text not null,
    description text not null,
    -- JSON object of name -> value.
    environment_variables text not null,
    -- pending -> ready; deleting -> gone; error.
    status text not null,
    error_message text not null,
    registry_namespace_id text not null,
    registry_endpoint text not null,
    created_at bigint not null,
    updated_at bigint not null,
    constraint namespaces_name_unique unique (organization_id, region, name)
);
create index namespaces_organization_id_region_created_at on namespaces (organization_id, region, created_at);
create index namespaces_status on namespaces (status);
