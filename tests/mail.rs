//! Mail that always moves: against SMTP servers that hang, defer or refuse,
//! mail is retried, held visibly or expired, never frozen or lost; two
//! workers on one database send each mail once; a stop does not wait for a
//! hanging server.

mod common;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    fake_smtp::{Behaviour, FakeSmtp},
    TestApp,
};
use privacy_portal::{
    mail::{
        transport::{Smtp, Transport},
        worker::Worker,
        Timing,
    },
    metrics::Metrics,
    store::{outbox, Db},
};

/// Polls `check` until it holds; fails after a generous deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 30 s: {what}");
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    status: String,
    attempts: i64,
    last_error: Option<String>,
    lease_token: Option<String>,
}

async fn row(db: &Db, request_id: &str) -> Row {
    sqlx::query_as(
        "SELECT status, attempts, last_error, lease_token FROM outbox WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_one(db.read())
    .await
    .unwrap()
}

fn metric(app: &TestApp, name: &str) -> i64 {
    let text = app.state().metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn spawn(
    fake: &FakeSmtp,
    adjust: impl FnOnce(&mut privacy_portal::config::Settings),
) -> TestApp {
    let url = fake.url();
    TestApp::spawn_with(move |s| {
        s.smtp_url = Some(url.into());
        adjust(s);
    })
    .await
}

fn short_send(s: &mut privacy_portal::config::Settings) {
    s.mail_timing = Timing {
        send_timeout: Duration::from_secs(1),
        lease: Duration::from_secs(4),
        ..Default::default()
    };
}

/// A silent server costs each attempt one send timeout, counted and
/// logged at WARN; once the server answers, the mail goes out.
async fn hang_then_recover(behaviour: Behaviour, email: &str) {
    let fake = FakeSmtp::start(behaviour).await;
    let app = spawn(&fake, short_send).await;
    let db = app.state().db.clone();
    let id = app.create("question", email, "en").await;
    eventually("a send timed out and the mail was deferred", || async {
        row(&db, &id).await.last_error.as_deref() == Some("smtp_timeout")
    })
    .await;
    let r = row(&db, &id).await;
    assert_eq!(r.status, "pending", "retryable, not dropped");
    assert!(metric(&app, "portal_mail_failures_total") >= 1);
    let logs = common::logs();
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("smtp_timeout"))
        .collect();
    assert!(!warned.is_empty(), "a timeout is logged at WARN");
    assert!(
        warned.iter().all(|l| !l.contains('@')),
        "no address in the log"
    );
    assert!(fake.delivered().is_empty());

    fake.set(Behaviour::Accept);
    eventually("the mail went out once the server answered", || async {
        fake.delivered_to(email) == 1
    })
    .await;
    eventually("marked sent", || async {
        row(&db, &id).await.status == "sent"
    })
    .await;
    assert!(metric(&app, "portal_mail_last_success_timestamp_seconds") > 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_silent_after_connect_times_out_and_mail_moves_once_it_answers() {
    hang_then_recover(Behaviour::SilentAfterConnect, "silent.connect@example.org").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_silent_after_data_times_out_and_mail_moves_once_it_answers() {
    hang_then_recover(Behaviour::SilentAfterData, "silent.data@example.org").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_451_defers_the_mail_until_the_server_accepts_it() {
    let fake = FakeSmtp::start(Behaviour::TryLater).await;
    let app = spawn(&fake, |_| {}).await;
    let db = app.state().db.clone();
    let email = "later@example.org";
    let id = app.create("question", email, "en").await;
    eventually("deferred with 4xx", || async {
        let r = row(&db, &id).await;
        r.last_error.as_deref() == Some("smtp_transient") && r.attempts >= 2
    })
    .await;
    assert_eq!(row(&db, &id).await.status, "pending");
    fake.set(Behaviour::Accept);
    eventually("delivered", || async { fake.delivered_to(email) == 1 }).await;
    eventually("marked sent", || async {
        row(&db, &id).await.status == "sent"
    })
    .await;
    app.stop().await;
}

async fn audit_actions(db: &Db, request_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events WHERE request_id = $1")
        .bind(request_id)
        .fetch_all(db.read())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_550_holds_the_mail_visibly_and_a_restart_sends_it() {
    let fake = FakeSmtp::start(Behaviour::Refuse).await;
    let mut app = spawn(&fake, |_| {}).await;
    let db = app.state().db.clone();
    let email = "relay.denied@example.org";
    let id = app.create("question", email, "en").await;
    eventually("held", || async { row(&db, &id).await.status == "held" }).await;
    let r = row(&db, &id).await;
    assert_eq!(r.last_error.as_deref(), Some("smtp_permanent"));
    let attempts = r.attempts;
    eventually("counted in the held gauge", || async {
        metric(&app, "portal_mail_held") == 1
    })
    .await;
    assert!(audit_actions(&db, &id)
        .await
        .contains(&"mail_held".to_string()));
    let logs = common::logs();
    assert!(logs
        .lines()
        .any(|l| l.contains("WARN") && l.contains("held for the operator")));
    // Held is not retried on the fast schedule.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(row(&db, &id).await.attempts, attempts);

    // The operator fixes the relay and restarts the portal.
    fake.set(Behaviour::Accept);
    let settings = app.state().settings.clone();
    app.server.take().unwrap().stop().await;
    let state = privacy_portal::build_state(settings).await.unwrap();
    let listener = common::free_listener();
    let server = privacy_portal::Server::start(state, listener)
        .await
        .unwrap();
    let db = server.state.db.clone();
    eventually("sent after the restart", || async {
        fake.delivered_to(email) == 1
    })
    .await;
    eventually("marked sent", || async {
        row(&db, &id).await.status == "sent"
    })
    .await;
    app.server = Some(server);
    eventually("the held gauge is back to 0", || async {
        metric(&app, "portal_mail_held") == 0
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn held_mail_is_retried_on_a_slow_schedule() {
    let fake = FakeSmtp::start(Behaviour::Refuse).await;
    let app = spawn(&fake, |s| {
        s.mail_timing.held_retry = Duration::from_secs(2);
    })
    .await;
    let db = app.state().db.clone();
    let email = "held.schedule@example.org";
    let id = app.create("question", email, "en").await;
    eventually("held", || async { row(&db, &id).await.status == "held" }).await;
    fake.set(Behaviour::Accept);
    eventually("sent without a restart", || async {
        fake.delivered_to(email) == 1
    })
    .await;
    eventually("marked sent", || async {
        row(&db, &id).await.status == "sent"
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_outage_a_new_code_mail_goes_out_promptly_and_the_waiting_mail_follows() {
    // Nothing listens on the port yet: the mail server is down.
    let port = common::free_listener().local_addr().unwrap().port();
    let app = TestApp::spawn_with(|s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        s.mail_retry_base = Duration::from_millis(250);
        s.mail_retry_max = Duration::from_secs(60);
    })
    .await;
    let db = app.state().db.clone();
    let first = app
        .create("question", "outage.first@example.org", "en")
        .await;
    // Pauses of 0.25, 0.5, 1, 2, 4 s: the worker now waits 8 s or more.
    eventually("the worker backed off", || async {
        row(&db, &first).await.attempts >= 6
    })
    .await;
    let fake = FakeSmtp::start_on(port, Behaviour::Accept).await;
    let second = app
        .create("question", "outage.second@example.org", "en")
        .await;
    let asked = Instant::now();
    eventually("the new code mail arrived", || async {
        fake.delivered_to("outage.second@example.org") == 1
    })
    .await;
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "the new mail woke the worker instead of waiting out its backoff ({:?})",
        asked.elapsed()
    );
    // The mail that waited through the outage follows at once, not at the
    // end of its own backoff.
    eventually("the older mail arrived", || async {
        fake.delivered_to("outage.first@example.org") == 1
    })
    .await;
    assert!(asked.elapsed() < Duration::from_secs(6));
    assert_eq!(row(&db, &second).await.status, "sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_mail_is_not_sent_after_its_code_expired() {
    let port = common::free_listener().local_addr().unwrap().port();
    let app = TestApp::spawn_with(|s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
    })
    .await;
    let db = app.state().db.clone();
    let email = "too.late@example.org";
    let id = app.create("question", email, "en").await;
    eventually("tried while the server is down", || async {
        row(&db, &id).await.attempts >= 1
    })
    .await;
    // The code was issued 15 minutes ago.
    sqlx::query("UPDATE outbox SET created_at = created_at - 900 WHERE request_id = $1")
        .bind(&id)
        .execute(db.write())
        .await
        .unwrap();
    // Still down: the next attempt finds the code expired, whatever
    // attempt was under way when the clock moved.
    eventually("expired", || async {
        row(&db, &id).await.status == "expired"
    })
    .await;
    let fake = FakeSmtp::start_on(port, Behaviour::Accept).await;
    let r = row(&db, &id).await;
    assert_eq!(r.last_error.as_deref(), Some("code_expired"));
    let sealed: Option<String> =
        sqlx::query_scalar("SELECT sealed_secret FROM outbox WHERE request_id = $1")
            .bind(&id)
            .fetch_one(db.read())
            .await
            .unwrap();
    assert!(sealed.is_none(), "the expired code is wiped");
    assert!(audit_actions(&db, &id)
        .await
        .contains(&"mail_expired".to_string()));
    // A fresh request still gets its mail through the same server.
    app.create("question", "in.time@example.org", "en").await;
    eventually("the fresh code mail arrived", || async {
        fake.delivered_to("in.time@example.org") == 1
    })
    .await;
    assert_eq!(fake.delivered_to(email), 0);
    app.stop().await;
}

fn extra_worker(app: &TestApp, url: &str, metrics: Arc<Metrics>) -> Worker {
    let s = &app.state().settings;
    Worker {
        db: app.state().db.clone(),
        transport: Transport::Smtp(Smtp::new(url, s.mail_timing.send_timeout).unwrap()),
        keys: app.state().keys.clone(),
        tera: app.state().tera.clone(),
        from: s.mail_from.parse().unwrap(),
        notify: Default::default(),
        metrics,
        retry_base: s.mail_retry_base,
        retry_max: s.mail_retry_max,
        interval: s.worker_interval,
        timing: s.mail_timing.clone(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_on_one_database_send_each_mail_once_with_a_slow_server() {
    let fake = FakeSmtp::start(Behaviour::Accept).await;
    // A batch of 20 at 0.4 s a mail outlasts the 5 s lease: the second
    // worker takes over what the first has not reached.
    fake.slow(Duration::from_millis(400));
    let app = spawn(&fake, |s| {
        s.mail_timing = Timing {
            send_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(3),
            ..Default::default()
        };
    })
    .await;
    let mut ids = vec![];
    for i in 0..20 {
        ids.push(
            app.create("question", &format!("twice{i}@example.org"), "en")
                .await,
        );
    }
    let second = Arc::new(Metrics::new());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let other = tokio::spawn(extra_worker(&app, &fake.url(), second.clone()).run(rx));
    let db = app.state().db.clone();
    eventually("every mail sent", || async {
        let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
            .fetch_one(db.read())
            .await
            .unwrap();
        sent == 20
    })
    .await;
    for i in 0..20 {
        assert_eq!(
            fake.delivered_to(&format!("twice{i}@example.org")),
            1,
            "mail {i} delivered exactly once"
        );
    }
    assert_eq!(fake.delivered().len(), 20);
    let by_first = app.state().metrics.mails_sent.get();
    let by_second = second.mails_sent.get();
    assert_eq!(by_first + by_second, 20);
    assert!(
        by_first > 0 && by_second > 0,
        "both workers sent: {by_first} + {by_second}"
    );
    stop.send(true).unwrap();
    other.await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_whose_lease_was_taken_over_cannot_mark_the_mail() {
    let app = TestApp::spawn().await;
    let db = app.state().db.clone();
    // Queued in the future, so the app's own worker leaves it alone.
    let later = privacy_portal::store::now() + 100_000;
    let mut conn = db.write().acquire().await.unwrap();
    outbox::insert(
        &mut conn,
        &outbox::NewMail {
            id: "lease-test",
            request_id: None,
            to_addr: "lease@example.org",
            template: "question_received",
            context: "{}",
            sealed_secret: None,
            forget_address: false,
        },
        later,
    )
    .await
    .unwrap();
    drop(conn);
    // A's lease runs out at once; B takes the mail over.
    let a = outbox::claim(&db, "token-a", later, 0, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    let b = outbox::claim(&db, "token-b", later, 60, 10).await.unwrap();
    assert_eq!(b.len(), 1, "an expired lease can be taken over");
    assert!(!outbox::renew(&db, "lease-test", "token-a", later + 60)
        .await
        .unwrap());
    assert!(!outbox::mark_sent(&db, "lease-test", "token-a", later)
        .await
        .unwrap());
    assert!(
        !outbox::mark_retry(&db, "lease-test", "token-a", later, "x")
            .await
            .unwrap()
    );
    let c = outbox::claim(&db, "token-c", later, 60, 10).await.unwrap();
    assert!(c.is_empty(), "a live lease is not taken over");
    assert!(outbox::renew(&db, "lease-test", "token-b", later + 60)
        .await
        .unwrap());
    assert!(outbox::mark_sent(&db, "lease-test", "token-b", later)
        .await
        .unwrap());
    let status: String = sqlx::query_scalar("SELECT status FROM outbox WHERE id = 'lease-test'")
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(status, "sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_returns_within_10_s_while_the_server_hangs_and_leaves_the_mail_queued() {
    for behaviour in [Behaviour::SilentAfterConnect, Behaviour::SilentAfterData] {
        let fake = FakeSmtp::start(behaviour).await;
        let mut app = spawn(&fake, |s| {
            // Far longer than a stop may take.
            s.mail_timing.send_timeout = Duration::from_secs(120);
            s.mail_timing.lease = Duration::from_secs(150);
        })
        .await;
        let id = app.create("question", "hang@example.org", "en").await;
        eventually("the send is under way", || async {
            match behaviour {
                Behaviour::SilentAfterData => fake.lines().iter().any(|l| l == "DATA"),
                _ => fake.connections() >= 1,
            }
        })
        .await;
        // Let the worker sit in the hanging send.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let database_url = app.database_url.clone();
        let server = app.server.take().unwrap();
        let stopped = tokio::time::timeout(Duration::from_secs(10), server.stop()).await;
        assert!(stopped.is_ok(), "{behaviour:?}: stop took longer than 10 s");
        let db = Db::connect(&database_url).await.unwrap();
        let r = row(&db, &id).await;
        assert_eq!(r.status, "pending", "{behaviour:?}: left queued");
        assert!(r.lease_token.is_none(), "{behaviour:?}: lease handed back");
        db.close().await;
    }
}

#[test]
fn sigterm_ends_serve_within_10_s_while_the_mail_server_hangs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeSmtp::start(Behaviour::SilentAfterConnect));
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_listener().local_addr().unwrap().port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_privacy-portal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTAL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env(
            "PORTAL_DATABASE_URL",
            format!("sqlite://{}/p.db", dir.path().display()),
        )
        .env("PORTAL_SMTP_URL", fake.url())
        .env(
            "PORTAL_SECRET_KEY",
            privacy_portal::config::generate_secret_hex(),
        )
        .env("PORTAL_BIND", format!("127.0.0.1:{port}"))
        .env("PORTAL_EXPORT_DIR", dir.path().join("exports"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        let client = reqwest::Client::new();
        eventually("serve is up", || async {
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        let res = client
            .post(format!("{base}/api/v1/requests"))
            .json(&serde_json::json!({"kind": "question", "email": "sigterm@example.org", "locale": "en"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        eventually("the worker is stuck in a send", || async {
            fake.connections() >= 1
        })
        .await;
    });
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(status) = status else {
        let _ = child.kill();
        panic!("serve still running 10 s after SIGTERM");
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_mail_wakes_a_worker_that_backs_off() {
    let fake = FakeSmtp::start(Behaviour::CloseAtOnce).await;
    let app = spawn(&fake, |s| {
        s.mail_retry_base = Duration::from_secs(1);
        s.mail_retry_max = Duration::from_secs(60);
    })
    .await;
    let db = app.state().db.clone();
    // Enough mail that every pass finds some due (the untried rest of a
    // batch is due again after a second): each pass connects once, fails,
    // and the worker's pause doubles: 1, 2, 4, then 8 s.
    for i in 0..30 {
        app.create("question", &format!("backlog{i}@example.org"), "en")
            .await;
    }
    eventually("four failed passes", || async { fake.connections() >= 4 }).await;
    fake.set(Behaviour::Accept);
    let id = app.create("question", "woken@example.org", "en").await;
    let asked = Instant::now();
    eventually("the new mail arrived", || async {
        fake.delivered_to("woken@example.org") == 1
    })
    .await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "sent {:?} after it was queued: the worker waited out its pause",
        asked.elapsed()
    );
    eventually("marked sent", || async {
        row(&db, &id).await.status == "sent"
    })
    .await;
    eventually("the backlog followed", || async {
        fake.delivered().len() == 31
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_mail_deferred_for_too_long_is_held_not_dropped() {
    let fake = FakeSmtp::start(Behaviour::TryLater).await;
    let app = spawn(&fake, |s| {
        s.mail_timing.give_up_after = Duration::from_secs(2);
    })
    .await;
    let state = app.state();
    let mut ctx = tera::Context::new();
    for (k, v) in [
        ("company", "Kaasboer"),
        ("reference", "R-1"),
        ("due_date", "1 January"),
        ("message", "Hello"),
        ("privacy_email", "privacy@kaasboer.example"),
    ] {
        ctx.insert(k, v);
    }
    let mut conn = state.db.write().acquire().await.unwrap();
    privacy_portal::mail::enqueue(
        &mut conn,
        &state.tera,
        &state.keys,
        privacy_portal::mail::Outgoing {
            request_id: Some("held-after-days"),
            to: "patient@example.org",
            locale: privacy_portal::domain::Locale::En,
            template: "question_received",
            ctx,
            secret: None,
            forget_address: false,
        },
        privacy_portal::store::now(),
    )
    .await
    .unwrap();
    drop(conn);
    state.mail_notify.notify_one();
    let db = state.db.clone();
    eventually("held after the give-up time", || async {
        row(&db, "held-after-days").await.status == "held"
    })
    .await;
    let r = row(&db, "held-after-days").await;
    assert_eq!(r.last_error.as_deref(), Some("smtp_transient"));
    assert!(r.attempts >= 2, "retried before it was held");
    assert!(audit_actions(&db, "held-after-days")
        .await
        .contains(&"mail_held".to_string()));
    app.stop().await;
}
