//! The simulated control plane's faults, mapped to herd's `ErrorKind`s in one place.
