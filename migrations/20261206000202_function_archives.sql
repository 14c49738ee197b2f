-- function_archives: the functions an upload URL was issued for, which may therefore have an
-- archive in the object store (owned by the functions service). Deleting a function that never
-- had one needs no call to the store. Functions made before this table may have one.
create table function_archives (
    function_id text primary key,
    requested_at bigint not null
);
insert into function_archives (function_id, requested_at) select id, created_at from functions;
