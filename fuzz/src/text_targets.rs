//! Targets for text a user or a plan supplies: plan files and repository addresses.

use std::path::Path;

/// Input: a plan file. Every diagnostic must point inside the file.
pub fn plan(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let (_, diagnostics) = lifeboat::plan::validate_source(Path::new("fuzz.toml"), source);
    let lines = source.split('\n').count();
    for d in &diagnostics {
        assert!(
            d.line >= 1 && d.line <= lines,
            "diagnostic on line {} of {lines}",
            d.line
        );
        let width = source.split('\n').nth(d.line - 1).map_or(0, |l| l.chars().count());
        assert!(
            d.col >= 1 && d.col <= width + 1,
            "diagnostic at column {} of {width}",
            d.col
        );
    }
}

/// Input: a repository address as given on the command line or in a plan.
pub fn address(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(addr) = lifeboat::storage::RepositoryAddress::parse(text)
    {
        let _ = addr.display();
    }
}
