//! Running a program from a plan: no shell, extra environment, output kept for errors.

use tokio::process::Command;

/// The last bytes of a program's output worth showing in an error.
const TAIL: usize = 400;

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text.len().saturating_sub(TAIL);
    let start = (start..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    text[start..].to_string()
}

/// Run `argv` with `env` added; `Err` says which program failed and what it printed.
/// The child is killed if the returned future is dropped (a step timeout).
pub async fn run(argv: &[String], env: &[(&str, &str)]) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        return Ok(tail(&out.stdout));
    }
    let said = [tail(&out.stderr), tail(&out.stdout)]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    Err(format!("`{}` failed ({}): {said}", argv.join(" "), out.status))
}
