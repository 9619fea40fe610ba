//! Write the seed corpus: `seeds DIR` creates `DIR/<target>/<name>` for every seed.

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "seeds".into());
    for (target, name, bytes) in lifeboat_fuzz::seeds::all() {
        let folder = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(name), bytes)?;
    }
    Ok(())
}
