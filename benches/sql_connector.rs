//! The SQL connector on a large company database (bench/sql/generate.sql:
//! 1 000 000 customers, 10 000 000 orders on PostgreSQL): erasure of a
//! customer with 1 000 orders and the export archive of one with 100 000,
//! through the portal's SQL primary. Targets: erasure < 100 ms, export
//! < 3 s, peak RSS < 64 MiB.
//!
//!     createdb portal_bench_sql
//!     psql -d portal_bench_sql -v customers=1000000 -v orders=10000000 -f bench/sql/generate.sql
//!     SQL_BENCH_URL=postgres://postgres@127.0.0.1/portal_bench_sql cargo bench --bench sql_connector
//!
//! Each erasure and each archive runs in a fresh child process, so its
//! peak RSS (VmHWM) is its own. The erasure changes the database: each run
//! erases another of customers 1-5 (`SQL_BENCH_RUNS`, default 5);
//! regenerate the database to run again.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use privacy_portal::{config, connector::AccountRef, domain::Locale, AppState};

const EXPORTED: &str = "customer6@example.com";
const URL_ENV: &str = "SQL_BENCH_URL";

const MAPPING: &str = r#"
[[connectors]]
id = "shop"
kind = "sql"
primary = true
name = { nl = "Webwinkel", sv = "Webbutik", en = "Web shop" }
url_env = "SQL_BENCH_URL"

[connectors.account]
table = "customers"
key = "customer_id"
email = "email"
knowledge_table = "customer_knowledge"
postcode = "postal_code"
house_number = "house_number"

[[connectors.tables]]
table = "customers"
category = "profile"
erase = { email = "hash", first_name = "mask", last_name = "mask", phone = "null", birth_date = "null", address_id = "null" }

[[connectors.tables]]
table = "addresses"
referenced_by = { table = "customers", column = "address_id" }
category = "addresses"
erase = "delete"

[[connectors.tables]]
table = "orders"
account_column = "customer_id"
category = "orders"
keep = { reason = { nl = "Boekhoudplicht: 7 jaar bewaren", sv = "Bokföringslagen: 7 år", en = "Bookkeeping law: 7 years" }, years = 7 }
erase = { billing_name = "mask", billing_address = "null" }
"#;

fn settings(db: &str, dir: &Path) -> config::Settings {
    let company = config::parse_company(
        &format!("{}\n{MAPPING}", config::DEMO_COMPANY_TOML),
        "bench",
    )
    .expect("company");
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
        company,
        client_rate_limit_per_minute: 0,
        mail_retry_base: Duration::from_secs(5),
        mail_retry_max: Duration::from_secs(60),
        worker_interval: Duration::from_secs(60),
        connector_retry_base: Duration::from_millis(300),
        connector_retry_max: Duration::from_secs(2),
        run_schedules: true,
        mail_timing: Default::default(),
        export_dir: dir.join("exports"),
        metrics_bind: None,
        metrics_token: None,
        trusted_proxies: Vec::new(),
    }
}

/// A field of /proc/<pid>/status in KiB (VmHWM: peak RSS).
fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn state(db: &str, dir: &Path) -> Arc<AppState> {
    Arc::new(
        privacy_portal::build_state(settings(db, dir))
            .await
            .expect("state"),
    )
}

/// The knowledge view and the portal's own database with the export
/// request; prints the request's id.
async fn prepare(db: &str, dir: &Path) {
    let url = std::env::var(URL_ENV).unwrap();
    let (_, pool) = privacy_portal::connector::sql::db::connect(&url)
        .await
        .expect("company database");
    pool.run_script(
        "CREATE OR REPLACE VIEW customer_knowledge AS \
         SELECT c.customer_id, a.postal_code, split_part(a.street, ' ', 2) AS house_number \
         FROM customers c JOIN addresses a ON a.address_id = c.address_id",
    )
    .await
    .expect("knowledge view");
    pool.close().await;
    let state = state(db, dir).await;
    let email = privacy_portal::domain::Email::parse(EXPORTED).unwrap();
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

/// One archive build; prints `key=value` figures.
async fn export(db: &str, dir: &Path, id: &str) {
    let state = state(db, dir).await;
    let req = privacy_portal::store::requests::get(&state.db, id)
        .await
        .unwrap()
        .expect("request");
    let email = privacy_portal::domain::Email::parse(EXPORTED).unwrap();
    let acc = state
        .connector
        .find_account(&email)
        .await
        .unwrap()
        .expect("account");
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
    let before = status_kib("self", "VmHWM:");
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
    println!(
        "seconds={:.3} bytes={bytes} peak_rss_kib={} rss_before_kib={before}",
        started.elapsed().as_secs_f64(),
        status_kib("self", "VmHWM:"),
    );
}

/// One erasure of customer `n` (1-5, 1 000 orders each): the look-up,
/// the blocker queries and the erasure's transaction, timed apart.
async fn erase(db: &str, dir: &Path, n: &str) {
    let state = state(db, dir).await;
    let email = privacy_portal::domain::Email::parse(&format!("customer{n}@example.com")).unwrap();
    let conn = state.connector.clone();
    let started = Instant::now();
    let acc: AccountRef = conn
        .find_account(&email)
        .await
        .unwrap()
        .expect("account (regenerate the database after a run)");
    let lookup = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let blockers = conn
        .deletion_blockers(&acc, chrono::Utc::now())
        .await
        .unwrap();
    assert!(blockers.is_empty());
    let blocking = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let out = conn.erase(&acc, "bench").await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let privacy_portal::connector::EraseOutcome::Done(receipt) = out else {
        panic!("erasure not done")
    };
    let kept: i64 = receipt.retained.iter().map(|r| r.count).sum();
    assert_eq!(kept, 1000, "{receipt:?}");
    println!(
        "seconds={secs:.4} lookup_seconds={lookup:.4} blockers_seconds={blocking:.4} kept_rows={kept} peak_rss_kib={}",
        status_kib("self", "VmHWM:"),
    );
}

fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let env = |k: &str| std::env::var(k).unwrap();
    if std::env::var(URL_ENV).is_err() {
        println!("{URL_ENV} is not set: see bench/README.md (SQL connector)");
        return;
    }
    if let Ok(phase) = std::env::var("SQL_BENCH_PHASE") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = PathBuf::from(env("SQL_BENCH_DIR"));
        let db = env("SQL_BENCH_DB");
        match phase.as_str() {
            "prepare" => rt.block_on(prepare(&db, &dir)),
            "export" => rt.block_on(export(&db, &dir, &env("SQL_BENCH_ID"))),
            "erase" => rt.block_on(erase(&db, &dir, &env("SQL_BENCH_CUSTOMER"))),
            p => panic!("unknown phase {p}"),
        }
        return;
    }
    let runs: usize = std::env::var("SQL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .min(5);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/portal.db", dir.path().display());
    let me = std::env::current_exe().unwrap();
    let child = |phase: &str, extra: &[(&str, &str)]| {
        let out = Command::new(&me)
            .env("SQL_BENCH_PHASE", phase)
            .env("SQL_BENCH_DB", &db)
            .env("SQL_BENCH_DIR", dir.path())
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{phase}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let id = child("prepare", &[]);
    let (mut erase_s, mut export_s, mut rss) = (Vec::new(), Vec::new(), Vec::<f64>::new());
    for n in 1..=runs {
        let out = child("erase", &[("SQL_BENCH_CUSTOMER", &n.to_string())]);
        println!("run {n} erasure (customer {n}, 1 000 orders): {out}");
        erase_s.push(field(&out, "seconds"));
        rss.push(field(&out, "peak_rss_kib") / 1024.0);
        let out = child("export", &[("SQL_BENCH_ID", id.as_str())]);
        println!("run {n} export (customer 6, 100 000 orders): {out}");
        export_s.push(field(&out, "seconds"));
        rss.push(field(&out, "peak_rss_kib") / 1024.0);
    }
    let (e, x) = (median(&mut erase_s), median(&mut export_s));
    let peak = rss.iter().copied().fold(0.0, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "MISS" };
    println!();
    println!(
        "median: erasure {:.1} ms, export {x:.2} s; peak RSS (highest child) {peak:.1} MiB",
        e * 1000.0
    );
    println!(
        "targets: erasure < 100 ms: {}; export < 3 s: {}; peak RSS < 64 MiB: {}",
        verdict(e < 0.1),
        verdict(x < 3.0),
        verdict(peak < 64.0)
    );
}
