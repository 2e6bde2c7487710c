//! Embeds `migrations/{postgres,sqlite}` in the binary as a list of
//! (version, description, SQL) for `store::migrations`. sqlx's `migrate!`
//! macro does the same, but it brings sqlx's proc-macro crates, which build
//! both database drivers and SQLite's C source a second time.

use std::fmt::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    let mut out = String::new();
    for (name, dir) in [("POSTGRES", "postgres"), ("SQLITE", "sqlite")] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
            .map(|entry| entry.expect("a readable migrations directory").path())
            .filter(|path| path.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        writeln!(out, "pub(super) const {name}: &[Embedded] = &[").unwrap();
        for path in files {
            let stem = path
                .file_stem()
                .unwrap()
                .to_str()
                .expect("a UTF-8 file name");
            let (version, description) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("{stem}: expected VERSION_DESCRIPTION.sql"));
            let version: i64 = version
                .parse()
                .unwrap_or_else(|_| panic!("{stem}: the version is not a number"));
            let description = description.replace('_', " ");
            let path = path.canonicalize().unwrap();
            writeln!(
                out,
                "    Embedded {{ version: {version}, description: {description:?}, sql: include_str!({path:?}) }},"
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let target = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(target, out).unwrap();
}
