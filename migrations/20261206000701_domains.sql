-- domains: a tenant's own host names for its functions and containers (owned by the functions
-- and containers services, through the applications layer, as `rollouts` is). One table for
-- both kinds, so that a host name leads to one application at a time across every tenant.
create table domains (
    id text primary key,
    organization_id text not null,
    region text not null,
    -- 'function' or 'container': the service that checks and serves it.
    kind text not null,
    -- The function's or container's id; no foreign key: its row is the kind's table's.
    application_id text not null,
    -- Lower-case, without a trailing dot.
    hostname text not null,
    -- pending -> ready | error. Deleting removes the row.
    status text not null,
    -- `<scheme>://<hostname>` once ready; empty before.
    url text not null,
    -- Why it is in `error`; empty otherwise.
    error_message text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create unique index domains_hostname on domains (hostname);
create index domains_organization_id_region_application_id on domains (organization_id, region, application_id);
create index domains_application_id on domains (application_id);
create index domains_kind_status on domains (kind, status);
