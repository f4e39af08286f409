//! The `regdesk` command: parses the command line, sets up logging and runs
//! the subcommand. `anyhow` is used here only.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};

use regdesk::config::{
    AccountCommand, Cli, Command, Config, DbArgs, MigrateArgs, RoleArg, TokenCommand,
};
use regdesk::db::lock::{self, Activity};
use regdesk::db::{self, Location};
use regdesk::db::{restore, upgrade};
use regdesk::desk::credentials::{self, Secret};
use regdesk::random;
use regdesk::store::accounts::{self, NewAccount, Role};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::try_parse().unwrap_or_else(|e| refuse_arguments(e));
    if let Err(e) = run(cli) {
        // One line on stderr, where the log goes too.
        eprintln!("regdesk: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(config) => serve(config),
        Command::Migrate(args) => {
            migrate(&args).with_context(|| format!("migrating {}", args.db.db.display()))
        }
        Command::Restore { db: args, backup } => {
            restore(&args.db, &backup).with_context(|| format!("restoring {}", backup.display()))
        }
        Command::Backup { db: args, file } => {
            db::backup_file(&args.db, &file)
                .map_err(plain)
                .with_context(|| format!("backing up to {}", file.display()))?;
            println!("backed up {} to {}", args.db.display(), file.display());
            Ok(())
        }
        Command::Account(AccountCommand::Add {
            db: args,
            name,
            email,
            role,
        }) => {
            let role = match role {
                RoleArg::Customer => Role::Customer,
                RoleArg::Operator => Role::Operator,
            };
            // Checked before the database is opened (or made).
            let new = NewAccount {
                name: accounts::valid_name(&name)?,
                email: accounts::valid_email(&email)?,
                role,
                review_limit_cents: None,
                review_all: false,
            };
            let conn = open(&args)?;
            let token = random::token();
            let account =
                accounts::create(&conn, &new, &token, regdesk::clock::Clock::real().now())?;
            println!(
                "account {} ({}) id {}",
                account.name, account.role, account.id
            );
            println!("token: {token}");
            Ok(())
        }
        Command::Account(AccountCommand::List { db: args }) => {
            let conn = open_existing(&args)?;
            println!("id\tname\trole\temail");
            for a in accounts::list(&conn)? {
                println!("{}\t{}\t{}\t{}", a.id, a.name, a.role, a.email);
            }
            Ok(())
        }
        Command::Account(AccountCommand::Passwd {
            db: args,
            name,
            password,
        }) => {
            let password = match password {
                Some(p) => p,
                None => password_from_stdin()?,
            };
            let conn = open_existing(&args)?;
            let Some(a) = accounts::by_name(&conn, &name)? else {
                bail!("no account named {name:?}");
            };
            credentials::set_password_on(&conn, &a, Secret::Web, &password).map_err(plain)?;
            println!("password set for {}", a.name);
            Ok(())
        }
        Command::Token(TokenCommand::New { db: args, account }) => {
            let conn = open_existing(&args)?;
            let Some(a) = accounts::by_name(&conn, &account)? else {
                bail!("no account named {account:?}");
            };
            let token = random::token();
            accounts::add_token(&conn, a.id, &token, regdesk::clock::Clock::real().now())?;
            println!("token: {token}");
            Ok(())
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "regdesk", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}

/// One line of standard input, without its line end: a password piped in
/// stays out of the shell's history and the process list.
fn password_from_stdin() -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("give the password with --password PW, or one line on standard input");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A command line clap refuses, with a pointer where a flag from other
/// servers was given (`--port`: regdesk takes an address).
fn refuse_arguments(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let port = e.kind() == ErrorKind::UnknownArgument
        && matches!(e.get(ContextKind::InvalidArg),
                    Some(ContextValue::String(arg)) if arg.starts_with("--port"));
    if port {
        eprint!("{}", e.render());
        eprintln!("tip: regdesk has no --port; give the address to listen on with --listen 127.0.0.1:PORT");
        std::process::exit(2);
    }
    e.exit()
}

/// `regdesk migrate [--dry-run]`: a migration holds the database's lock;
/// a dry run only reads, and leaves no file behind.
fn migrate(args: &MigrateArgs) -> Result<()> {
    let path = &args.db.db;
    if args.dry_run {
        lock::check_file("db", path).map_err(plain)?;
        let plan = upgrade::plan(path).map_err(plain)?;
        if plan.pending.is_empty() {
            println!("nothing to do: {} is up to date", path.display());
        }
        for m in &plan.pending {
            println!("would apply V{}__{}", m.version, m.name);
        }
        return Ok(());
    }
    let _lock = lock::take(path, Activity::Migrate).map_err(plain)?;
    db::open_direct(&Location::File(path.clone())).map_err(plain)?;
    println!("migrated {}", path.display());
    Ok(())
}

/// `regdesk restore BACKUP`, holding the database's lock.
fn restore(db: &Path, backup: &Path) -> Result<()> {
    // Not `take`: the file a restore replaces may be damaged past reading.
    let _lock = lock::lock(db, Activity::Restore).map_err(plain)?;
    let now = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .context("formatting the time")?;
    let done = restore::restore(backup, db, &now).map_err(plain)?;
    let version = done.version.map_or("none".to_string(), |v| v.to_string());
    println!(
        "restored {} to {} (schema version {version})",
        backup.display(),
        db.display()
    );
    match &done.kept {
        Some(kept) => println!("kept the database it replaced as {}", kept.display()),
        None => println!("there was no database at {} to keep", db.display()),
    }
    for file in &done.removed {
        println!("removed {}", file.display());
    }
    if done.pending > 0 {
        println!("the next start applies {} migration(s) to it", done.pending);
    }
    Ok(())
}

/// Opens the database, making it first if there is none (`account add`
/// may come before the first `serve`).
fn open(args: &DbArgs) -> Result<regdesk::store::Connection> {
    lock::check_file("db", &args.db).map_err(plain)?;
    db::open_direct(&Location::File(args.db.clone()))
        .map_err(plain)
        .with_context(|| format!("opening {}", args.db.display()))
}

/// Opens a database that must be there already: a mistyped `--db` given to
/// a command that only reads or adds to what is there would otherwise
/// make an empty database and answer as if it were the one meant.
fn open_existing(args: &DbArgs) -> Result<regdesk::store::Connection> {
    if !args.db.exists() {
        bail!(
            "{}: no database there (regdesk serve, migrate or account add makes one)",
            args.db.display()
        );
    }
    open(args)
}

/// A library error for the command line. An internal error is shown as its
/// detail: here the one who reads it is the operator who can act on it (an
/// address in use, a directory that does not exist), not a client.
fn plain(e: regdesk::error::Error) -> anyhow::Error {
    match e {
        regdesk::error::Error::Internal(detail) => anyhow::anyhow!(detail),
        other => other.into(),
    }
}

fn serve(config: Config) -> Result<()> {
    let where_ = if config.memory {
        "memory".to_string()
    } else {
        config.db.display().to_string()
    };
    // A setting no run could use is refused before the lock file is made.
    config.check().map_err(plain).context("starting")?;
    // Held until the server has stopped; the kernel releases it on a crash.
    let _lock = match config.memory {
        true => None,
        // A database this binary is too old for is refused as the server
        // opens it, before anything is migrated.
        false => Some(
            lock::take(&config.db, Activity::Serve)
                .map_err(plain)
                .context("starting")?,
        ),
    };
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        stop_tx.send(()).ok();
    })
    .context("installing the signal handler")?;
    let handle = regdesk::start(config).map_err(plain).context("starting")?;
    {
        // stdout carries only machine-readable lines, the address first.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}", handle.addr)?;
        if let Some(epp) = &handle.epp {
            writeln!(out, "epp listening on {}", epp.addr)?;
        }
        if let Some(token) = &handle.first_token {
            writeln!(out, "operator token: {token}")?;
        }
        for demo in &handle.demo_tokens {
            if let Some(token) = &demo.token {
                writeln!(out, "demo token {}: {token}", demo.name)?;
            }
        }
        for demo in &handle.demo_tokens {
            writeln!(out, "demo password {}: {}", demo.name, demo.password)?;
        }
        out.flush()?;
    }
    log::info!("ready: serving {where_} on http://{}", handle.addr);
    stop_rx.recv().ok();
    log::info!("shutting down");
    handle.stop();
    log::info!("stopped cleanly");
    Ok(())
}
