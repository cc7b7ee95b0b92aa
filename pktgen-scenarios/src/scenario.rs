//! (being written: generators/scenarios helper)
