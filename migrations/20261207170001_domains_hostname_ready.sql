-- A host name leads to one application at a time, among ready domains only: a domain whose
-- check failed (or has yet to pass) holds its name from nobody else, so that a tenant who names
-- another's host name first cannot keep it from the tenant whose DNS points it at its own
-- application. A tenant still names a host name once.
drop index domains_hostname;
create unique index domains_hostname_ready on domains (hostname) where status = 'ready';
create unique index domains_organization_id_hostname on domains (organization_id, hostname);
