-- Custom domains: tags (containers v1), a JSON array of strings as on applications; and when a
-- ready domain's check last passed, so that ready domains are checked again now and then.
alter table domains add column tags text not null default '[]';
alter table domains add column checked_at bigint not null default 0;
update domains set checked_at = updated_at;
create index domains_kind_status_checked_at on domains (kind, status, checked_at);
