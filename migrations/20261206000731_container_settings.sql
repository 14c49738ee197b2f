-- v1beta1 container settings (port, max_concurrency, protocol, local storage, command, args,
-- health check, scaling option, an mvCPU of its own), as one JSON object: only the containers
-- service reads them, and they change together.
alter table containers add column settings text not null default '{}';
