//! TODO(wire helper): udp wire format.
