//! `saps-pktgen`: run a load-test scenario (being written).

fn main() {
    eprintln!("saps-pktgen: not implemented yet");
    std::process::exit(2);
}
