-- The sandbox each function and container asked for (`v1`: bubblewrap, `v2`: gVisor; empty:
-- the installation's default), and the one each runner spec names (`nuage.common.v1.Sandbox`:
-- 0 the runner's default, 1 v1, 2 v2).
alter table functions add column sandbox text not null default '';
alter table containers add column sandbox text not null default '';
alter table runner_applications add column sandbox integer not null default 0;
