//! The audit trails of a plan's regions checked against each other, through the
//! `lifeboat` binary: each region keeps a copy of the other's trail, `audit verify
//! --plan` and `sync --plan` catch a lagging copy up, and a trail rolled back or
//! rewritten in one region is damage (exit 3) naming the region and the event, even
//! for a client that never saw the trail before. The copy is never overwritten. Runs
//! on two local regions and on two SeaweedFS buckets (`bash tests/run.sh --servers
//! cargo test --test audit_regions`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

mod servers;
#[macro_use]
mod support_s3;

use support_s3::{PASSWORD, WeedEnv, both, stdout};

const REGIONS: [&str; 2] = ["east", "west"];

/// Where the regions live.
enum Place {
    Local,
    Weed { env: Box<WeedEnv>, buckets: [String; 2] },
}

/// A plan over regions `east` and `west`, a source tree, and a cache directory per client.
struct Site {
    dir: TempDir,
    place: Place,
}

impl Site {
    fn local() -> Site {
        Site::with(Place::Local)
    }

    fn weed(env: WeedEnv) -> Site {
        let buckets = [
            env.new_bucket(0, "trail-east", false),
            env.new_bucket(0, "trail-west", false),
        ];
        Site::with(Place::Weed {
            env: Box::new(env),
            buckets,
        })
    }

    fn with(place: Place) -> Site {
        let site = Site {
            dir: tempfile::tempdir().unwrap(),
            place,
        };
        std::fs::create_dir_all(site.path("source")).unwrap();
        std::fs::write(site.path("source/weights.bin"), "w".repeat(5000)).unwrap();
        site.write_plan();
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn address(&self, region: usize) -> String {
        match &self.place {
            Place::Local => self.path(REGIONS[region]).display().to_string(),
            Place::Weed { env, buckets } => env.address(0, &buckets[region], "repo"),
        }
    }

    fn write_plan(&self) {
        let mut toml = String::from("version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n");
        for (n, name) in REGIONS.iter().enumerate() {
            toml.push_str(&format!(
                "[regions.{name}]\naddress = \"{}\"\ncreate = true\n\n",
                self.address(n)
            ));
        }
        toml.push_str(&format!(
            "[datasets.models]\npaths = [\"{}\"]\nschedule = \"@hourly\"\nregions = [\"east\", \"west\"]\n\
             rpo = \"2h\"\nretention = {{ keep_last = 5 }}\n\n\
             [playbooks.rehearse]\nrto = \"10m\"\n\
             steps = [{{ kind = \"restore\", dataset = \"models\", region = \"east\", target = \"drill-restore\" }}]\n",
            self.path("source").display()
        ));
        std::fs::write(self.path("plan.toml"), toml).unwrap();
    }

    /// Run `lifeboat ARGS` as a client whose cache directory is `cache`.
    fn run_as(&self, cache: &str, args: &[&str]) -> Output {
        let mut cmd = match &self.place {
            Place::Local => Command::new(env!("CARGO_BIN_EXE_lifeboat")),
            Place::Weed { env, .. } => env.command(&[], &env.secret),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("XDG_CACHE_HOME", self.path(cache))
            .env_remove("LIFEBOAT_REPO")
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_as("cache", args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", both(&out));
        out
    }

    /// Change the source and back it up to both regions, due or not.
    fn apply(&self, content: &str) {
        std::fs::write(self.path("source/notes.txt"), content).unwrap();
        self.ok(&["-q", "apply", "--force", "plan.toml"]);
    }

    /// The objects of `region` under `prefix`, by name (below the repository) → bytes digest.
    fn objects(&self, region: usize, prefix: &str) -> BTreeMap<String, String> {
        match &self.place {
            Place::Local => {
                let dir = self.path(REGIONS[region]).join(prefix);
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    return BTreeMap::new();
                };
                entries
                    .map(|e| e.unwrap().path())
                    .map(|p| (key_of(prefix, &p), digest(&std::fs::read(&p).unwrap())))
                    .collect()
            }
            Place::Weed { env, buckets } => {
                let all = env.object_hashes(0, &buckets[region], &format!("repo/{prefix}"));
                all.into_iter()
                    .map(|(k, v)| (format!("{prefix}{}", name_of(&k)), v))
                    .collect()
            }
        }
    }

    fn read(&self, region: usize, key: &str) -> Vec<u8> {
        match &self.place {
            Place::Local => std::fs::read(self.path(REGIONS[region]).join(key)).unwrap(),
            Place::Weed { env, buckets } => {
                let out = env.python(0, &["get-hex", &buckets[region], &format!("repo/{key}")]);
                assert!(out.status.success(), "get {key}: {}", both(&out));
                hex::decode(out.stdout).unwrap()
            }
        }
    }

    fn write(&self, region: usize, key: &str, bytes: &[u8]) {
        match &self.place {
            Place::Local => std::fs::write(self.path(REGIONS[region]).join(key), bytes).unwrap(),
            Place::Weed { env, buckets } => {
                let out = env.python(
                    0,
                    &["put-hex", &buckets[region], &format!("repo/{key}"), &hex::encode(bytes)],
                );
                assert!(out.status.success(), "put {key}: {}", both(&out));
            }
        }
    }

    fn delete(&self, region: usize, key: &str) {
        match &self.place {
            Place::Local => std::fs::remove_file(self.path(REGIONS[region]).join(key)).unwrap(),
            Place::Weed { env, buckets } => {
                let out = env.python(0, &["delete", &buckets[region], &format!("repo/{key}")]);
                assert!(out.status.success(), "delete {key}: {}", both(&out));
            }
        }
    }
}

fn key_of(prefix: &str, path: &Path) -> String {
    format!("{prefix}{}", path.file_name().unwrap().to_string_lossy())
}

fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

fn digest(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{}:{:016x}", bytes.len(), h.finish())
}

fn segment(seq: u64) -> String {
    format!("audit/{seq:020}")
}

/// Exit 3, one `error:` line, and every one of `needles` said.
fn expect_damage(out: &Output, needles: &[&str], what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{what}: {}", both(out));
    let errors = stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "{what}: one error line expected: {stderr}");
    let said = format!("{}{stderr}", stdout(out));
    for needle in needles {
        assert!(said.contains(needle), "{what}: {needle:?} not in {said}");
    }
}

/// The events of each region's own trail, from `audit log --plan --json`.
fn events_by_region(site: &Site) -> BTreeMap<String, Vec<Value>> {
    let out = site.ok(&["--json", "audit", "log", "--plan", "plan.toml"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let regions = doc["regions"].as_array().unwrap();
    regions
        .iter()
        .map(|r| {
            let name = r["region"].as_str().unwrap().to_string();
            (name, r["trail"]["events"].as_array().unwrap().clone())
        })
        .collect()
}

/// West's copy of east's trail holds east's segments, byte for byte.
fn assert_copied_byte_for_byte(site: &Site) {
    let own: Vec<String> = site.objects(0, "audit/").values().cloned().collect();
    let copied: Vec<String> = site.objects(1, "audit-copies/east/").values().cloned().collect();
    assert!(!own.is_empty());
    assert_eq!(own, copied, "west's copy of east's trail");
}

/// Back up the source straight into east, past the plan: east's trail grows alone.
fn backup_into_east(site: &Site, content: &str) {
    std::fs::write(site.path("source/notes.txt"), content).unwrap();
    let east = site.address(0);
    site.ok(&["-q", "backup", "--repo", &east, "source"]);
}

fn copies_are_caught_up_and_then_agree(site: &Site) {
    site.apply("one");
    let events = events_by_region(site);
    assert_eq!(events.len(), 2, "{events:?}");
    for (region, list) in &events {
        let actions: Vec<&str> = list.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions.first(), Some(&"init"), "{region}: {actions:?}");
        assert!(actions.contains(&"backup"), "{region}: {actions:?}");
    }
    // apply brought each region's copy of the other's trail up to date.
    assert_copied_byte_for_byte(site);
    let out = site.ok(&["audit", "verify", "--plan", "plan.toml"]);
    let said = stdout(&out);
    for (owner, holder) in [("east", "west"), ("west", "east")] {
        let n = events[owner].len();
        let agrees = format!("region {holder}'s copy of region {owner}'s trail agrees with it ({n} event(s))");
        assert!(said.contains(&agrees), "{agrees:?} not in {said}");
    }

    backup_into_east(site, "two");
    let out = site.ok(&["audit", "verify", "--plan", "plan.toml"]);
    let lagging =
        "region west's copy of region east's trail was 1 event(s) behind (lagging): caught up, 1 segment(s) copied";
    assert!(stdout(&out).contains(lagging), "{}", both(&out));
    assert_copied_byte_for_byte(site);

    backup_into_east(site, "three");
    let out = site.ok(&["sync", "--plan", "plan.toml"]);
    let lagging = "region west's copy of region east's trail was 1 event(s) behind (lagging): caught up";
    assert!(stdout(&out).contains(lagging), "{}", both(&out));
    assert_copied_byte_for_byte(site);

    let events = events_by_region(site);
    let out = site.ok(&["audit", "export", "--plan", "plan.toml"]);
    let lines: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let times: Vec<&str> = lines.iter().map(|l| l["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "merged by time: {times:?}");
    for (region, list) in &events {
        let from: Vec<&Value> = lines.iter().filter(|l| &l["region"] == region).collect();
        assert_eq!(from.len(), list.len(), "{region}: {lines:?}");
        assert_eq!(from.last().map(|l| &l["seq"]), list.last().map(|e| &e["seq"]));
    }
    assert_eq!(lines.len(), events.values().map(Vec::len).sum::<usize>());
    let only = site.ok(&["audit", "log", "--plan", "plan.toml", "--region", "west"]);
    let said = stdout(&only);
    assert!(said.lines().all(|l| !l.starts_with("east")), "{said}");
    assert!(said.contains("region west:"), "{said}");
}

fn a_trail_rolled_back_or_rewritten_in_one_region(site: &Site) {
    site.apply("one");
    site.apply("two");
    site.ok(&["audit", "verify", "--plan", "plan.toml"]);
    let own = site.objects(0, "audit/");
    let last = own.len() as u64 - 1;
    let copy_before = site.objects(1, "audit-copies/east/");
    // Someone with write access to east's storage takes its last event away...
    site.delete(0, &segment(last));
    let out = site.run_as("stranger", &["audit", "verify", "--plan", "plan.toml"]);
    let needles = [
        format!(
            "the audit trail of region east holds {last} events, but region west keeps a copy of {}",
            last + 1
        ),
        "rolled back or cut".to_string(),
    ];
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    expect_damage(&out, &needles, "rolled back");
    // ...and a client that never saw the trail writes a new event in its place.
    let east = site.address(0);
    let out = site.run_as("stranger", &["-q", "backup", "--repo", &east, "source"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let out = site.run_as("stranger", &["audit", "verify", "--plan", "plan.toml"]);
    let needle = format!("audit event {last} of region east differs from the copy region west keeps of it");
    expect_damage(&out, &[&needle, "tampered"], "rewritten");
    let out = site.run_as("stranger", &["sync", "--plan", "plan.toml"]);
    expect_damage(&out, &[&needle], "sync");
    assert_eq!(
        site.objects(1, "audit-copies/east/"),
        copy_before,
        "the copy is never overwritten"
    );
}

fn a_snapshot_no_event_wrote_is_unaccounted_for(site: &Site) {
    site.apply("one");
    // A snapshot written to west alone, then put into east behind Lifeboat's back (the
    // regions share their key, so it opens there).
    std::fs::write(site.path("source/notes.txt"), "west only").unwrap();
    let west = site.address(1);
    let out = site.ok(&["-q", "--json", "backup", "--repo", &west, "source"]);
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = format!("snapshots/{id}");
    site.write(0, &key, &site.read(1, &key));
    let east = site.address(0);
    let needles = ["is unaccounted for", "no audit event wrote it", id.as_str()];
    expect_damage(&site.run(&["check", "--repo", &east]), &needles, "check");
    let out = site.run(&["--json", "audit", "verify", "--repo", &east]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["problems"][0]["kind"], "unaccounted", "{doc}");
    assert_eq!(doc["problems"][0]["snapshot"], id.as_str(), "{doc}");
    expect_damage(
        &site.run(&["audit", "verify", "--plan", "plan.toml"]),
        &needles,
        "by plan",
    );
    site.ok(&["check", "--repo", &west]);
}

fn a_drill_is_in_every_region_trail_with_its_actor(site: &Site) {
    site.apply("one");
    let mut cmd = match &site.place {
        Place::Local => Command::new(env!("CARGO_BIN_EXE_lifeboat")),
        Place::Weed { env, .. } => env.command(&[], &env.secret),
    };
    let out = cmd
        .args(["-q", "drill", "--plan", "plan.toml", "--state", "state", "rehearse"])
        .current_dir(site.dir.path())
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("XDG_CACHE_HOME", site.path("cache"))
        .env("USER", "drill-officer")
        .env_remove("LIFEBOAT_REPO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "drill: {}", both(&out));
    for (region, events) in events_by_region(site) {
        let drills: Vec<&Value> = events.iter().filter(|e| e["action"] == "drill").collect();
        assert_eq!(drills.len(), 2, "a start and an end in {region}: {events:?}");
        assert_eq!(drills[0]["outcome"], "started", "{region}: {events:?}");
        for drill in &drills {
            assert!(
                drill["actor"].as_str().unwrap().starts_with("drill-officer@"),
                "{drill}"
            );
        }
        let drill = drills[1];
        assert_eq!(drill["outcome"], "ok", "{drill}");
        let objects: Vec<&str> = drill["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(objects.first(), Some(&"playbook rehearse"), "{drill}");
        assert!(objects.iter().any(|o| o.starts_with("report ")), "{drill}");
        let restores: Vec<&Value> = events.iter().filter(|e| e["action"] == "restore").collect();
        let expected = usize::from(region == "east");
        assert_eq!(
            restores.len(),
            expected,
            "the drill restored from east only: {region}: {events:?}"
        );
        if let Some(r) = restores.first() {
            assert!(r["actor"].as_str().unwrap().starts_with("drill-officer@"), "{r}");
        }
    }
}

on_local_and_seaweedfs! {
    copies_are_caught_up_and_then_agree => local_copies_are_caught_up_and_then_agree, seaweedfs_copies_are_caught_up_and_then_agree;
    a_trail_rolled_back_or_rewritten_in_one_region => local_a_region_trail_rolled_back_or_rewritten_is_damage, seaweedfs_a_region_trail_rolled_back_or_rewritten_is_damage;
    a_snapshot_no_event_wrote_is_unaccounted_for => local_a_snapshot_no_event_wrote_is_unaccounted_for, seaweedfs_a_snapshot_no_event_wrote_is_unaccounted_for;
}

#[test]
fn a_drill_is_recorded_in_every_region_trail_with_its_actor() {
    a_drill_is_in_every_region_trail_with_its_actor(&Site::local());
}

/// With a `[signing]` key, each run signs every region's trail head: a holder of the
/// repository key who rewrites a trail and the copy of it alike is still caught, and a
/// checkpoint no trusted key signed is named.
#[test]
fn signed_checkpoints_catch_a_rewrite_the_copies_cannot_see() {
    let site = Site::local();
    std::fs::create_dir_all(site.path("keys")).unwrap();
    for key in ["keys/signing.pem", "keys/other.pem"] {
        site.ok(&["-q", "signing-key", "generate", "--out", key]);
    }
    let plan = std::fs::read_to_string(site.path("plan.toml")).unwrap();
    let signing = "\n[signing]\nkey = { file = \"keys/signing.pem\" }\ntrusted = [\"keys/signing.pem.pub\"]\n";
    std::fs::write(site.path("plan.toml"), format!("{plan}{signing}")).unwrap();
    site.apply("one");
    let counts = events_by_region(&site);
    let (events, west_events) = (counts["east"].len() as u64, counts["west"].len() as u64);
    for region in [0, 1] {
        let signed: Vec<String> = site.objects(region, "audit-checkpoints/").into_keys().collect();
        assert_eq!(signed.len(), 1, "{signed:?}");
    }
    let out = site.ok(&["audit", "verify", "--plan", "plan.toml"]);
    let agrees = format!("region east: agrees with its checkpoint at {events} event(s) signed by key");
    assert!(stdout(&out).contains(&agrees), "{}", both(&out));

    let last = events - 1;
    site.delete(0, &segment(last));
    site.delete(1, &format!("audit-copies/east/{last:020}"));
    let east = site.address(0);
    let out = site.run_as("stranger", &["-q", "backup", "--repo", &east, "source"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let out = site.run_as("stranger", &["audit", "verify", "--plan", "plan.toml"]);
    let rewritten = format!(
        "the audit trail of region east was rewritten (tampered): its first {events} events differ from the checkpoint key"
    );
    expect_damage(&out, &[&rewritten], "rewritten behind the copies");
    assert!(
        !site
            .objects(1, "audit-copies/east/")
            .contains_key(&format!("audit-copies/east/{last:020}")),
        "the rewritten event is not copied"
    );

    let plan = std::fs::read_to_string(site.path("plan.toml")).unwrap();
    std::fs::write(
        site.path("plan.toml"),
        plan.replace("keys/signing.pem.pub", "keys/other.pem.pub"),
    )
    .unwrap();
    let out = site.run_as(
        "stranger",
        &["audit", "verify", "--plan", "plan.toml", "--region", "west"],
    );
    let untrusted = format!("the signed audit checkpoint at {west_events} of region west is not trusted");
    expect_damage(&out, &[&untrusted], "untrusted");
}
