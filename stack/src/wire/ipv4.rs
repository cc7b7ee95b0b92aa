//! TODO(wire helper): ipv4 wire format.
