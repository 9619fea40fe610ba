//! The `lifeboat` binary; everything happens in `lifeboat::cli`.

fn main() {
    std::process::exit(lifeboat::cli::main());
}
