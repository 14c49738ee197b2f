-- The CPU quota of an application's current version (thousandths of a core; 0: none).
alter table runner_applications add column cpu_limit_mcpu integer not null default 0;
