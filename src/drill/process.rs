//! Running a program from a plan: no shell, a cleared environment (see
//! `apply::child`), output kept for errors.

use crate::apply::child;

/// The last bytes of a program's output worth showing in an error.
const TAIL: usize = 400;

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text.len().saturating_sub(TAIL);
    let start = (start..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    text[start..].to_string()
}

/// Run `argv` with `vars` set and the variables named in `passed` copied from
/// Lifeboat's environment; `Err` says which program failed and what it printed.
/// The child is killed if the returned future is dropped (a step timeout).
pub async fn run(argv: &[String], vars: &[(&str, &str)], passed: &[String]) -> Result<String, String> {
    let mut cmd = child::command(argv, vars, passed)?;
    let program = argv.first().map_or("", String::as_str);
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
