-- The runner's specs: what each application's current version runs. Instances themselves live
-- only as long as the process that runs them.
create table runner_applications (
    application_id text primary key,
    version text not null,
    kind integer not null,
    image text not null,
    environment text not null,
    memory_limit_mb integer not null,
    port integer not null,
    updated_at bigint not null
);
