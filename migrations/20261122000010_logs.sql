-- Log lines of functions and containers: instance output, builds, cron firings, router
-- failures. Owned by the logs service; bounded per application by count and age.
create table log_lines (
    id text primary key,
    application_id text not null,
    -- The instance, build or cron firing it comes from.
    source_id text not null,
    -- stdout, stderr, build, cron, router.
    stream text not null,
    -- Unix microseconds.
    timestamp bigint not null,
    message text not null
);
create index log_lines_application_id_timestamp on log_lines (application_id, timestamp, id);
create index log_lines_timestamp on log_lines (timestamp);
-- Followers read what was stored after the last line they got (ids grow as lines are stored).
create index log_lines_application_id_id on log_lines (application_id, id);
