//! Replays the committed seeds and regression inputs through the structured harnesses without
//! libFuzzer (`cargo test` in `stack/fuzz`), so a harness or stack change that breaks them is
//! caught by a plain test run.

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = fs::read(&path).unwrap();
            eprintln!("{target}: {}", path.display());
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn tcp_connection_seeds() {
    assert!(replay("tcp_connection", saps_stack_fuzz::tcp_connection::run) > 0);
}

#[test]
fn iface_frames_seeds() {
    assert!(replay("iface_frames", saps_stack_fuzz::iface_frames::run) > 0);
}

#[test]
fn empty_and_short_inputs() {
    for n in 0..64 {
        let data = vec![0xa5u8; n];
        saps_stack_fuzz::tcp_connection::run(&data);
        saps_stack_fuzz::iface_frames::run(&data);
    }
}
