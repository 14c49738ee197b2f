-- triggers: message sources whose every message is delivered to a function or a container
-- (owned by the triggers service, served by the crons role).
create table triggers (
    id text primary key,
    organization_id text not null,
    region text not null,
    -- The application's project and namespace, kept for lists by either; no foreign keys:
    -- other services own those rows.
    project_id text not null,
    namespace_id text not null,
    -- A function or container id.
    application_id text not null,
    name text not null,
    description text not null,
    -- Scaleway's input type: `scw_nats` (the only one served).
    input_type text not null,
    -- The NATS subject and account (the operator maps accounts to servers); the Messaging and
    -- Queuing project and region are echoed as given.
    subject text not null,
    account_id text not null,
    mnq_project_id text not null,
    mnq_region text not null,
    -- creating -> ready | error (and back, as the source answers); deleting -> gone.
    status text not null,
    -- Why it is in `error`; null otherwise.
    error_message text,
    created_at bigint not null,
    updated_at bigint not null
);
create index triggers_organization_id_region_created_at on triggers (organization_id, region, created_at);
create index triggers_application_id on triggers (application_id);
create index triggers_updated_at on triggers (updated_at);
