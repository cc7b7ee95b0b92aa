//! TODO(wire helper): ethernet wire format.
