//! The `nuage` binary, built beside the suites (Cargo gives integration tests the path of
//! their own package's binaries only), for tests that run nuage as a separate process.

fn main() -> std::process::ExitCode {
    nuage::cli::main()
}
