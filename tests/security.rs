//! The identity check's limits, enumeration protection and web safety.

mod common;

use common::{code_in, page, TestApp};
use serde_json::{json, Value};

async fn verify(app: &TestApp, id: &str, code: &str) -> (u16, Value) {
    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn wrong(code: &str) -> String {
    // A 6-digit code that is certainly not the right one.
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_wrong_codes_burn_the_code() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let id = app.create("question", email, "en").await;
    let code = code_in(&app.mail.wait_for(email, 1).await[0]);
    for left in [4, 3, 2, 1] {
        let (status, body) = verify(&app, &id, &wrong(&code)).await;
        assert_eq!(status, 422);
        assert_eq!(body["code"], "invalid_code");
        assert_eq!(body["attempts_left"], left);
    }
    let (status, body) = verify(&app, &id, &wrong(&code)).await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "too_many_attempts");
    // Even the right code no longer works.
    let (status, _) = verify(&app, &id, &code).await;
    assert_eq!(status, 429);
    let state: String =
        sqlx::query_scalar("SELECT state FROM verification_codes WHERE request_id = $1")
            .bind(&id)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(state, "burnt");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_parallel_wrong_guesses_check_at_most_five() {
    let app = TestApp::spawn().await;
    let email = "bram@example.nl";
    let id = app.create("question", email, "en").await;
    let code = code_in(&app.mail.wait_for(email, 1).await[0]);
    let guesses = (0..50).map(|i| {
        let app = &app;
        let id = id.clone();
        let guess = format!("{:06}", (code.parse::<u32>().unwrap() + 1 + i) % 1_000_000);
        async move { verify(app, &id, &guess).await.0 }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked_wrong = statuses.iter().filter(|s| **s == 422).count();
    assert_eq!(
        checked_wrong, 4,
        "four 'wrong code, try again' answers: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 422 || *s == 429),
        "{statuses:?}"
    );
    let attempts: i64 =
        sqlx::query_scalar("SELECT attempts FROM verification_codes WHERE request_id = $1")
            .bind(&id)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(attempts, 5, "only five guesses were compared");
    let (status, _) = verify(&app, &id, &code).await;
    assert_eq!(status, 429);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_wrong_tries_lock_the_address_across_requests() {
    let app = TestApp::spawn().await;
    let email = "carla@example.nl";
    for n in 1..=2 {
        let id = app.create("question", email, "en").await;
        let code = code_in(&app.mail.wait_for(email, n).await[n - 1]);
        for _ in 0..5 {
            verify(&app, &id, &wrong(&code)).await;
        }
    }
    // A third request with the right code is still refused for this address…
    let id = app.create("question", email, "en").await;
    let code = code_in(&app.mail.wait_for(email, 3).await[2]);
    let (status, body) = verify(&app, &id, &code).await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "too_many_attempts");
    // …but another address is not affected.
    let (id2, _) = app.verified("question", "daan@example.nl", "en").await;
    assert!(!id2.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codes_per_address_and_resends_are_throttled() {
    let app = TestApp::spawn().await;
    let email = "sven@example.se";
    let id = app.create("question", email, "sv").await;
    let first = code_in(&app.mail.wait_for(email, 1).await[0]);

    let res = app
        .post_json(&format!("/api/v1/requests/{id}/resend"), json!({}))
        .await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "retry-after {wait}");

    // 31 seconds later a resend works and only the new code is valid.
    sqlx::query("UPDATE verification_codes SET created_at = created_at - 31 WHERE request_id = $1")
        .bind(&id)
        .execute(app.state().db.write())
        .await
        .unwrap();
    let res = app
        .post_json(&format!("/api/v1/requests/{id}/resend"), json!({}))
        .await;
    assert_eq!(res.status(), 202);
    let second = code_in(&app.mail.wait_for(email, 2).await[1]);
    if first != second {
        let (status, body) = verify(&app, &id, &first).await;
        assert_eq!(status, 422, "a superseded code is just a wrong code now");
        assert_eq!(body["attempts_left"], 4);
    }
    let (status, _) = verify(&app, &id, &second).await;
    assert_eq!(status, 200);

    // At most 5 codes an hour per address, across requests.
    for _ in 0..3 {
        app.create("question", email, "sv").await;
    }
    let res = app
        .post_json(
            "/api/v1/requests",
            json!({"kind": "question", "email": email, "locale": "sv"}),
        )
        .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(
        body["detail"].as_str().unwrap().contains("minuter"),
        "Swedish text: {body}"
    );
    app.stop().await;
}

/// Requests arriving together are written in shared transactions; the
/// per-address limit and the audit chain must hold across them.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_requests_is_stored_whole_and_limited_per_address() {
    let app = TestApp::spawn().await;
    let mut calls = Vec::new();
    for i in 0..60 {
        let email = if i % 6 == 0 {
            "bram@example.nl".to_string()
        } else {
            format!("burst-{i}@example.com")
        };
        let (client, url) = (app.client.clone(), app.url("/api/v1/requests"));
        calls.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&json!({"kind": "question", "email": email, "locale": "nl"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (email, status, body)
        }));
    }
    let mut accepted = Vec::new();
    let mut refused_for_bram = 0;
    for call in calls {
        let (email, status, body) = call.await.unwrap();
        match status {
            202 => accepted.push((email, body["id"].as_str().unwrap().to_string())),
            429 if email == "bram@example.nl" => refused_for_bram += 1,
            other => panic!("{email}: {other} {body}"),
        }
    }
    // Ten for one address: five get a code, five are told to wait.
    assert_eq!(refused_for_bram, 5);
    assert_eq!(accepted.len(), 55);
    for (email, id) in &accepted {
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM requests WHERE id = $1", id)
                .await,
            1
        );
        assert_eq!(
            app.scalar(
                "SELECT COUNT(*) FROM verification_codes WHERE request_id = $1 AND state = 'active'",
                id
            )
            .await,
            1,
            "{email}"
        );
        assert_eq!(
            app.scalar(
                "SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = 'request_created'",
                id
            )
            .await,
            1
        );
    }
    assert_eq!(app.mail.wait_for("bram@example.nl", 5).await.len(), 5);
    let one = &accepted
        .iter()
        .find(|(e, _)| e != "bram@example.nl")
        .unwrap();
    let code = code_in(&app.mail.wait_for(&one.0, 1).await[0]);
    let (status, _) = verify(&app, &one.1, &code).await;
    assert_eq!(status, 200);
    let chain = privacy_portal::store::audit::verify_chain(&app.state().db)
        .await
        .unwrap();
    assert!(chain.broken.is_none(), "{chain:?}");
    assert!(chain.checked >= 56);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_says_so() {
    let app = TestApp::spawn().await;
    let email = "emma@example.com";
    let id = app.create("question", email, "en").await;
    let code = code_in(&app.mail.wait_for(email, 1).await[0]);
    sqlx::query(
        "UPDATE verification_codes SET expires_at = expires_at - 901 WHERE request_id = $1",
    )
    .bind(&id)
    .execute(app.state().db.write())
    .await
    .unwrap();
    let (status, body) = verify(&app, &id, &code).await;
    assert_eq!(status, 410);
    assert_eq!(body["code"], "code_expired");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn known_and_unknown_addresses_get_identical_answers() {
    let app = TestApp::spawn().await;
    let known = "anna@example.nl";
    let unknown = "nobody-here@example.nl";
    let mut bodies = vec![];
    for email in [known, unknown] {
        let res = app
            .post_json(
                "/api/v1/requests",
                json!({"kind": "question", "email": email, "locale": "nl"}),
            )
            .await;
        assert_eq!(res.status(), 202);
        // The set of headers, not their order (a hash map's iteration order).
        let mut headers: Vec<String> = res.headers().keys().map(|k| k.to_string()).collect();
        headers.sort();
        let body = res.text().await.unwrap();
        let id: Value = serde_json::from_str(&body).unwrap();
        bodies.push((body.replace(id["id"].as_str().unwrap(), "ID"), headers));
    }
    assert_eq!(bodies[0], bodies[1]);
    // Both receive a code: the mail is how the customer proves the address.
    app.mail.wait_for(known, 1).await;
    app.mail.wait_for(unknown, 1).await;

    // Same for the HTML form and the code page it leads to.
    let mut pages = vec![];
    for email in [known, unknown] {
        let client = common::client();
        let (_, _, csrf) = page(&client, &app.url("/nl/question")).await;
        let res = client
            .post(app.url("/nl/question"))
            .form(&[("csrf", csrf.unwrap()), ("email", email.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let loc = common::location(&res);
        let id = loc.split('/').nth(3).unwrap().to_string();
        let (status, body, csrf) = page(&client, &app.url(&loc)).await;
        assert_eq!(status, 200);
        pages.push(body.replace(&id, "ID").replace(&csrf.unwrap(), "CSRF"));
    }
    assert_eq!(pages[0], pages[1]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let client = common::client();
    page(&client, &app.url("/en/question")).await;
    let res = client
        .post(app.url("/en/question"))
        .form(&[("email", "anna@example.nl")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body = res.text().await.unwrap();
    assert!(body.contains("Your session has expired"), "{body}");
    let res = client
        .post(app.url("/en/question"))
        .form(&[("email", "anna@example.nl"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests")
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(n, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_session_belongs_to_the_browser_that_verified() {
    let app = TestApp::spawn().await;
    let email = "daan@example.nl";
    let client = common::client();
    let (_, _, csrf) = page(&client, &app.url("/en/question")).await;
    let res = client
        .post(app.url("/en/question"))
        .form(&[("csrf", csrf.unwrap()), ("email", email.to_string())])
        .send()
        .await
        .unwrap();
    let code_url = common::location(&res);
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let code = code_in(&app.mail.wait_for(email, 1).await[0]);
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly"));
    assert!(set_cookie.contains("SameSite=Lax"));
    let request_url = common::location(&res);
    let (status, body, _) = page(&client, &app.url(&request_url)).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"message\""));
    // Someone else with the link gets nothing.
    let (status, body, _) = page(&common::client(), &app.url(&request_url)).await;
    assert_eq!(status, 403);
    assert!(!body.contains("id=\"message\""));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.client_rate_limit_per_minute = 3).await;
    for i in 0..3 {
        let res = app
            .post_json(
                "/api/v1/requests",
                json!({"kind": "question", "email": format!("x{i}@example.nl"), "locale": "en"}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    let res = app
        .post_json(
            "/api/v1/requests",
            json!({"kind": "question", "email": "x9@example.nl", "locale": "en"}),
        )
        .await;
    assert_eq!(res.status(), 429);
    assert!(
        res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // The HTML portal answers in the page's language.
    let res = app
        .client
        .post(app.url("/nl/question"))
        .form(&[("email", "y@example.nl")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("Te veel"));
    // Reading is not limited.
    assert_eq!(
        app.client
            .get(app.url("/nl/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_carry_security_headers_and_secrets_are_not_stored_in_clear() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/en/")).send().await.unwrap();
    let h = res.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        !h.contains_key("strict-transport-security"),
        "no HSTS on plain http"
    );

    let email = "anna@example.nl";
    let (id, token) = app.verified("question", email, "en").await;
    let code = code_in(&app.mail.to(email)[0]);
    let db = app.state().db.read();
    let stored: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT body_text, subject, context FROM outbox WHERE request_id = $1")
            .bind(&id)
            .fetch_all(db)
            .await
            .unwrap();
    assert!(!stored.is_empty());
    for (body, subject, context) in &stored {
        let context = context.as_deref().unwrap_or_default();
        assert!(
            !body.contains(&code) && !subject.contains(&code) && !context.contains(&code),
            "code stored in clear in the outbox"
        );
    }
    let sealed: Option<String> =
        sqlx::query_scalar("SELECT sealed_secret FROM outbox WHERE request_id = $1")
            .bind(&id)
            .fetch_one(db)
            .await
            .unwrap();
    assert!(sealed.is_none(), "sealed code wiped once delivered");
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT code_hash FROM verification_codes WHERE request_id = $1")
            .bind(&id)
            .fetch_all(db)
            .await
            .unwrap();
    assert!(hashes.iter().all(|h| h.len() == 64 && !h.contains(&code)));
    let token_hash: String = sqlx::query_scalar("SELECT token_hash FROM requests WHERE id = $1")
        .bind(&id)
        .fetch_one(db)
        .await
        .unwrap();
    assert_ne!(token_hash, token);
    app.stop().await;
}

// ---------- SMTP credentials never in clear (issue 13 item 6) ----------

/// A mail server that offers AUTH but no STARTTLS, and the request whose
/// code mail the portal tries to send through it with `smtp_url`.
async fn send_through_auth_without_tls(
    query: &str,
    email: &str,
) -> (common::fake_smtp::FakeSmtp, TestApp, String) {
    use common::fake_smtp::{Behaviour, FakeSmtp};
    let fake = FakeSmtp::start(Behaviour::Accept).await;
    fake.offer_auth();
    let url = format!("smtp://portal:S3cret-pw@127.0.0.1:{}{query}", fake.port);
    let app = TestApp::spawn_with(move |s| s.smtp_url = Some(url.into())).await;
    let id = app.create("question", email, "en").await;
    (fake, app, id)
}

async fn poll_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not within 30 s: {what}");
}

fn credentials_seen(lines: &[String]) -> bool {
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0portal\0S3cret-pw");
    let login = base64::engine::general_purpose::STANDARD.encode("S3cret-pw");
    lines.iter().any(|l| {
        l.to_ascii_uppercase().starts_with("AUTH")
            || l.contains(&plain)
            || l.contains(&login)
            || l.contains("S3cret-pw")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_credentials_are_not_sent_to_a_server_without_starttls() {
    let email = "cleartext.refused@example.org";
    let (fake, app, id) = send_through_auth_without_tls("", email).await;
    let db = app.state().db.clone();
    poll_until(
        "the portal tried the server and deferred the mail",
        || async {
            let r: (String, Option<String>) =
                sqlx::query_as("SELECT status, last_error FROM outbox WHERE request_id = $1")
                    .bind(&id)
                    .fetch_one(db.read())
                    .await
                    .unwrap();
            r.1.as_deref() == Some("smtp_tls")
        },
    )
    .await;
    let lines = fake.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.to_ascii_uppercase().starts_with("EHLO")),
        "the server was reached: {lines:?}"
    );
    assert!(!credentials_seen(&lines), "credentials went out: {lines:?}");
    assert!(fake.delivered().is_empty());
    let status: String = sqlx::query_scalar("SELECT status FROM outbox WHERE request_id = $1")
        .bind(&id)
        .fetch_one(db.read())
        .await
        .unwrap();
    assert_eq!(status, "pending", "kept for a retry once TLS works");
    assert!(!common::logs().contains("S3cret-pw"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_credentials_go_in_clear_only_with_tls_none_and_a_warning() {
    let email = "cleartext.chosen@example.org";
    let (fake, app, id) = send_through_auth_without_tls("?tls=none", email).await;
    poll_until("delivered", || async { fake.delivered_to(email) == 1 }).await;
    assert!(credentials_seen(&fake.lines()), "AUTH was used");
    let db = app.state().db.clone();
    poll_until("marked sent", || async {
        let status: String = sqlx::query_scalar("SELECT status FROM outbox WHERE request_id = $1")
            .bind(&id)
            .fetch_one(db.read())
            .await
            .unwrap();
        status == "sent"
    })
    .await;
    let logs = common::logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("WARN") && l.contains("tls=none"))
        .expect("a warning at start");
    assert!(warning.contains("127.0.0.1") && !warning.contains("S3cret-pw"));
    assert!(!logs.contains("S3cret-pw"));
    app.stop().await;
}

#[test]
fn serve_refuses_smtp_credentials_with_opportunistic_tls() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_privacy-portal"))
        .arg("serve")
        .env("PORTAL_DATABASE_URL", "sqlite::memory:")
        .env(
            "PORTAL_SMTP_URL",
            "smtp://portal:S3cret-pw@127.0.0.1:2525?tls=opportunistic",
        )
        .env(
            "PORTAL_SECRET_KEY",
            privacy_portal::config::generate_secret_hex(),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("PORTAL_SMTP_URL") && err.contains("tls=none"),
        "{err}"
    );
    assert!(!err.contains("S3cret-pw"), "{err}");
}
