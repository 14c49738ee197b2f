//! `nuage`: the command line (see `nuage::cli`).

fn main() -> std::process::ExitCode {
    nuage::cli::main()
}
