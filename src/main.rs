//! The `lifeboat` binary; everything happens in `lifeboat::cli`.

fn main() {
    limit_malloc_arenas();
    if reads_whole_packs(std::env::args()) {
        map_large_buffers();
    }
    std::process::exit(lifeboat::cli::main());
}

/// glibc gives every thread that allocates its own arena and keeps each arena's high
/// water mark resident. The pipeline hands megabyte buffers between threads, so with
/// one arena per thread the resident set grows to several times what is in flight
/// (measured: first backup of 1 GiB peaks at 130–150 MiB with the default, 110 MiB
/// with two arenas, at the same speed). Two arenas keep lock contention low for our
/// handful of threads. Must run before any thread is started.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// Whether the command line is a `check` that reads data.
fn reads_whole_packs(args: impl Iterator<Item = String>) -> bool {
    let (mut check, mut data) = (false, false);
    for a in args.skip(1) {
        check |= a == "check";
        data |= a.starts_with("--read-data");
    }
    check && data
}

/// `check --read-data` holds a few whole packs (16 MiB each by default) and frees each
/// once verified. glibc raises its mmap threshold to the size of a mapping freed, so
/// from the second pack on packs come from the heap, whose holes stay resident: peaks of
/// 111–154 MiB on a 1.5 GiB repository. With the threshold fixed at 4 MiB every pack
/// is a mapping of its own, given back when freed: 78–81 MiB, for about 0.6 s more
/// system time (docs/benchmarks.md). Backups and restores keep the adaptive threshold:
/// there it cost up to a second of system time.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn map_large_buffers() {
    // SAFETY: mallopt only changes allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn map_large_buffers() {}

#[cfg(test)]
mod tests {
    use super::reads_whole_packs;

    fn args(line: &str) -> impl Iterator<Item = String> {
        line.split(' ').map(String::from).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn only_a_check_that_reads_data_maps_its_large_buffers() {
        assert!(reads_whole_packs(args("lifeboat check --read-data --repo r")));
        assert!(reads_whole_packs(args(
            "lifeboat --json check --repo r --read-data-subset 10%"
        )));
        assert!(!reads_whole_packs(args("lifeboat check --repo r")));
        assert!(!reads_whole_packs(args("lifeboat backup --repo r check")));
        assert!(
            !reads_whole_packs(args("check --read-data")),
            "the program name is not an argument"
        );
    }
}
