-- crons: schedules that call a function or a container (owned by the crons service).
create table crons (
    id text primary key,
    organization_id text not null,
    region text not null,
    -- A function or container id; no foreign key: another service owns those rows.
    application_id text not null,
    schedule text not null,
    -- JSON object.
    args text not null,
    -- pending -> ready; deleting -> gone.
    status text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index crons_organization_id_region_created_at on crons (organization_id, region, created_at);
create index crons_application_id on crons (application_id);
create index crons_status on crons (status);
