//! The per-VM supervisor: one detached process per simulated instance.

/// The supervisor's entry point; `args` excludes the program name.
pub fn main(args: Vec<String>) -> i32 {
    eprintln!("herd-vm: not implemented yet ({args:?})");
    2
}
