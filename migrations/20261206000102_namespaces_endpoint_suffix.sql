-- Endpoints are `<namespace name without hyphens><endpoint_suffix>-<name>`: the suffix, 8
-- random characters chosen when a namespace is created and kept for its life, makes them unique
-- across tenants (names are unique only within one). SQL has no portable random generator, so
-- the namespaces service gives existing rows their suffix at start-up; until then it is null,
-- which the unique index allows any number of times.
alter table namespaces add column endpoint_suffix text;
create unique index namespaces_endpoint_suffix_unique on namespaces (endpoint_suffix);
