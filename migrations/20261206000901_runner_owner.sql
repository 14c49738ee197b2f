-- The tenant and namespace of each application's current version: the `kubernetes` backend
-- places instances in a Kubernetes namespace per namespace and labels them with both. Empty
-- for versions deployed before: they are given again on their next deployment.
alter table runner_applications add column organization_id text not null default '';
alter table runner_applications add column namespace_id text not null default '';
