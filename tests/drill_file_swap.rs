//! The `file` endpoint's swap with a real nginx: whatever is planted in the endpoint's
//! directory (symlinks at likely temporary names, a symlink at the final name), the swap
//! writes only the endpoint's own file, keeps its mode and owner, and never follows a link
//! (a link at the final name already stops the run in its preflight).
//!
//! nginx is needed: missing, the tests say so and pass, unless `LIFEBOAT_REQUIRE_SERVERS=1`
//! (set by `tests/run.sh`), where they fail.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

mod servers;
mod support_drill;

use support_drill::gateway::{self, ORIGINAL, World};

#[test]
fn the_file_swap_keeps_mode_and_owner_and_ignores_planted_temp_links() {
    let Some(bin) = gateway::nginx("drill_file_swap") else {
        return;
    };
    let w = World::new(&bin, "127.0.0.1:1002", "");
    w.apply();
    let upstream = &w.nginx.upstream;
    // A secret-looking fragment owned by another user, readable by it alone.
    std::fs::set_permissions(upstream, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other = if nix_is_root() { 65534 } else { current_uid() };
    Command::new("chown")
        .arg(format!("{other}:{other}"))
        .arg(upstream)
        .status()
        .unwrap();
    // Links planted where a predictable temporary name would be.
    let victim = w.dir.join("victim");
    std::fs::write(&victim, "do not touch\n").unwrap();
    let dir = upstream.parent().unwrap();
    for name in [".upstream.conf.lifeboat-tmp", ".upstream.conf.tmp", "upstream.conf.tmp"] {
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }

    let (code, out, err) = w.failover("recover", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(w.upstream(), "upstream inference { server 127.0.0.1:1002; }\n");
    let meta = std::fs::symlink_metadata(upstream).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600, "mode kept");
    assert_eq!((meta.uid(), meta.gid()), (other, other), "owner kept");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "do not touch\n");
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("lifeboat-tmp") && n != ".upstream.conf.lifeboat-tmp")
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left: {leftovers:?}");
}

#[test]
fn a_symlink_at_the_final_name_is_refused_and_not_followed() {
    let Some(bin) = gateway::nginx("drill_file_swap") else {
        return;
    };
    let w = World::new(&bin, "127.0.0.1:1002", "");
    w.apply();
    let upstream = &w.nginx.upstream;
    let real = w.dir.join("real-upstream.conf");
    std::fs::rename(upstream, &real).unwrap();
    std::os::unix::fs::symlink(&real, upstream).unwrap();

    // The preflight reads the file as the swap would, so the run stops before the
    // restore: nothing written, nothing restored.
    let (code, out, err) = w.failover("recover", &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("preflight of playbook recover failed")
            && err.contains("endpoint gateway to standby")
            && err.contains("is a symlink")
            && err.contains("set `path` to the real file"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(w.dir.join("restored")).map_or(true, |mut d| d.next().is_none()),
        "nothing was restored"
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), ORIGINAL);
    assert!(std::fs::symlink_metadata(upstream).unwrap().file_type().is_symlink());
}

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn nix_is_root() -> bool {
    current_uid() == 0
}
