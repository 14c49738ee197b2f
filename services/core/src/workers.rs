//! How many workers a pool runs where its configuration says `0` for "one per core" (the
//! namespaces service's provisioning, the tokens service's key making).

/// Returns `configured`, or the number of cores of this host when it is 0.
pub fn or_cores(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        workers => workers,
    }
}
