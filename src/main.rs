//! The `regdesk` command: parses the command line, sets up logging and runs
//! the subcommand. `anyhow` is used here only.

#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use clap::Parser;

use regdesk::config::{AccountCommand, Cli, Command, Config, DbArgs, RoleArg, TokenCommand};
use regdesk::db::{self, Location};
use regdesk::random;
use regdesk::store::accounts::{self, NewAccount, Role};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
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
            db::open_direct(&Location::File(args.db.clone()))
                .map_err(plain)
                .with_context(|| format!("migrating {}", args.db.display()))?;
            println!("migrated {}", args.db.display());
            Ok(())
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
            for a in accounts::list(&conn)? {
                println!("{}\t{}\t{}\t{}", a.id, a.name, a.role, a.email);
            }
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
    }
}

/// Opens the database, making it first if there is none (`account add`
/// may come before the first `serve`).
fn open(args: &DbArgs) -> Result<rusqlite::Connection> {
    db::open_direct(&Location::File(args.db.clone()))
        .map_err(plain)
        .with_context(|| format!("opening {}", args.db.display()))
}

/// Opens a database that must be there already: a mistyped `--db` given to
/// a command that only reads or adds to what is there would otherwise
/// make an empty database and answer as if it were the one meant.
fn open_existing(args: &DbArgs) -> Result<rusqlite::Connection> {
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
        if let Some(token) = &handle.first_token {
            writeln!(out, "operator token: {token}")?;
        }
        for (name, token) in &handle.demo_tokens {
            writeln!(out, "demo token {name}: {token}")?;
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
