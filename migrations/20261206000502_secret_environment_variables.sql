-- Secret environment variables of namespaces, functions and containers: a JSON object of
-- name -> {hashed_value (argon2id), sealed (the value under a key derived from the master key,
-- bound to its owner and name)}. The runner keeps the sealed secrets of the version it runs.
alter table namespaces add column secrets text not null default '{}';
alter table functions add column secrets text not null default '{}';
alter table containers add column secrets text not null default '{}';
alter table runner_applications add column secrets text not null default '[]';
