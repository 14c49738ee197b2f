-- The builder takes organizations in turn: it looks up when each was last served.
create index build_jobs_organization_id_updated_at on build_jobs (organization_id, updated_at);
