//! Running it as a service: behind a reverse proxy, through a database
//! outage and a full disk, backed up while it works.

mod common;

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::TestApp;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

// ---------- behind a reverse proxy ----------

/// A POST that every client may make; 422, as the address is not one.
async fn post_from(
    client: &reqwest::Client,
    app: &TestApp,
    header: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = client
        .post(app.url("/api/v1/requests"))
        .json(&json!({"kind": "question", "email": "not an address", "locale": "en"}));
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget_and_forged_headers_are_ignored() {
    let app = TestApp::spawn_with(|s| {
        s.client_rate_limit_per_minute = 3;
        s.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
    })
    .await;
    // The proxy: a second loopback address.
    let proxy = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let xff = |v: &'static str| Some(("x-forwarded-for", v));

    for _ in 0..3 {
        assert_eq!(
            post_from(&proxy, &app, xff("203.0.113.7")).await.status(),
            422
        );
    }
    let res = post_from(&proxy, &app, xff("203.0.113.7")).await;
    assert_eq!(res.status(), 429, "the fourth request of one client");
    assert!(res.headers().contains_key("retry-after"));

    // Another customer behind the same proxy still has a full budget.
    assert_eq!(
        post_from(&proxy, &app, xff("203.0.113.8")).await.status(),
        422
    );
    // A made-up address in front of what the proxy appended changes nothing:
    // the rightmost untrusted hop is the client.
    for _ in 0..2 {
        assert_eq!(
            post_from(&proxy, &app, xff("198.51.100.99, 203.0.113.8"))
                .await
                .status(),
            422
        );
    }
    assert_eq!(
        post_from(&proxy, &app, xff("198.51.100.1, 203.0.113.8"))
            .await
            .status(),
        429
    );
    // RFC 7239 `Forwarded`, when the proxy sends no X-Forwarded-For.
    assert_eq!(
        post_from(
            &proxy,
            &app,
            Some(("forwarded", "for=\"[2001:db8::1]:4711\";proto=https"))
        )
        .await
        .status(),
        422
    );

    // From an address that is not a trusted proxy the headers are ignored:
    // a new forged X-Forwarded-For each time still shares one budget.
    let direct = reqwest::Client::new();
    let forged = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
    let mut statuses = Vec::new();
    for f in forged {
        statuses.push(
            post_from(&direct, &app, Some(("x-forwarded-for", f)))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [422, 422, 422, 429]);
    app.stop().await;
}

// ---------- database outages and a full disk ----------

async fn readyz(app: &TestApp) -> u16 {
    app.client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `/readyz` until it answers `status`, for at most `secs` seconds.
async fn wait_ready(app: &TestApp, status: u16, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = readyz(app).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {got} after {secs} s, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates requests until one is refused; returns the refusal. Every 202
/// on the way is recorded in `acked`, and anything but 202 or 503 fails.
async fn create_until_unavailable(app: &TestApp, acked: &mut Vec<String>, tag: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0.. {
        assert!(Instant::now() < deadline, "no 503 within 30 s");
        let res = app
            .post_json(
                "/api/v1/requests",
                json!({"kind": "question", "email": format!("{tag}{i}@example.nl"), "locale": "en"}),
            )
            .await;
        match res.status().as_u16() {
            202 => {
                let body: Value = res.json().await.unwrap();
                acked.push(body["id"].as_str().unwrap().to_string());
            }
            503 => {
                let retry: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                assert!(res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/problem+json"));
                return res.json().await.unwrap();
            }
            other => panic!("intake answered {other}: {}", res.text().await.unwrap()),
        }
    }
    unreachable!()
}

/// The HTML form during the outage: a translated page, 503, Retry-After.
async fn portal_form_says_try_again(app: &TestApp, lang: &str, expected: &str) {
    let client = common::client();
    let (status, _, csrf) = common::page(&client, &app.url(&format!("/{lang}/question"))).await;
    assert_eq!(status, 200, "the form itself needs no database");
    let res = client
        .post(app.url(&format!("/{lang}/question")))
        .form(&[
            ("csrf", csrf.unwrap().as_str()),
            ("email", "cor@example.nl"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body = res.text().await.unwrap();
    assert!(body.contains(expected), "{body}");
}

/// A few requests while all is well; returns their ids.
async fn acknowledged_while_ready(app: &TestApp) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0..3 {
        acked.push(
            app.create("question", &format!("before{i}@example.nl"), "en")
                .await,
        );
    }
    wait_ready(app, 200, 10).await;
    acked
}

/// After the outage: ready again by itself, intake works, and every
/// request acknowledged before or during the outage is stored.
async fn recovered_with_nothing_lost(app: &TestApp, acked: &mut Vec<String>) {
    wait_ready(app, 200, 30).await;
    acked.push(app.create("question", "after@example.nl", "en").await);
    let mut present = 0;
    for id in acked.iter() {
        present += app
            .scalar("SELECT COUNT(*) FROM requests WHERE id = $1", id)
            .await;
    }
    assert_eq!(
        present,
        i64::try_from(acked.len()).unwrap(),
        "every acknowledged request is stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_sqlite_disk_answers_503_then_recovers_by_itself() {
    // Always SQLite: the full disk is SQLite's.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/full.db", dir.path().display());
    let app = TestApp::spawn_with(|s| s.database_url = url).await;
    let mut acked = acknowledged_while_ready(&app).await;

    // The single write connection may not grow the file past its size now.
    sqlx::query("PRAGMA max_page_count = 1")
        .execute(app.state().db.write())
        .await
        .unwrap();
    let problem = create_until_unavailable(&app, &mut acked, "full").await;
    assert_eq!(problem["code"], "unavailable");
    assert_eq!(problem["status"], 503);
    assert_eq!(problem["title"], "Temporarily unavailable");
    portal_form_says_try_again(&app, "nl", "Probeer het over een paar minuten nog eens").await;
    // The probe's one-row update still fits; customers being turned away
    // is what makes the instance not ready.
    wait_ready(&app, 503, 5).await;

    // Space again: no restart, no operator.
    sqlx::query("PRAGMA max_page_count = 1073741823")
        .execute(app.state().db.write())
        .await
        .unwrap();
    recovered_with_nothing_lost(&app, &mut acked).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_refusing_connections_answers_503_then_recovers_by_itself() {
    let Some(base) = common::postgres_url() else {
        eprintln!("skipped: PORTAL_TEST_POSTGRES_URL is not set");
        return;
    };
    use sqlx::Connection;
    // A database of its own: refusing connections to the shared one would
    // take the other tests of this binary down with it.
    let name = format!("ops_outage_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    let app = TestApp::spawn_with(|s| s.database_url = url.to_string()).await;
    let mut acked = acknowledged_while_ready(&app).await;

    // The outage: new connections refused, the app's open ones cut.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    let problem = create_until_unavailable(&app, &mut acked, "during").await;
    assert_eq!(problem["code"], "unavailable");
    portal_form_says_try_again(&app, "sv", "Försök igen om några minuter").await;
    wait_ready(&app, 503, 10).await;

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    recovered_with_nothing_lost(&app, &mut acked).await;
    app.stop().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

// ---------- backup ----------

#[tokio::test(flavor = "multi_thread")]
async fn backup_under_load_restores_with_an_intact_audit_trail_and_every_acknowledged_request() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let backup = |file: std::path::PathBuf, db: String| {
        tokio::task::spawn_blocking(move || {
            common::portal_bin()
                .env("PORTAL_DATABASE_URL", db)
                .arg("backup")
                .arg(file)
                .output()
                .unwrap()
        })
    };
    if common::postgres_url().is_some() {
        let out = backup(copy.clone(), app.database_url.clone())
            .await
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("pg_dump"), "{err}");
        assert!(!copy.exists());
        app.stop().await;
        return;
    }

    let (verified, _) = app.verified("question", "anna@example.nl", "nl").await;
    let acked = Arc::new(Mutex::new(vec![verified]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let (client, url) = (app.client.clone(), app.url("/api/v1/requests"));
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let res = client
                    .post(&url)
                    .json(&json!({"kind": "export", "email": format!("load{i}@example.nl"), "locale": "sv"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 202);
                let body: Value = res.json().await.unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push(body["id"].as_str().unwrap().to_string());
            }
        })
    };
    // Under way: some requests in, more arriving while the copy is made.
    while acked.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_backup = acked.lock().unwrap().clone();
    let out = backup(copy.clone(), app.database_url.clone())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("backup written to"), "{stdout}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    assert!(
        acked.lock().unwrap().len() > before_backup.len(),
        "requests kept coming while the copy was made"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the copy holds every request: owner only");
    }

    // An existing file is never overwritten.
    let again = backup(copy.clone(), app.database_url.clone())
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The copy is a store of its own: the chain checks out with the key.
    let copy_url = format!("sqlite://{}", copy.display());
    let verify = common::portal_bin()
        .env("PORTAL_DATABASE_URL", &copy_url)
        .env(
            "PORTAL_SECRET_KEY",
            app.state().settings.secret_key.expose_secret(),
        )
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(said.contains("audit trail intact"), "{said}");

    let restored = privacy_portal::store::Db::connect(&copy_url).await.unwrap();
    for id in &before_backup {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE id = $1")
            .bind(id)
            .fetch_one(restored.read())
            .await
            .unwrap();
        assert_eq!(n, 1, "request acknowledged before the backup is in it");
    }
    restored.close().await;
    app.stop().await;
}
