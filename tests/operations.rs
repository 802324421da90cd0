//! Operators' view: mail delivery that survives an absent server, probes,
//! metrics, the CLI commands and their errors, the customer import.

mod common;

use std::{io::Write, process::Command, time::Duration};

use common::{code_in, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn mail_waits_for_an_absent_smtp_server_and_is_delivered_once() {
    let mut app = TestApp::spawn_without_smtp().await;
    let email = "anna@example.nl";
    let id = app.create("question", email, "en").await;
    // The worker has tried and failed at least once; the mail waits.
    let db = app.state().db.clone();
    let outbox = || async {
        let row: (String, i64) =
            sqlx::query_as("SELECT status, attempts FROM outbox WHERE request_id = $1")
                .bind(&id)
                .fetch_one(db.read())
                .await
                .unwrap();
        row
    };
    let status = common::eventually("a failed delivery attempt", || async {
        match outbox().await {
            (status, attempts) if attempts >= 1 => Ok(status),
            seen => Err(seen),
        }
    })
    .await;
    assert_eq!(status, "pending");

    app.start_smtp();
    let mail = app.mail.wait_for(email, 1).await.remove(0);
    let code = code_in(&mail);
    common::eventually("the outbox marks the mail sent", || async {
        match outbox().await {
            (status, _) if status == "sent" => Ok(()),
            seen => Err(seen),
        }
    })
    .await;
    // A second delivery could only be waited for, not polled for: give
    // the worker (200 ms rounds) several chances to send it again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.mail.to(email).len(), 1, "delivered exactly once");
    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200, "the delayed code still works");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_metrics_and_openapi() {
    let token = "metrics-scraper-token-0123456789abcdef";
    let app = TestApp::spawn_with(|s| s.metrics_token = Some(token.to_string().into())).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .head(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.verified("question", "bram@example.nl", "nl").await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("portal_codes_sent_total 1"), "{metrics}");
    assert!(metrics.contains("portal_verifications_total{result=\"ok\"} 1"));
    assert!(
        metrics.contains("route=\"/api/v1/requests/{id}/verify\""),
        "routes by pattern"
    );
    assert!(metrics.contains("portal_outbox_backlog"));
    for gauge in [
        "portal_export_jobs_queued",
        "portal_export_jobs_retrying",
        "portal_export_jobs_oldest_age_seconds",
    ] {
        assert!(metrics.contains(gauge), "{gauge}");
    }
    assert!(!metrics.contains("bram@"), "no personal data in metrics");

    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/requests",
        "/api/v1/requests/{id}/verify",
        "/api/v1/requests/{id}/submit",
        "/api/v1/staff/cases",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn housekeeping_expires_unverified_and_purges_closed_requests() {
    let app = TestApp::spawn().await;
    let stale = app.create("question", "daan@example.nl", "nl").await;
    let (closed, _) = app.verified("question", "emma@example.com", "en").await;
    let db = app.state().db.write();
    // A day after its last code, a request nobody verified ends.
    sqlx::query("UPDATE verification_codes SET created_at = created_at - 90000, expires_at = expires_at - 90000 WHERE request_id = $1")
        .bind(&stale)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("UPDATE requests SET status = 'completed', closed_at = 1000 WHERE id = $1")
        .bind(&closed)
        .execute(db)
        .await
        .unwrap();
    let report = privacy_portal::workflow::sweep::run(app.state())
        .await
        .unwrap();
    assert_eq!((report.expired, report.purged), (1, 1));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'expired'",
            &stale
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM requests WHERE id = $1", &closed)
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM outbox WHERE request_id = $1", &closed)
            .await,
        0
    );
    // The audit trail records the purge but keeps no address.
    assert_eq!(app.scalar("SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = 'purged_after_retention'", &closed).await, 1);
    let details: Vec<String> = sqlx::query_scalar("SELECT detail FROM audit_events")
        .fetch_all(app.state().db.read())
        .await
        .unwrap();
    assert!(details.iter().all(|d| !d.contains('@')));
    app.stop().await;
}

async fn sweep(app: &TestApp) -> privacy_portal::workflow::sweep::SweepReport {
    privacy_portal::workflow::sweep::run(app.state())
        .await
        .unwrap()
}

async fn age_codes(app: &TestApp, id: &str, secs: i64) {
    sqlx::query(
        "UPDATE verification_codes SET created_at = created_at - $1, expires_at = expires_at - $1 WHERE request_id = $2",
    )
    .bind(secs)
    .bind(id)
    .execute(app.state().db.write())
    .await
    .unwrap();
}

fn subject(locale: privacy_portal::domain::Locale, key: &str) -> String {
    // Subjects may end in "({{ reference }})": compare what comes before.
    privacy_portal::i18n::t(locale, key)
        .split("({{")
        .next()
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_code_gets_one_reminder_then_the_request_expires_with_a_notice() {
    let app = TestApp::spawn().await;
    let email = "carla@example.nl";
    let id = app.create("export", email, "nl").await;
    app.mail.wait_for(email, 1).await;
    // Fresh code: nothing to remind yet.
    assert_eq!(sweep(&app).await.reminded, 0);
    // Eleven minutes later the code (15 minutes) is about to expire unused.
    sqlx::query(
        "UPDATE verification_codes SET created_at = created_at - 660 WHERE request_id = $1",
    )
    .bind(&id)
    .execute(app.state().db.write())
    .await
    .unwrap();
    assert_eq!(sweep(&app).await.reminded, 1);
    assert_eq!(
        sweep(&app).await.reminded,
        0,
        "one reminder, not one a minute"
    );
    let nl = privacy_portal::domain::Locale::Nl;
    let reminder = app.mail.wait_for(email, 2).await.remove(1);
    assert_eq!(
        reminder.subject,
        subject(nl, "email.verification_reminder.subject")
    );
    assert!(
        reminder.text.contains(&format!("/nl/r/{id}/code")),
        "{}",
        reminder.text
    );

    // A day after the last code the request ends, and the customer is told.
    age_codes(&app, &id, 90_000).await;
    assert_eq!(sweep(&app).await.expired, 1);
    let notice = app.mail.wait_for(email, 3).await.remove(2);
    assert!(notice
        .subject
        .starts_with(&subject(nl, "email.request_expired.subject")));
    assert!(notice.text.contains("/nl/export"), "{}", notice.text);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'expired'",
            &id
        )
        .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_request_never_submitted_expires_after_a_week_and_its_token_dies() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let (id, token) = app.verified("delete", email, "en").await;
    let status = |token: String| {
        let (app, id) = (&app, id.clone());
        async move {
            app.client
                .get(app.url(&format!("/api/v1/requests/{id}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(token.clone()).await, 200);
    // Not in the register while it is only verified: nobody asked for anything yet.
    assert_eq!(
        privacy_portal::workflow::register::build(app.state())
            .await
            .unwrap()
            .summary
            .total,
        0
    );
    assert_eq!(sweep(&app).await.expired, 0, "six days is not a week");
    sqlx::query("UPDATE requests SET verified_at = verified_at - 8 * 86400 WHERE id = $1")
        .bind(&id)
        .execute(app.state().db.write())
        .await
        .unwrap();
    assert_eq!(sweep(&app).await.expired, 1);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'expired'",
            &id
        )
        .await,
        1
    );
    assert_eq!(status(token).await, 401, "the token ends with its request");
    let en = privacy_portal::domain::Locale::En;
    let notice = app.mail.wait_for(email, 2).await.remove(1);
    assert!(notice
        .subject
        .starts_with(&subject(en, "email.request_expired.subject")));
    assert!(notice.text.contains("7 days"), "{}", notice.text);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_staff_entered_with_a_past_date_keeps_its_code_alive() {
    let app = TestApp::spawn().await;
    let received = (chrono::Utc::now() - chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let id = privacy_portal::workflow::staff_intake::start(
        app.state(),
        &privacy_portal::workflow::staff_intake::Input {
            kind: "question",
            email: "sven@example.se",
            locale: "sv",
            channel: "letter",
            received: &received,
        },
        "staff:test",
    )
    .await
    .unwrap();
    // The next sweep must not expire it: the code was sent just now.
    assert_eq!(sweep(&app).await.expired, 0);
    let code = code_in(&app.mail.wait_for("sven@example.se", 1).await[0]);
    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_keeps_open_checklist_work_and_records_each_purge_once() {
    let app = TestApp::spawn().await;
    let (with_work, _) = app.verified("question", "emma@example.com", "en").await;
    let mut done = Vec::new();
    for email in ["anna@example.nl", "bram@example.nl", "carla@example.nl"] {
        done.push(app.verified("question", email, "nl").await.0);
    }
    let db = app.state().db.write();
    sqlx::query(
        "UPDATE requests SET status = 'completed', closed_at = 1000 WHERE status = 'verified'",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO staff_tasks (id, request_id, kind, checklist, status, due_at, created_at) \
         VALUES ('t1', $1, 'erasure_other_systems', '[]', 'open', 0, 0)",
    )
    .bind(&with_work)
    .execute(db)
    .await
    .unwrap();
    // Three sweeps at once (as on three instances): each request purged and
    // recorded once.
    let (a, b, c) = tokio::join!(sweep(&app), sweep(&app), sweep(&app));
    assert_eq!(a.purged + b.purged + c.purged, 3);
    for id in &done {
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = 'purged_after_retention'", id)
                .await,
            1
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM requests WHERE id = $1", &with_work)
            .await,
        1,
        "open checklist work is not purged"
    );
    app.stop().await;
}

// ---------- the binary ----------

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_privacy-portal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTAL_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

fn key() -> String {
    "ab".repeat(32)
}

#[test]
fn serve_refuses_to_start_without_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/p.db", dir.path().display());
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("PORTAL_SECRET_KEY", key())], "PORTAL_SMTP_URL"),
        (
            vec![("PORTAL_SMTP_URL", "smtp://127.0.0.1:2525".into())],
            "PORTAL_SECRET_KEY",
        ),
        (
            vec![
                ("PORTAL_SMTP_URL", "smtp://127.0.0.1:2525".into()),
                ("PORTAL_SECRET_KEY", "abcd".into()),
            ],
            "PORTAL_SECRET_KEY",
        ),
        (
            vec![
                ("PORTAL_SMTP_URL", "http://mail".into()),
                ("PORTAL_SECRET_KEY", key()),
            ],
            "PORTAL_SMTP_URL",
        ),
        (
            vec![
                ("PORTAL_SMTP_URL", "smtp://127.0.0.1:2525".into()),
                ("PORTAL_SECRET_KEY", key()),
                ("PORTAL_BIND", "nonsense".into()),
            ],
            "PORTAL_BIND",
        ),
        // The shorthand for an HTTP primary needs its signing secret too.
        (
            vec![
                ("PORTAL_SMTP_URL", "smtp://127.0.0.1:2525".into()),
                ("PORTAL_SECRET_KEY", key()),
                (
                    "PORTAL_CONNECTOR_URL",
                    "https://shop.example/privacy/v1".into(),
                ),
            ],
            "PORTAL_CONNECTOR_URL",
        ),
    ];
    for (env, named) in cases {
        let out = bin()
            .arg("serve")
            .env("PORTAL_DATABASE_URL", &db)
            .envs(env)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(named), "names {named}: {err}");
    }
    // A malformed company file names the file and the problem.
    let cfg = dir.path().join("company.toml");
    std::fs::write(&cfg, "[company]\nname = \"Shop\"\ncountry = \"NL\"\n").unwrap();
    let out = bin()
        .arg("serve")
        .env("PORTAL_DATABASE_URL", &db)
        .env("PORTAL_SMTP_URL", "smtp://127.0.0.1:2525")
        .env("PORTAL_SECRET_KEY", key())
        .env("PORTAL_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("company.toml") && err.contains("privacy_email"),
        "{err}"
    );
}

#[test]
fn import_upserts_reports_bad_lines_and_keeps_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/p.db", dir.path().display());
    let file = dir.path().join("customers.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, r#"{{"external_id":"C-1","email":"Anna@Example.nl","name":"Anna","postcode":"1012 AB","house_number":"12","favourite_cheese":"Gouda","orders":[{{"id":"O-1","placed_at":"2024-05-01T09:00:00Z","status":"open","total_cents":4599,"currency":"EUR","gift_wrap":true}}]}}"#).unwrap();
    writeln!(f, "{{not json").unwrap();
    writeln!(f, r#"{{"external_id":"C-2","email":"no-at-sign"}}"#).unwrap();
    writeln!(f).unwrap();
    writeln!(f, r#"{{"external_id":"C-3","email":"anna@example.nl"}}"#).unwrap();
    writeln!(f, r#"{{"external_id":"C-4","email":"bo@example.se","orders":[{{"id":"O","placed_at":"2024-05-01T09:00:00Z","status":"lost","total_cents":1,"currency":"SEK"}}]}}"#).unwrap();
    writeln!(
        f,
        r#"{{"external_id":"C-5","email":"eva@example.se","locale":"sv"}}"#
    )
    .unwrap();
    drop(f);

    let run = || {
        bin()
            .args(["accounts", "import"])
            .arg(&file)
            .env("PORTAL_DATABASE_URL", &db)
            .env("PORTAL_SECRET_KEY", key())
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "partial import: {stderr}");
    assert!(stdout.contains("2 new, 0 updated, 4 skipped"), "{stdout}");
    for line in ["line 2:", "line 3:", "line 5:", "line 6:"] {
        assert!(stderr.contains(line), "{line} reported: {stderr}");
    }
    assert!(stderr.contains("another account"), "{stderr}");
    assert!(
        !stderr.contains("no-at-sign") && !stderr.contains("anna@"),
        "no personal data in errors: {stderr}"
    );

    // Idempotent: the same file again updates, adds nothing.
    let out = run();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("0 new, 2 updated, 4 skipped"));

    // Unknown fields are kept for the export; stdin works too.
    let out = bin()
        .args(["accounts", "import", "-"])
        .env("PORTAL_DATABASE_URL", &db)
        .env("PORTAL_SECRET_KEY", key())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(br#"{"external_id":"C-9","email":"nine@example.nl"}"#)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = privacy_portal::store::Db::connect(&db).await.unwrap();
        let (extra, order_extra): (String, String) = sqlx::query_as(
            "SELECT c.extra, o.extra FROM customers c JOIN customer_orders o ON o.customer_id = c.id WHERE c.external_id = 'C-1'",
        )
        .fetch_one(db.read())
        .await
        .unwrap();
        assert!(extra.contains("Gouda"));
        assert!(order_extra.contains("gift_wrap"));
        let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE external_id = 'C-1'").fetch_one(db.read()).await.unwrap();
        assert_eq!(email, "anna@example.nl", "stored normalised");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(db.read()).await.unwrap();
        assert_eq!(n, 3);
    });
}

#[test]
fn staff_commands_print_a_link_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/p.db", dir.path().display());
    let run = |args: &[&str]| {
        bin()
            .args(args)
            .env("PORTAL_DATABASE_URL", &db)
            .env("PORTAL_SECRET_KEY", key())
            .env("PORTAL_BASE_URL", "https://privacy.shop.example")
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["staff", "add", "Agent@Shop.example", "--role", "agent"]);
    assert!(out.status.success());
    let link = String::from_utf8(out.stdout).unwrap();
    assert!(
        link.trim()
            .starts_with("https://privacy.shop.example/staff/enrol/"),
        "{link}"
    );
    let out = run(&["staff", "add", "agent@shop.example", "--role", "admin"]);
    assert!(!out.status.success(), "duplicate refused");
    let out = run(&["staff", "token", "agent@shop.example"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(token.starts_with("pps_") && token.len() > 40);
    let out = run(&["staff", "token", "nobody@shop.example"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8(out.stderr)
            .unwrap()
            .trim()
            .lines()
            .count(),
        1
    );
}

/// Intake commits on SQLite with `synchronous=NORMAL` and flushes the log
/// itself; every other writer must still get a connection that commits
/// with FULL durability and SQLite's own checkpoints. Runs on a SQLite
/// file whatever the suite's backend, since the setting exists only there.
#[tokio::test(flavor = "multi_thread")]
async fn intake_hands_the_write_connection_back_fully_durable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/intake.db", dir.path().display());
    let app = TestApp::spawn_with(|s| s.database_url = url).await;
    let creates = (0..40).map(|i| {
        let app = &app;
        async move {
            app.create("question", &format!("burst{i}@example.org"), "en")
                .await
        }
    });
    let ids = futures_util::future::join_all(creates).await;
    assert_eq!(ids.len(), 40);

    let mut conn = app.state().db.write().acquire().await.unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let autocheckpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    assert_eq!(autocheckpoint, 1000);
    drop(conn);

    let stored = app
        .scalar("SELECT COUNT(*) FROM requests WHERE kind = $1", "question")
        .await;
    assert_eq!(stored, 40);
    app.stop().await;
}

/// Intake stores its rows in bulk (on PostgreSQL as one array per column).
/// Text that array and SQL literals treat specially — quotes, backslashes,
/// braces, commas, the word NULL, a line break — must reach the customer
/// exactly as configured.
#[tokio::test(flavor = "multi_thread")]
async fn awkward_text_reaches_the_mail_unchanged() {
    let name = "Kaas \"&\" Zo\\Co, {NL} NULL 't Hoekje\nB.V.";
    let app = TestApp::spawn_with(|s| s.company.name = name.to_string()).await;
    let email = "awkward@example.org";
    app.create("question", email, "en").await;
    let mail = app.mail.wait_for(email, 1).await.remove(0);
    let text = mail.text.replace("\r\n", "\n");
    assert!(text.contains(name), "company name changed in: {text}");
    app.stop().await;
}
