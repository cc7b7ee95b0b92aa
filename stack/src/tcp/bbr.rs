//! BBR congestion control (model-based; filled in by the BBR work).
