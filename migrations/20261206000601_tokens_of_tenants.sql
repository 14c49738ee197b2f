-- The tokens tenants made through v1beta1 `/tokens` (owned by the tokens service). The JWT
-- itself is not stored: it is shown once. A deleted token keeps its row, `revoked_at` set, as
-- long as it could still open something, so that routers refuse it by its `jti` (its id).
create table tokens (
    id text primary key,
    organization_id text not null,
    region text not null,
    -- The namespace whose key signs it; no foreign key: another service owns namespaces.
    namespace_id text not null,
    -- Empty for a namespace-scoped token, else the function's or container's id.
    application_id text not null,
    description text not null,
    -- Unix seconds; 0: never.
    expires_at bigint not null,
    -- Unix microseconds; null while the token is live.
    revoked_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create index tokens_organization_id_region_created_at on tokens (organization_id, region, created_at);
create index tokens_namespace_id on tokens (namespace_id);
create index tokens_revoked_at on tokens (revoked_at);
