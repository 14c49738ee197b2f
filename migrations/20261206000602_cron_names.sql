-- v1beta1 crons have a name. Crons made before get the name a cron made without one gets:
-- `cron-` and the first 8 hex digits of its id.
alter table crons add column name text not null default '';
update crons set name = 'cron-' || substr(id, 1, 8);
