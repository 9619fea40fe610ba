//! The command-line reference stays complete: every command and flag has `--help`
//! text and a place in `docs/cli.md`, and the generated completions and man page
//! name every command. All of it is read from the same clap definitions.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command as Process, Stdio};

use clap::Command;

/// `docs/cli.md`, split at its `### \`lifeboat …\`` headings: command path → text.
fn doc_sections() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        if line.starts_with("#") {
            out.extend(current.take());
            if let Some(path) = line.strip_prefix("### `lifeboat ").and_then(|r| r.strip_suffix('`')) {
                current = Some((path.to_string(), String::new()));
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out.extend(current);
    out
}

/// Every command below `cmd` with its path (`repair index`), parents included.
fn commands(cmd: &Command, prefix: &str, out: &mut Vec<(String, Command)>) {
    for sub in cmd.get_subcommands() {
        let path = format!("{prefix}{}", sub.get_name()).trim().to_string();
        out.push((path.clone(), sub.clone()));
        commands(sub, &format!("{path} "), out);
    }
}

fn all_commands() -> Vec<(String, Command)> {
    let mut out = Vec::new();
    commands(&lifeboat::cli::command(), "", &mut out);
    assert!(out.len() > 25, "only {} commands found", out.len());
    out
}

/// How an argument is written in the reference: `--flag`, or its value name.
fn spelling(arg: &clap::Arg) -> String {
    match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => arg
            .get_value_names()
            .and_then(|v| v.first().map(|n| n.to_string()))
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase()),
    }
}

#[test]
fn every_command_and_flag_has_help_text() {
    let mut missing = Vec::new();
    let top = lifeboat::cli::command();
    for arg in top.get_arguments() {
        if arg.get_help().is_none() {
            missing.push(format!("lifeboat {}", spelling(arg)));
        }
    }
    for (path, cmd) in all_commands() {
        if cmd.get_about().is_none_or(|a| a.to_string().trim().is_empty()) {
            missing.push(format!("lifeboat {path}"));
        }
        for arg in cmd.get_arguments().filter(|a| !a.is_global_set()) {
            if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                missing.push(format!("lifeboat {path} {}", spelling(arg)));
            }
        }
    }
    assert!(missing.is_empty(), "no --help text for: {missing:#?}");
}

#[test]
fn every_command_and_flag_is_in_docs_cli_md() {
    let sections = doc_sections();
    let mut missing = Vec::new();
    let globals = sections.get("[global options]").cloned().unwrap_or_default();
    for arg in lifeboat::cli::command().get_arguments() {
        if !globals.contains(&spelling(arg)) {
            missing.push(format!("global option {}", spelling(arg)));
        }
    }
    for (path, cmd) in all_commands() {
        if cmd.has_subcommands() {
            continue;
        }
        let Some(text) = sections.get(&path) else {
            missing.push(format!("section ### `lifeboat {path}`"));
            continue;
        };
        for arg in cmd.get_arguments().filter(|a| !a.is_global_set()) {
            if !text.contains(&spelling(arg)) {
                missing.push(format!("lifeboat {path} {}", spelling(arg)));
            }
        }
    }
    let known: Vec<String> = all_commands().into_iter().map(|(p, _)| p).collect();
    for documented in sections.keys().filter(|k| k.as_str() != "[global options]") {
        if !known.contains(documented) {
            missing.push(format!(
                "docs/cli.md documents `lifeboat {documented}`, which does not exist"
            ));
        }
    }
    assert!(missing.is_empty(), "docs/cli.md lacks: {missing:#?}");
}

fn lifeboat(args: &[&str]) -> String {
    let out = Process::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let script = lifeboat(&["completions", shell]);
        for (path, _) in all_commands() {
            let name = path.rsplit(' ').next().unwrap();
            assert!(script.contains(name), "{shell} completion lacks `{path}`");
        }
        assert!(
            script.contains("password-file"),
            "{shell} completion lacks global options"
        );
    }
}

#[test]
fn man_page_renders_and_lists_every_command() {
    let page = lifeboat(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH lifeboat"),
        "not roff: {}",
        &page[..200.min(page.len())]
    );
    for (path, _) in all_commands().iter().filter(|(p, _)| !p.contains(' ')) {
        assert!(
            // roff writes every `-` of a name as `\-` (`signing\-key`).
            page.contains(&format!("lifeboat\\-{path}")) || page.contains(&path.replace('-', "\\-")),
            "man page lacks {path}"
        );
    }
    let sub = lifeboat(&["man", "repair", "index"]);
    assert!(sub.contains(".TH lifeboat-repair-index"), "{sub}");
    assert!(sub.contains("read\\-all\\-packs"), "{sub}");
    // `man -l -` renders it, when man is installed, with every command's name in the text.
    let Ok(mut man) = Process::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return;
    };
    man.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = man.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "man -l failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (path, _) in all_commands().iter().filter(|(p, _)| !p.contains(' ')) {
        assert!(text.contains(path.as_str()), "rendered man page lacks {path}:\n{text}");
    }
}

#[test]
fn man_refuses_an_unknown_command() {
    let out = Process::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["man", "bakup"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: `lifeboat` has no command `bakup` — it has: "),
        "{err}"
    );
    assert!(err.contains("backup"), "{err}");
}
