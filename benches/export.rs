//! Export archive benchmark: build the encrypted archive of one customer with
//! 100 000 orders and 10 000 contacts (issue: < 2 s, < 64 MiB peak RSS).
//!
//!     cargo bench --bench export
//!
//! The data is imported by one child process and each archive is built by a
//! fresh child process, so the peak RSS (VmHWM) measured is the build's own.

use std::{process::Command, sync::Arc, time::Instant};

use privacy_portal::{config, domain::Locale, AppState};

const ORDERS: usize = 100_000;
const CONTACTS: usize = 10_000;
const RUNS: usize = 3;

fn settings(db: &str, dir: &std::path::Path) -> config::Settings {
    config::Settings {
        mode: config::Mode::Serve,
        database_url: db.to_string(),
        bind: "127.0.0.1:0".into(),
        base_url: "http://127.0.0.1".into(),
        smtp_url: Some(secrecy::SecretString::from(
            "smtp://127.0.0.1:1".to_string(),
        )),
        mail_from: "Bench <bench@example.test>".into(),
        secret_key: secrecy::SecretString::from("ab".repeat(32)),
        company: config::parse_company(config::DEMO_COMPANY_TOML, "demo").expect("demo company"),
        client_rate_limit_per_minute: 0,
        mail_retry_base: std::time::Duration::from_secs(5),
        mail_retry_max: std::time::Duration::from_secs(60),
        worker_interval: std::time::Duration::from_secs(60),
        connector_retry_base: std::time::Duration::from_millis(300),
        connector_retry_max: std::time::Duration::from_secs(2),
        run_schedules: true,
        mail_timing: Default::default(),
        export_dir: dir.join("exports"),
        metrics_bind: None,
        metrics_token: None,
        trusted_proxies: Vec::new(),
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn prepare(db: &str, dir: &std::path::Path) {
    let state = privacy_portal::build_state(settings(db, dir))
        .await
        .expect("state");
    let orders: Vec<_> = (0..ORDERS)
        .map(|i| serde_json::json!({"id": format!("O-{i:06}"), "placed_at": "2024-05-01T09:00:00Z", "status": "delivered",
            "total_cents": 1000 + i as i64, "currency": "EUR", "gift_note": "Gefeliciteerd! Åsa & Zoë"}))
        .collect();
    let contacts: Vec<_> = (0..CONTACTS)
        .map(|i| serde_json::json!({"at": "2024-05-03T12:00:00Z", "channel": "phone", "summary": format!("call {i} about delivery to Göteborg")}))
        .collect();
    let line = serde_json::json!({"external_id": "C-BENCH", "email": "bench@example.nl", "name": "Bench Customer",
        "postcode": "1012 AB", "house_number": "1", "orders": orders, "contacts": contacts});
    let report = privacy_portal::import::import(&state, std::io::Cursor::new(line.to_string()))
        .await
        .expect("import");
    assert!(report.errors.is_empty());
    let email = privacy_portal::domain::Email::parse("bench@example.nl").unwrap();
    let (id, _) = privacy_portal::workflow::intake::start_verified(
        &state,
        privacy_portal::domain::RequestKind::Export,
        &email,
        Locale::Nl,
        "bench",
    )
    .await
    .expect("request");
    println!("{id}");
}

async fn build(db: &str, dir: &std::path::Path, id: &str, n: usize) {
    let state: Arc<AppState> = Arc::new(
        privacy_portal::build_state(settings(db, dir))
            .await
            .expect("state"),
    );
    let req = privacy_portal::store::requests::get(&state.db, id)
        .await
        .unwrap()
        .expect("request");
    let email = privacy_portal::domain::Email::parse("bench@example.nl").unwrap();
    let acc = state
        .connector
        .find_account(&email)
        .await
        .unwrap()
        .expect("account");
    // The archive goes into the database under a job's lease, as in the
    // worker; each run's job is a fresh one.
    let now = privacy_portal::store::now();
    let mut conn = state.db.write().acquire().await.unwrap();
    sqlx::query("DELETE FROM export_jobs WHERE request_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
    privacy_portal::store::exports::insert_job(&mut conn, id, &acc.id, now)
        .await
        .unwrap();
    drop(conn);
    let job = privacy_portal::store::exports::claim_job(&state.db, now, 3600)
        .await
        .unwrap()
        .expect("the job");
    let before = peak_rss_kib();
    let started = Instant::now();
    let bytes = privacy_portal::workflow::export::build_archive(
        &state,
        &req,
        acc,
        &job.lease,
        Default::default(),
    )
    .await
    .expect("archive");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "run={n} seconds={secs:.3} bytes={bytes} peak_rss_kib={} rss_before_kib={before}",
        peak_rss_kib()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match std::env::var("EXPORT_BENCH_PHASE").as_deref() {
        Ok("prepare") => {
            let dir = std::path::PathBuf::from(std::env::var("EXPORT_BENCH_DIR").unwrap());
            rt.block_on(prepare(&std::env::var("EXPORT_BENCH_DB").unwrap(), &dir));
        }
        Ok("build") => {
            let dir = std::path::PathBuf::from(std::env::var("EXPORT_BENCH_DIR").unwrap());
            let n: usize = std::env::var("EXPORT_BENCH_RUN").unwrap().parse().unwrap();
            rt.block_on(build(
                &std::env::var("EXPORT_BENCH_DB").unwrap(),
                &dir,
                &std::env::var("EXPORT_BENCH_ID").unwrap(),
                n,
            ));
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let db = format!("sqlite://{}/bench.db", dir.path().display());
            let me = std::env::current_exe().unwrap();
            let child = |phase: &str, extra: &[(&str, String)]| {
                let out = Command::new(&me)
                    .env("EXPORT_BENCH_PHASE", phase)
                    .env("EXPORT_BENCH_DB", &db)
                    .env("EXPORT_BENCH_DIR", dir.path())
                    .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{phase}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap().trim().to_string()
            };
            println!("preparing a customer with {ORDERS} orders and {CONTACTS} contacts (SQLite)…");
            let id = child("prepare", &[]);
            for n in 0..RUNS {
                let line = child(
                    "build",
                    &[
                        ("EXPORT_BENCH_ID", id.clone()),
                        ("EXPORT_BENCH_RUN", n.to_string()),
                    ],
                );
                println!("run {}: {line}", n + 1);
            }
        }
    }
}
