//! (being written: testbed/delay-router helper)
