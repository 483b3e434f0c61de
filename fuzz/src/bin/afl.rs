//! AFL++ harness: `switchyard-fuzz-afl TARGET` (built by `cargo afl build --features afl`,
//! run by `scripts/fuzz.sh`). Reads inputs the AFL++ way (persistent mode, shared memory).

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = switchyard_fuzz::target(&name) else {
        let names: Vec<&str> = switchyard_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "usage: switchyard-fuzz-afl TARGET (one of {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
