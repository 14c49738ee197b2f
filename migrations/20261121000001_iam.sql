-- iam: organizations (tenants), their projects, and API keys.
create table organizations (
    id text primary key,
    name text not null,
    created_at bigint not null,
    updated_at bigint not null
);

create table projects (
    id text primary key,
    organization_id text not null,
    name text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index projects_organization_id on projects (organization_id);

-- Only an argon2id hash of a secret key is kept. `secret_digest` is a keyed HMAC of the secret
-- (key derived from the master key), so a request finds its key with one indexed lookup and
-- verifies the argon2 hash only on a cache miss.
create table api_keys (
    access_key text primary key,
    organization_id text not null,
    project_id text not null,
    secret_digest text not null,
    secret_hash text not null,
    description text not null,
    revoked_at bigint,
    created_at bigint not null,
    updated_at bigint not null,
    constraint api_keys_secret_digest_unique unique (secret_digest)
);
create index api_keys_organization_id on api_keys (organization_id);
