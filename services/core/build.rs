//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! workspace's `migrations/` at compile time, and cargo does not otherwise look there.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
