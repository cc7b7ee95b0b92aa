//! saps appliance library: port backends and the OS interface they use. The `saps` binary and
//! the other appliance modules build on it.
#![deny(unsafe_code)]

pub mod os;
pub mod port;
