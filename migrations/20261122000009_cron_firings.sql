-- One row per (cron, scheduled time): the unique key is what makes a firing happen once when
-- several crons replicas share the database. Owned by the crons service.
create table cron_firings (
    id text primary key,
    cron_id text not null,
    organization_id text not null,
    application_id text not null,
    -- Unix microseconds of the scheduled time (UTC).
    scheduled_at bigint not null,
    -- claimed -> sending -> succeeded | failed. A claimed row whose lease ran out is taken over
    -- by another replica; a sending row is never sent again.
    status text not null,
    -- The replica holding it and until when (Unix microseconds).
    replica text not null,
    lease_until bigint not null,
    -- How many replicas held it.
    attempts bigint not null,
    -- Unix microseconds when the request left, and how it went.
    started_at bigint,
    http_status bigint,
    duration_ms bigint,
    error text not null,
    created_at bigint not null,
    unique (cron_id, scheduled_at)
);
create index cron_firings_status_lease on cron_firings (status, lease_until);
create index cron_firings_cron_id_scheduled_at on cron_firings (cron_id, scheduled_at);
-- The scheduler follows changes to crons by this column.
create index crons_updated_at on crons (updated_at);
