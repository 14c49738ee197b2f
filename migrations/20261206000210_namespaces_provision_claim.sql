-- A pending namespace is provisioned (its key pair made) by one reconciler at a time: the
-- reconciler that claims it holds it until `claimed_until` (microseconds since the epoch) and
-- renews the claim while it works; a reconciler that dies loses it when the claim runs out, and
-- the next sweep, on any replica, resumes it. A failed attempt sets it to when to try again.
alter table namespaces add column claimed_until bigint not null default 0;
