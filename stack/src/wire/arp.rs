//! TODO(wire helper): arp wire format.
