//! TODO(wire helper): checksum wire format.
