//! The `privacy-portal` commands of CONTRACT.md.

use std::{net::TcpListener, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    config::{self, Mode},
    domain::Email,
    store, AppState, Server,
};

#[derive(Parser)]
#[command(name = "privacy-portal", version, about = "Self-service GDPR portal")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run on SQLite under ./data with demo data and a dev mailbox at /dev/mail.
    Demo {
        #[arg(long)]
        bind: Option<String>,
    },
    /// Production server: configuration from the environment and PORTAL_CONFIG.
    Serve,
    /// Run database migrations and exit.
    Migrate,
    /// Built-in customer store.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Staff members.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Apply retention now: expire unverified requests, purge closed ones.
    Purge,
    /// Consistent copy of a running SQLite store into FILE (a new file).
    /// For PostgreSQL use pg_dump.
    Backup { file: std::path::PathBuf },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Scheduled anonymisation of inactive accounts (`[company.inactivity]`):
    /// run what is due now, or with --dry-run only list it.
    Anonymise {
        #[arg(long)]
        dry_run: bool,
    },
    /// The company's systems (`[[connectors]]`): check before go-live.
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
}

#[derive(Subcommand)]
pub enum ConnectorsCommand {
    /// Reach every system (a signed `ping`; SMTP for email systems); one
    /// line each, exit 1 when any fails.
    Check,
    /// What each system holds for EMAIL (counts per category, blockers,
    /// consents); changes nothing; audited.
    Preview { email: String },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 1 naming the first broken event.
    Verify,
}

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Upsert customers from JSON Lines (`-` = stdin).
    Import { file: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Role {
    Agent,
    Admin,
}

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Create a staff member; prints a one-time enrolment link.
    Add {
        email: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Print a new API token (shown once, stored hashed).
    Token { email: String },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Commands that only touch the database do not need SMTP or a company file
/// beyond what `serve` validates, but they need the server's secret key:
/// tokens, links and hashes written with any other key fail under `serve`.
/// Only `demo` may make a key up.
fn tool_settings() -> anyhow::Result<config::Settings> {
    if std::env::var("PORTAL_SECRET_KEY").map_or(true, |k| k.trim().is_empty()) {
        anyhow::bail!(
            "PORTAL_SECRET_KEY is not set: admin commands need the key `serve` runs with (only `demo` makes its own)"
        );
    }
    match config::load(Mode::Serve, None) {
        Ok(s) => Ok(s),
        // Tools never send mail themselves; the server's worker does.
        Err(e) if e.0.starts_with("PORTAL_SMTP_URL is not set") => {
            let mut s = config::load(Mode::Demo, None)?;
            // Loaded as demo only to skip the SMTP check; nothing demo-only
            // (the dev mailbox, demo logins) applies to a tool.
            s.mode = Mode::Serve;
            Ok(s)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    init_tracing();
    match cli.command {
        Command::Demo { bind } => {
            let settings = config::load(Mode::Demo, bind)?;
            let state = crate::build_state(settings).await?;
            let staff_token = crate::demo::seed(&state).await?;
            // Demo only: a working staff login (password + TOTP secret),
            // new on every start, printed with the URLs.
            let (password, secret) =
                crate::workflow::staff_auth::demo_credentials(&state, crate::demo::DEMO_STAFF)
                    .await?;
            let staff_login = format!(
                "  Staff login:      {}/staff/login\n    email {}  password {password}\n    TOTP secret {secret} (add it to an authenticator app, or: oathtool --totp -b {secret})",
                state.settings.base_url,
                crate::demo::DEMO_STAFF
            );
            serve_until_signal(state, Some((staff_token, staff_login))).await
        }
        Command::Serve => {
            let settings = config::load(Mode::Serve, None)?;
            config::check_key_strength(&settings.master_key())?;
            let state = crate::build_state(settings).await?;
            serve_until_signal(state, None).await
        }
        Command::Migrate => {
            let settings = tool_settings()?;
            let db = store::Db::connect(&settings.database_url).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts {
            command: AccountsCommand::Import { file },
        } => {
            let state = crate::build_state(tool_settings()?).await?;
            let report = if file == "-" {
                crate::import::import(&state, std::io::stdin().lock()).await?
            } else {
                let f = std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
                crate::import::import(&state, std::io::BufReader::new(f)).await?
            };
            for (line, why) in &report.errors {
                eprintln!("line {line}: {why} (skipped)");
            }
            for line in &report.erased {
                eprintln!("line {line}: this customer was erased on request; not imported again (skipped)");
            }
            println!(
                "imported: {} new, {} updated, {} skipped, {} erased customers not restored",
                report.inserted,
                report.updated,
                report.errors.len(),
                report.erased.len()
            );
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Staff { command } => {
            let state = crate::build_state(tool_settings()?).await?;
            match command {
                StaffCommand::Add { email, role } => {
                    let role = match role {
                        Role::Agent => "agent",
                        Role::Admin => "admin",
                    };
                    let link = add_staff(&state, &email, role).await?;
                    println!("{link}");
                }
                StaffCommand::Token { email } => {
                    let token = staff_token(&state, &email).await?;
                    println!("{token}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let settings = tool_settings()?;
            // Read-only: no migrations here.
            let db = store::Db::connect(&settings.database_url).await?;
            if !store::audit::has_hash_versions(&db).await {
                anyhow::bail!("the database predates the keyed audit chain: run `privacy-portal migrate` first");
            }
            let keys = crate::crypto::Keys::derive(&settings.master_key());
            let r = store::audit::verify_chain(&db, keys.audit()).await?;
            match r.broken {
                None => {
                    // Unkeyed events are named: a trail that is still all
                    // unkeyed long after the upgrade was rewritten by
                    // someone without the key.
                    let unkeyed = if r.unkeyed > 0 {
                        format!(" ({} of them before the chain was keyed)", r.unkeyed)
                    } else {
                        String::new()
                    };
                    println!(
                        "audit trail intact: {} events linked{unkeyed}, {} written before the chain existed",
                        r.checked, r.unchained
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some((seq, why)) => {
                    eprintln!("audit trail broken at event {seq}: {why}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Backup { file } => {
            // Only the database: the copy needs no key, and a cron job
            // need not hold one.
            let url = config::database_url()?;
            if !url.starts_with("sqlite:") {
                eprintln!("{}", store::BackupError::Postgres);
                return Ok(ExitCode::FAILURE);
            }
            let db = store::Db::connect(&url).await?;
            let copied = db.backup_to(&file).await;
            db.close().await;
            match copied {
                Ok(bytes) => {
                    println!("backup written to {} ({bytes} bytes)", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("backup to {} failed: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Anonymise { dry_run } => {
            let state = crate::build_state(tool_settings()?).await?;
            if state.settings.company.inactivity.is_none() {
                anyhow::bail!(
                    "the company file has no [company.inactivity]: nothing is anonymised"
                );
            }
            let lines =
                crate::workflow::anonymise::run(&state, chrono::Utc::now(), dry_run).await?;
            for l in &lines {
                println!("{l}");
            }
            println!(
                "{} accounts listed{}",
                lines.len(),
                if dry_run {
                    "; nothing changed (dry run)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Connectors { command } => {
            let state = crate::build_state(tool_settings()?).await?;
            match command {
                ConnectorsCommand::Check => {
                    let lines = connectors_check(&state).await;
                    for (line, _) in &lines {
                        println!("{line}");
                    }
                    Ok(if lines.iter().all(|(_, ok)| *ok) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                ConnectorsCommand::Preview { email } => {
                    let lines = crate::workflow::connectors::preview(&state, &email).await?;
                    for line in lines {
                        println!("{line}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Purge => {
            let state = crate::build_state(tool_settings()?).await?;
            let r = crate::workflow::sweep::run(&state).await?;
            println!(
                "reminded {} requests of their code, expired {} requests nobody finished, purged {} closed requests, deleted {} expired export archives",
                r.reminded, r.expired, r.purged, r.archives_deleted
            );
            // Retention per data category, in every system.
            for (cat, data, system, n) in
                crate::workflow::retention::run(&state, chrono::Utc::now()).await?
            {
                if let Some(n) = n {
                    println!("retention {cat}: deleted {n} {data} rows in {system}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line per system with what works, and whether it does.
pub async fn connectors_check(state: &AppState) -> Vec<(String, bool)> {
    crate::workflow::connectors::check(state).await
}

pub async fn add_staff(state: &AppState, raw_email: &str, role: &str) -> anyhow::Result<String> {
    crate::workflow::staff_auth::add(state, raw_email, role, "cli")
        .await
        .map_err(|e| match e {
            crate::workflow::WorkflowError::Invalid {
                field: "email",
                key,
            } if key.ends_with("staff_exists") => {
                anyhow::anyhow!("a staff member with that address already exists")
            }
            crate::workflow::WorkflowError::Invalid { field: "email", .. } => {
                anyhow::anyhow!("not a valid email address")
            }
            other => anyhow::anyhow!("{other}"),
        })
}

pub async fn staff_token(state: &AppState, raw_email: &str) -> anyhow::Result<String> {
    let email =
        Email::parse(raw_email).ok_or_else(|| anyhow::anyhow!("not a valid email address"))?;
    let member = store::staff::by_email(&state.db, email.as_str())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no staff member with that address"))?;
    let token = format!("pps_{}", crate::crypto::random_token());
    let now = store::now();
    let mut tx = state.db.begin().await?;
    store::staff::add_token(&mut tx, &member.id, &state.keys.token_hash(&token), now).await?;
    store::audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        store::audit::Event {
            request_id: None,
            actor: "cli",
            action: "staff_token_issued",
            from_status: None,
            to_status: None,
            detail: serde_json::json!({"staff_id": member.id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

async fn serve_until_signal(
    state: AppState,
    demo_token: Option<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(&state.settings.bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", state.settings.bind))?;
    let base = state.settings.base_url.clone();
    let server = Server::start(state, listener).await?;
    if let Some((token, staff_login)) = demo_token {
        println!();
        println!("  privacy-portal demo is running");
        println!("  Customer portal:  {base}/");
        println!("  Dev mailbox:      {base}/dev/mail   (codes and confirmations land here)");
        println!("{staff_login}");
        println!("  Staff API token:  {token}");
        println!("    try: curl -H 'Authorization: Bearer {token}' {base}/api/v1/staff/cases");
        println!("  Demo customers:   see README.md (e.g. anna@example.nl)");
        println!("  Stop with Ctrl-C.");
        println!();
    } else {
        tracing::info!(bind = %server.state.settings.bind, "privacy-portal serving");
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
