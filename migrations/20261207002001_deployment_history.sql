-- deployments become the history of functions and containers alike (owned by the functions and
-- containers services through the applications layer, as rollouts are): each row is marked
-- with its kind, and records when it last became the one serving, so that the history says
-- which deployment is active and a rollback can roll an earlier one out again.
alter table deployments rename column function_id to application_id;
-- 'function' or 'container'.
alter table deployments add column kind text not null default 'function';
-- Unix microseconds when its roll-out (a deploy's or a rollback's) last ended ready; 0: never.
-- The active deployment is the one with the latest.
alter table deployments add column activated_at bigint not null default 0;
-- Before this, the newest built deployment of a ready function was the one serving.
update deployments set activated_at = finished_at where status = 'succeeded';
