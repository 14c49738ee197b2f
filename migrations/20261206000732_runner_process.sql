-- What a container's instances run and are checked with (command, args, health check probe),
-- as JSON: the runner reads it back whole to start an instance.
alter table runner_applications add column process text not null default '{}';
