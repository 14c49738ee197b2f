-- rollouts: the version of each function or container being started (owned by the functions
-- and containers services, through the applications layer). A row lives from the moment a
-- version is handed to the runner until the application's status records how it started; the
-- process starting it holds a lease it renews, so a roll-out whose process died is found and
-- resumed by a reconciler, and two replicas never run the same one at once.
create table rollouts (
    application_id text primary key,
    -- 'function' or 'container'.
    kind text not null,
    version text not null,
    image text not null,
    -- Which process holds it (random per process) and until when (Unix microseconds).
    holder text not null,
    lease_until bigint not null,
    -- Times it was taken: a roll-out interrupted too often fails with a message.
    attempts integer not null,
    created_at bigint not null
);
create index rollouts_kind_lease_until on rollouts (kind, lease_until);
