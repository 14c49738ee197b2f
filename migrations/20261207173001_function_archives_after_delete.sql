-- An upload URL outlives its function (it is valid for storage.url_ttl_seconds): a PUT with it
-- after the function was deleted would leave an archive nothing owns. A deleted function's
-- record stays until its last URL has expired, and its archive is removed again meanwhile, the
-- longest unswept first.
alter table function_archives add column urls_valid_until bigint not null default 0;
alter table function_archives add column deleted_at bigint;
alter table function_archives add column swept_at bigint not null default 0;
