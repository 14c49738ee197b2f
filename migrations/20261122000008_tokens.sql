-- Each namespace's RSA key pair. The private key is sealed (AES-256-GCM under a key derived from
-- the master key, bound to the namespace id); it is never stored in the clear.
create table namespace_keys (
    namespace_id text primary key,
    public_key text not null,
    private_key_sealed text not null,
    bits integer not null,
    created_at bigint not null
);
