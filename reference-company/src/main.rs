use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Serves privacy-portal's HTTP connector protocol (version 1) over a SQLite file.
#[derive(Parser)]
#[command(name = "reference-company", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    bind: String,
    /// SQLite file with the company's customers (created when missing).
    #[arg(long)]
    db: PathBuf,
    /// Environment variable holding the signing secret (`whsec_<base64>` or raw).
    #[arg(long, default_value = "REFERENCE_COMPANY_SECRET")]
    secret_env: String,
    /// Customers to load first, in the portal's import format (JSON Lines).
    #[arg(long, value_name = "FILE.jsonl")]
    import: Option<PathBuf>,
    /// Answer `erase` with 202 and erase on a later `erase-status` poll.
    #[arg(long)]
    async_erase: bool,
    /// Records per export page.
    #[arg(long, default_value_t = reference_company::DEFAULT_PAGE_SIZE)]
    page_size: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let secret = std::env::var(&args.secret_env).with_context(|| {
        format!(
            "set {} to the secret shared with the portal",
            args.secret_env
        )
    })?;
    let secret = reference_company::signature::decode_secret(&secret)?;
    if let Some(file) = &args.import {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let n = reference_company::import_jsonl(&args.db, &text).await?;
        tracing::info!("imported {n} customers from {}", file.display());
    }
    let cfg = reference_company::Config {
        db_path: args.db,
        secret,
        async_erase: args.async_erase,
        page_size: args.page_size,
    };
    let running = reference_company::start(cfg, &args.bind).await?;
    tracing::info!("serving the connector protocol on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
