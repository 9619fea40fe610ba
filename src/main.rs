//! The `lifeboat` binary; everything happens in `lifeboat::cli`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(lifeboat::cli::main());
}
