-- v1beta1 fields: tags on namespaces, functions and containers (JSON array of strings), and
-- when a function or container last became ready after a deploy (Unix microseconds, 0: never).
alter table namespaces add column tags text not null default '[]';
alter table functions add column tags text not null default '[]';
alter table functions add column ready_at bigint not null default 0;
alter table containers add column tags text not null default '[]';
alter table containers add column ready_at bigint not null default 0;
