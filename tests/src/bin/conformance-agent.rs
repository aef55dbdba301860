//! The simulator's per-VM agent, built with this package so its tests can start real
//! instances without depending on another package's binary.
fn main() {
    std::process::exit(herd_local::agent::main(std::env::args().skip(1).collect()));
}
