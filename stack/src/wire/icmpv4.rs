//! TODO(wire helper): icmpv4 wire format.
