//! The per-VM supervisor of the local simulator (see `herd_local::agent`).

fn main() {
    std::process::exit(herd_local::agent::main(std::env::args().skip(1).collect()));
}
