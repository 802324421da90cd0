//! Export of one customer with 100 000 orders and 10 000 contacts, built
//! (a) from the built-in store and (b) through an HTTP primary: the
//! reference company API (`reference-company/`) serving the same customer
//! in pages. Issue 15 targets: (b) at most 2× (a), peak RSS < 64 MiB.
//!
//!     cargo build --release -p reference-company
//!     cargo bench --bench connector_export
//!
//! The reference company runs as its own process (the release binary next
//! to this bench's, or `REFERENCE_COMPANY_BIN`), so its memory does not
//! count against the portal. Both imports run first in a separate child;
//! each archive is then built by a fresh child process, alternating the
//! two paths, so the peak RSS (VmHWM) measured is that build's own.
//! `CONNECTOR_BENCH_RUNS` (default 5 per path) and
//! `CONNECTOR_BENCH_PAGE_SIZE` (default the reference API's 1000) change
//! the run.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use privacy_portal::{config, domain::Locale, AppState};

const ORDERS: usize = 100_000;
const CONTACTS: usize = 10_000;
const EMAIL: &str = "bench@example.nl";
/// The variable the portal child and the reference company read the
/// shared signing secret from.
const SECRET_ENV: &str = "CONNECTOR_BENCH_SECRET";

fn settings(db: &str, dir: &Path, shop_url: Option<&str>) -> config::Settings {
    let company = match shop_url {
        None => config::parse_company(config::DEMO_COMPANY_TOML, "demo"),
        Some(url) => config::parse_company(
            &format!(
                r#"{}
[[connectors]]
id = "shop"
name = {{ nl = "Webwinkel", sv = "Webbutik", en = "Web shop" }}
kind = "http"
primary = true
url = "{url}"
secret_env = "{SECRET_ENV}"
timeout_seconds = 60
"#,
                config::DEMO_COMPANY_TOML
            ),
            "bench",
        ),
    }
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

/// A field of /proc/<pid>/status in KiB (VmHWM: peak RSS, VmRSS: now).
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

/// User + system CPU seconds of a process so far (USER_HZ is 100 on Linux).
fn cpu_secs(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which may contain spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

fn customer_line() -> String {
    let orders: Vec<_> = (0..ORDERS)
        .map(|i| serde_json::json!({"id": format!("O-{i:06}"), "placed_at": "2024-05-01T09:00:00Z", "status": "delivered",
            "total_cents": 1000 + i as i64, "currency": "EUR", "gift_note": "Gefeliciteerd! Åsa & Zoë"}))
        .collect();
    let contacts: Vec<_> = (0..CONTACTS)
        .map(|i| serde_json::json!({"at": "2024-05-03T12:00:00Z", "channel": "phone", "summary": format!("call {i} about delivery to Göteborg")}))
        .collect();
    serde_json::json!({"external_id": "C-BENCH", "email": EMAIL, "name": "Bench Customer",
        "postcode": "1012 AB", "house_number": "1", "orders": orders, "contacts": contacts})
    .to_string()
}

/// Both imports and the export request; prints the request's id.
async fn prepare(db: &str, dir: &Path, line: &Path, shop_db: &Path) {
    let text = std::fs::read_to_string(line).expect("customer line");
    let state = privacy_portal::build_state(settings(db, dir, None))
        .await
        .expect("state");
    let report = privacy_portal::import::import(&state, std::io::Cursor::new(text.as_bytes()))
        .await
        .expect("import");
    assert!(report.errors.is_empty());
    let n = reference_company::import_jsonl(shop_db, &text)
        .await
        .expect("reference company import");
    assert_eq!(n, 1);
    let email = privacy_portal::domain::Email::parse(EMAIL).unwrap();
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

/// One archive build; prints one line of `key=value` figures.
async fn build(db: &str, dir: &Path, id: &str, shop_url: Option<&str>) {
    let state: Arc<AppState> = Arc::new(
        privacy_portal::build_state(settings(db, dir, shop_url))
            .await
            .expect("state"),
    );
    assert_eq!(state.systems.is_builtin_primary(), shop_url.is_none());
    let req = privacy_portal::store::requests::get(&state.db, id)
        .await
        .unwrap()
        .expect("request");
    let email = privacy_portal::domain::Email::parse(EMAIL).unwrap();
    let acc = state
        .connector
        .find_account(&email)
        .await
        .unwrap()
        .expect("account");
    // As in the worker: the archive goes into the database under a job's
    // lease; each run's job is a fresh one.
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
    let cpu_before = cpu_secs("self");
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
        "seconds={secs:.3} cpu_seconds={:.2} bytes={bytes} peak_rss_kib={} rss_before_kib={before}",
        cpu_secs("self") - cpu_before,
        status_kib("self", "VmHWM:"),
    );
}

/// The reference company's release binary, built beside this bench.
fn reference_binary() -> PathBuf {
    if let Ok(p) = std::env::var("REFERENCE_COMPANY_BIN") {
        return p.into();
    }
    // This bench runs as target/release/deps/connector_export-<hash>.
    let me = std::env::current_exe().unwrap();
    let bin = me
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("reference-company"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release -p reference-company` first (or set REFERENCE_COMPANY_BIN)",
        bin.display()
    );
    bin
}

/// Starts the reference company on a free port; returns it and its URL.
fn start_reference(shop_db: &Path, secret: &str, page_size: &str) -> (Child, String) {
    let mut child = Command::new(reference_binary())
        .args(["--bind", "127.0.0.1:0", "--secret-env", SECRET_ENV])
        .arg("--db")
        .arg(shop_db)
        .args(["--page-size", page_size])
        .env(SECRET_ENV, secret)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("reference-company");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps reading, so the server never blocks on a full pipe.
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(at) = line.find("http://") {
                let url: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                    .collect();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the reference company did not say where it listens within 60 s");
    (child, url)
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

fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn main() {
    let env = |k: &str| std::env::var(k).unwrap();
    match std::env::var("CONNECTOR_BENCH_PHASE").as_deref() {
        Ok(phase @ ("prepare" | "build")) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            let dir = PathBuf::from(env("CONNECTOR_BENCH_DIR"));
            let db = env("CONNECTOR_BENCH_DB");
            if phase == "prepare" {
                rt.block_on(prepare(
                    &db,
                    &dir,
                    &dir.join("customer.jsonl"),
                    &dir.join("shop.db"),
                ));
            } else {
                let shop = std::env::var("CONNECTOR_BENCH_SHOP").ok();
                rt.block_on(build(
                    &db,
                    &dir,
                    &env("CONNECTOR_BENCH_ID"),
                    shop.as_deref(),
                ));
            }
        }
        _ => run(),
    }
}

fn run() {
    let runs: usize = std::env::var("CONNECTOR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let page_size = std::env::var("CONNECTOR_BENCH_PAGE_SIZE")
        .unwrap_or_else(|_| reference_company::DEFAULT_PAGE_SIZE.to_string());
    let secret = format!("whsec_{}", {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    });
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/portal.db", dir.path().display());
    let me = std::env::current_exe().unwrap();
    let child = |phase: &str, extra: &[(&str, &str)]| {
        let out = Command::new(&me)
            .env("CONNECTOR_BENCH_PHASE", phase)
            .env("CONNECTOR_BENCH_DB", &db)
            .env("CONNECTOR_BENCH_DIR", dir.path())
            .env(SECRET_ENV, &secret)
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

    let line = customer_line();
    println!(
        "customer: {ORDERS} orders, {CONTACTS} contacts, one JSONL line of {:.1} MB",
        line.len() as f64 / 1e6
    );
    std::fs::write(dir.path().join("customer.jsonl"), &line).unwrap();
    drop(line);
    let started = Instant::now();
    let id = child("prepare", &[]);
    println!(
        "imported into the built-in store and the reference company's SQLite file in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (mut shop, url) = start_reference(&dir.path().join("shop.db"), &secret, &page_size);
    let shop_pid = shop.id().to_string();
    println!("reference company (pid {shop_pid}) on {url}, pages of {page_size} records");

    let mut rows = Vec::new();
    let (mut secs, mut rss) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for n in 0..runs {
        for (p, path) in ["builtin", "http"].into_iter().enumerate() {
            let mut extra = vec![("CONNECTOR_BENCH_ID", id.as_str())];
            if path == "http" {
                extra.push(("CONNECTOR_BENCH_SHOP", url.as_str()));
            }
            let shop_cpu = cpu_secs(&shop_pid);
            let out = child("build", &extra);
            let shop_cpu = cpu_secs(&shop_pid) - shop_cpu;
            println!(
                "run {} {path:<7}: {out} reference_cpu_seconds={shop_cpu:.2}",
                n + 1
            );
            secs[p].push(field(&out, "seconds"));
            rss[p].push(field(&out, "peak_rss_kib") / 1024.0);
            rows.push(format!(
                "| {} | {path} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} |",
                n + 1,
                field(&out, "seconds"),
                field(&out, "cpu_seconds"),
                shop_cpu,
                field(&out, "bytes"),
                field(&out, "peak_rss_kib") / 1024.0,
            ));
        }
    }
    let shop_peak = status_kib(&shop_pid, "VmHWM:") as f64 / 1024.0;
    let _ = shop.kill();
    let _ = shop.wait();

    println!();
    println!(
        "| run | path | seconds | portal CPU s | reference CPU s | archive bytes | peak RSS MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("{r}");
    }
    let (t_b, t_h) = (median(&mut secs[0]), median(&mut secs[1]));
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (m_b, m_h) = (max(&rss[0]), max(&rss[1]));
    let ratio = t_h / t_b;
    println!();
    println!("median: built-in {t_b:.2} s, HTTP {t_h:.2} s, ratio HTTP/built-in {ratio:.2}");
    println!("peak RSS (highest run): built-in {m_b:.1} MiB, HTTP {m_h:.1} MiB");
    println!("reference company process peak RSS (serving only): {shop_peak:.1} MiB");
    let verdict = |ok: bool| if ok { "met" } else { "MISS" };
    println!(
        "targets: HTTP ≤ 2× built-in: {}; peak RSS < 64 MiB: built-in {}, HTTP {}",
        verdict(ratio <= 2.0),
        verdict(m_b < 64.0),
        verdict(m_h < 64.0)
    );
}
