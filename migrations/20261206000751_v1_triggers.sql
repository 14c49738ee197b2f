-- Containers v1 triggers. NATS triggers on the tenant's own servers: their URLs (JSON array),
-- the credentials to log in with (sealed with the master key; empty: none), where in the
-- application each message goes, and tags. Cron triggers are crons with a delivery (JSON: body,
-- headers, path, method, time zone, description, tags; empty: a POST of `args` to `/`).
alter table triggers add column server_urls text not null default '[]';
alter table triggers add column credentials text not null default '';
alter table triggers add column http_path text not null default '/';
alter table triggers add column http_method text not null default 'post';
alter table triggers add column tags text not null default '[]';
alter table crons add column delivery text not null default '';
