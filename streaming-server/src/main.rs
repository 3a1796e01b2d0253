//! The reference streaming and presence server is scheduled after the leakwatch library has
//! landed (see the project's issues). Until then this binary says so instead of pretending.

fn main() {
    eprintln!(
        "streaming-server: not built yet; the reference server follows once the leakwatch \
         library has landed. Try `cargo run --example caught_live` for the live demo."
    );
    std::process::exit(2);
}
