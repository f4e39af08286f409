//! Builds the empty database every new database starts from.
//!
//! A new database is a copy of `$OUT_DIR/new.db`: the migrations in
//! `migrations/` applied to an empty file of 1 KiB pages, here, once per
//! build. Running them at every first start took most of a fresh instance's
//! time to its first answer: refinery compiles a regular expression to read
//! each migration's name, and SQLite parses the whole schema again after
//! each `alter table` (callgrind, `regdesk migrate` on a new file: 14.1 of
//! 20.5 million instructions; perf, 20 starts).

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    // The migrations are read when this runs (not embedded in it: a build
    // script is not compiled again when a file is added to `migrations/`).
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=web");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let path = out.join("new.db");
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let mut conn = rusqlite::Connection::open(&path)?;
    // Pages of 1 KiB: see `db::create_file`.
    conn.execute_batch(
        "pragma page_size = 1024; pragma journal_mode = delete; pragma synchronous = off; pragma foreign_keys = on;",
    )?;
    let migrations = refinery::load_sql_migrations("migrations")?;
    refinery::Runner::new(&migrations)
        .set_grouped(true)
        .run(&mut conn)?;
    // The tables rebuilt by later migrations leave free pages behind.
    conn.execute_batch("vacuum")?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}
