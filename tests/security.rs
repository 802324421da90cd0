//! The identity check's limits, enumeration protection and web safety.

mod common;
mod staff_common;

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
    let chain =
        privacy_portal::store::audit::verify_chain(&app.state().db, app.state().keys.audit())
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

/// Red team: change your own address to the victim's, get the code sent to
/// the victim's mailbox, then choose the option that erases the victim's
/// account. The codes prove addresses, not the right to erase an account:
/// the victim's own postcode and house number are required, 5 tries.
#[tokio::test(flavor = "multi_thread")]
async fn collision_takeover_needs_the_deleted_accounts_knowledge_check() {
    let app = TestApp::spawn().await;
    let (attacker, victim) = ("emma@example.com", "anna@example.nl");
    let (id, token) = app.verified("change_email", attacker, "en").await;
    let call = |path: String, body: Value| {
        let (app, token) = (&app, token.clone());
        async move {
            let res = app
                .client
                .post(app.url(&path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, _) = call(
        format!("/api/v1/requests/{id}/submit"),
        json!({"new_email": victim}),
    )
    .await;
    assert_eq!(status, 200);
    let code = code_in(&app.mail.wait_for(victim, 1).await[0]);
    let (_, body) = call(
        format!("/api/v1/requests/{id}/verify-new-email"),
        json!({"code": code}),
    )
    .await;
    assert_eq!(body["reasons"], json!(["email_in_use"]));

    // Option B erases the victim's account: the attacker's own details, or
    // none at all, do not pass.
    let (status, body) = call(
        format!("/api/v1/requests/{id}/collision-choice"),
        json!({"option": "B"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_input"))
    );
    for left in [4, 3, 2, 1] {
        let (status, body) = call(
            format!("/api/v1/requests/{id}/collision-choice"),
            json!({"option": "B", "postcode": "1071 DJ", "house_number": "22"}),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "details_mismatch");
        assert_eq!(body["attempts_left"], left);
    }
    let (status, _) = call(
        format!("/api/v1/requests/{id}/collision-choice"),
        json!({"option": "B", "postcode": "1071 DJ", "house_number": "22"}),
    )
    .await;
    assert_eq!(status, 429);
    // Locked: even the right details no longer record a choice.
    let (status, _) = call(
        format!("/api/v1/requests/{id}/collision-choice"),
        json!({"option": "B", "postcode": "1012 AB", "house_number": "12"}),
    )
    .await;
    assert_eq!(status, 429);

    // Staff cannot carry out an unproven choice either.
    let staff = app.staff_token().await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .bearer_auth(&staff)
        .json(&json!({"action": "execute"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let owner: Option<String> =
        sqlx::query_scalar("SELECT external_id FROM customers WHERE email = $1")
            .bind(victim)
            .fetch_optional(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(
        owner.as_deref(),
        Some("C-1001"),
        "the victim keeps her account"
    );
    let erased: i64 = app
        .scalar(
            "SELECT COUNT(*) FROM customers WHERE erased_at IS NOT NULL AND external_id = $1",
            "C-1001",
        )
        .await;
    assert_eq!(erased, 0);
    app.stop().await;
}

/// Red team: the lost-mailbox form must not tell whether an address has an
/// account, nor whether a postcode and house number are right.
#[tokio::test(flavor = "multi_thread")]
async fn lost_mailbox_form_answers_the_same_for_every_combination() {
    let app = TestApp::spawn().await;
    let mut shapes = Vec::new();
    for (email, pc, hn) in [
        ("bram@example.nl", "3511 LX", "4a"),   // account, right details
        ("bram@example.nl", "3511 LX", "5"),    // account, wrong house number
        ("carla@example.nl", "0000 AA", "1"),   // account, all wrong
        ("nobody@example.nl", "3511 LX", "4a"), // no account at all
    ] {
        let res = app
            .post_json(
                "/api/v1/change-email/fallback",
                json!({"email": email, "code": "123456", "postcode": pc, "house_number": hn,
                    "new_email": "new.me@example.org", "locale": "en"}),
            )
            .await;
        let status = res.status().as_u16();
        let mut body: Value = res.json().await.unwrap();
        body.as_object_mut().unwrap().remove("id");
        shapes.push((status, body));
    }
    assert!(shapes.iter().all(|s| s == &shapes[0]), "{shapes:?}");
    assert_eq!(shapes[0].0, 202);
    app.stop().await;
}

/// Red team: one authenticator code sent in parallel proves once. (Five
/// calls: the per-address limit of attempts an hour; more would be refused
/// before the code is even looked at.)
#[tokio::test(flavor = "multi_thread")]
async fn an_authenticator_code_proves_once_even_in_parallel() {
    let app = TestApp::spawn().await;
    let account: String =
        sqlx::query_scalar("SELECT id FROM customers WHERE external_id = 'C-2001'")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    // Enrolled directly: this test is about using the code, not setting it up.
    let secret = totp_rs::Secret::generate().to_base32();
    let mut tx = app.state().db.begin().await.unwrap();
    privacy_portal::store::authenticators::replace(
        &mut tx,
        &account,
        &app.state().keys.seal(&secret),
        0,
        &[],
        0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
        .with_account_name("test".to_string())
        .build()
        .unwrap()
        .generate(at)
        .to_string();
    let calls = (0..5).map(|i| {
        app.post_json(
            "/api/v1/change-email/fallback",
            json!({"email": "sven@example.se", "code": code, "postcode": "11351", "house_number": "14",
                "new_email": format!("sven.{i}@example.se"), "locale": "sv"}),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 202),
        "{statuses:?}"
    );
    app.stop().await;
}

// ---------- issue 13: staff sessions, tokens and hardening ----------

/// The `portal_session` cookie a response sets, as a `Cookie` header value.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("portal_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

fn no_cookies() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET with a fixed cookie (no cookie store): (status, location, body).
async fn get_with(app: &TestApp, cookie: &str, path: &str) -> (u16, String, String) {
    let res = no_cookies()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, res.text().await.unwrap())
}

async fn post_with(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let res = no_cookies()
        .post(app.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (res.status().as_u16(), location)
}

/// Logs `user` in without a cookie store; returns the session cookie.
async fn staff_cookie(app: &TestApp, user: &staff_common::StaffUser, step: i64) -> String {
    let c = no_cookies();
    let res = c.get(app.url("/staff/login")).send().await.unwrap();
    let anon = session_cookie(&res).expect("the login page starts a session");
    let body = res.text().await.unwrap();
    let csrf = staff_common::extract(r#"name="csrf" value="([^"]+)""#, &body).unwrap();
    let res = c
        .post(app.url("/staff/login"))
        .header("cookie", &anon)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", user.email.as_str()),
            ("password", staff_common::PASSWORD),
            ("code", &staff_common::totp_code(&user.secret, step)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "login succeeds");
    session_cookie(&res).expect("login sets the session cookie")
}

fn csrf_of(body: &str) -> String {
    staff_common::extract(r#"name="csrf" value="([^"]+)""#, body).expect("a form")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staff_cookie_copied_before_logout_is_refused_after_it() {
    let app = TestApp::spawn().await;
    let admin = staff_common::enrol(&app, "admin@kaasboer.example", "admin").await;
    let cookie = staff_cookie(&app, &admin, 0).await;
    let (status, _, body) = get_with(&app, &cookie, "/staff/members").await;
    assert_eq!(status, 200, "{body}");
    let csrf = csrf_of(&body);

    // The attacker keeps a copy; the admin logs out.
    let (status, location) = post_with(&app, &cookie, "/staff/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (303, "/staff/login"));

    for path in [
        "/staff/",
        "/staff/members",
        "/staff/register",
        "/staff/intake",
    ] {
        let (status, location, _) = get_with(&app, &cookie, path).await;
        assert_eq!((status, location.as_str()), (303, "/staff/login"), "{path}");
    }
    let (status, location) = post_with(
        &app,
        &cookie,
        "/staff/members",
        &[
            ("csrf", &csrf),
            ("email", "mallory@kaasboer.example"),
            ("role", "admin"),
        ],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/staff/login"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM staff WHERE email = $1",
            "mallory@kaasboer.example"
        )
        .await,
        0,
        "no member was created with the replayed cookie"
    );
    // Logging in again gives a new, working session.
    let fresh = staff_cookie(&app, &admin, 1).await;
    assert_eq!(get_with(&app, &fresh, "/staff/members").await.0, 200);
    assert_eq!(get_with(&app, &cookie, "/staff/members").await.0, 303);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_a_member_ends_their_open_session() {
    let app = TestApp::spawn().await;
    let admin = staff_common::enrol(&app, "admin@kaasboer.example", "admin").await;
    let agent = staff_common::enrol(&app, "agent@kaasboer.example", "agent").await;
    let admin_cookie = staff_cookie(&app, &admin, 0).await;
    let agent_cookie = staff_cookie(&app, &agent, 0).await;
    assert_eq!(get_with(&app, &agent_cookie, "/staff/").await.0, 200);
    let agent_id = staff_id(&app, &agent.email).await;
    let (_, _, body) = get_with(&app, &admin_cookie, "/staff/members").await;
    let (status, _) = post_with(
        &app,
        &admin_cookie,
        &format!("/staff/members/{agent_id}/disable"),
        &[("csrf", &csrf_of(&body)), ("confirm", "1")],
    )
    .await;
    assert_eq!(status, 303);
    let (status, location, _) = get_with(&app, &agent_cookie, "/staff/").await;
    assert_eq!((status, location.as_str()), (303, "/staff/login"));
    app.stop().await;
}

async fn staff_id(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM staff WHERE email = $1")
        .bind(email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_login_link_revokes_the_members_api_tokens() {
    let app = TestApp::spawn().await;
    let admin = staff_common::enrol(&app, "admin@kaasboer.example", "admin").await;
    let agent = staff_common::enrol(&app, "agent@kaasboer.example", "agent").await;
    let token = privacy_portal::cli::staff_token(app.state(), &agent.email)
        .await
        .unwrap();
    let cases = || {
        app.client
            .get(app.url("/api/v1/staff/cases"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(cases().await.unwrap().status(), 200, "the token works");

    let admin_cookie = staff_cookie(&app, &admin, 0).await;
    let (_, _, body) = get_with(&app, &admin_cookie, "/staff/members").await;
    let agent_id = staff_id(&app, &agent.email).await;
    let (status, _) = post_with(
        &app,
        &admin_cookie,
        &format!("/staff/members/{agent_id}/reset"),
        &[("csrf", &csrf_of(&body))],
    )
    .await;
    assert_eq!(status, 200, "the page shows the new link");
    assert_eq!(cases().await.unwrap().status(), 401, "revoked by the reset");
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM staff_tokens WHERE staff_id = $1 AND revoked_at IS NULL",
            &agent_id
        )
        .await,
        0
    );
    app.stop().await;
}

// ---------- the binary: secret key and files ----------

/// The binary with no PORTAL_* variable from the caller's environment.
fn portal_bin(cwd: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_privacy-portal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTAL_") {
            c.env_remove(k);
        }
    }
    c.current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// Runs to the end, or kills it and fails after `secs` (a server that
/// should have refused to start).
fn finish_within(mut cmd: std::process::Command, secs: u64) -> std::process::Output {
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn admin_commands_without_a_secret_key_refuse_and_make_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 6] = [
        &["staff", "add", "admin@kaasboer.example", "--role", "admin"],
        &["staff", "token", "admin@kaasboer.example"],
        &["migrate"],
        &["purge"],
        &["audit", "verify"],
        &["accounts", "import", "-"],
    ];
    for args in commands {
        let mut cmd = portal_bin(dir.path());
        cmd.args(args);
        let out = finish_within(cmd, 60);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains("PORTAL_SECRET_KEY"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed no link or token");
    }
    assert!(
        !dir.path().join("data").exists(),
        "no ./data, no secret.key, no database was made"
    );
}

#[test]
fn serve_refuses_a_secret_key_with_too_little_entropy() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["ab".repeat(32), "0001020304050607".repeat(4)] {
        let mut cmd = portal_bin(dir.path());
        cmd.arg("serve")
            .env("PORTAL_SECRET_KEY", key)
            .env("PORTAL_SMTP_URL", "smtp://127.0.0.1:2525")
            .env("PORTAL_BIND", "127.0.0.1:0")
            .env(
                "PORTAL_DATABASE_URL",
                format!("sqlite://{}/p.db", dir.path().display()),
            );
        let out = finish_within(cmd, 60);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("PORTAL_SECRET_KEY") && err.contains("entropy"),
            "{err}"
        );
    }
}

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[test]
fn the_database_and_the_demo_key_are_created_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let mut cmd = portal_bin(dir.path());
    cmd.arg("migrate")
        .env(
            "PORTAL_SECRET_KEY",
            privacy_portal::config::generate_secret_hex(),
        )
        .env("PORTAL_DATABASE_URL", format!("sqlite://{}", db.display()));
    let out = finish_within(cmd, 120);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode_of(&db), 0o600, "database file");

    // `demo` on a fresh directory makes ./data/secret.key and ./data/portal.db.
    let demo_dir = tempfile::tempdir().unwrap();
    let mut cmd = portal_bin(demo_dir.path());
    cmd.args(["demo", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let data = demo_dir.path().join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(data.join("secret.key").exists() && data.join("portal.db").exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "demo made no key and database"
        );
        assert!(child.try_wait().unwrap().is_none(), "demo exited early");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(mode_of(&data.join("secret.key")), 0o600, "secret key file");
    assert_eq!(
        mode_of(&data.join("portal.db")),
        0o600,
        "demo database file"
    );
}

// ---------- /metrics and /dev/mail ----------

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_their_token_or_their_own_address() {
    let metrics = |c: &reqwest::Client, url: String, token: Option<&str>| {
        let mut r = c.get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let res = r.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    // Neither configured: the public listener has no /metrics.
    let app = TestApp::spawn().await;
    assert_eq!(metrics(&app.client, app.url("/metrics"), None).await.0, 404);
    app.stop().await;

    let token = "a-long-random-scraper-token-0123456789";
    let app = TestApp::spawn_with(|s| s.metrics_token = Some(token.to_string().into())).await;
    let url = app.url("/metrics");
    assert_eq!(metrics(&app.client, url.clone(), None).await.0, 401);
    let wrong = "a-long-random-scraper-token-0123456780";
    assert_eq!(metrics(&app.client, url.clone(), Some(wrong)).await.0, 401);
    let (status, body) = metrics(&app.client, url, Some(token)).await;
    assert_eq!(status, 200);
    assert!(body.contains("portal_outbox_backlog"), "{body}");
    app.stop().await;

    let app = TestApp::spawn_with(|s| s.metrics_bind = Some("127.0.0.1:0".into())).await;
    assert_eq!(metrics(&app.client, app.url("/metrics"), None).await.0, 404);
    let port = app
        .server
        .as_ref()
        .unwrap()
        .metrics_port
        .expect("own listener");
    let own = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let (status, body) = metrics(&app.client, own("/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("portal_outbox_backlog"), "{body}");
    assert_eq!(
        metrics(&app.client, own("/en/"), None).await.0,
        404,
        "nothing but /metrics there"
    );
    app.stop().await;
}

/// An address of this machine that is not loopback (the one its default
/// route leaves from); UDP `connect` sends nothing.
fn non_loopback_address() -> std::net::IpAddr {
    ["192.0.2.1:9", "10.255.255.1:9", "8.8.8.8:53"]
        .iter()
        .filter_map(|target| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            s.connect(target).ok()?;
            Some(s.local_addr().ok()?.ip())
        })
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .expect("this test needs a network interface besides loopback")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dev_mailbox_answers_only_clients_on_this_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let db = common::fresh_database(&tmp).await;
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = common::test_settings(db, port, 1);
    settings.mode = privacy_portal::config::Mode::Demo;
    settings.smtp_url = None;
    let state = privacy_portal::build_state(settings).await.unwrap();
    let server = privacy_portal::Server::start(state, listener)
        .await
        .unwrap();
    let c = no_cookies();
    let get = |host: String, path: &'static str, forwarded: bool| {
        let mut r = c.get(format!("http://{host}:{port}{path}"));
        if forwarded {
            r = r.header("x-forwarded-for", "203.0.113.7");
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let local = "127.0.0.1".to_string();
    assert_eq!(get(local.clone(), "/dev/mail", false).await, 200);
    let lan = match non_loopback_address() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    assert_eq!(get(lan.clone(), "/dev/mail", false).await, 403);
    assert_eq!(get(lan.clone(), "/dev/mail/1", false).await, 403);
    // Through a reverse proxy on this machine: someone else's request.
    assert_eq!(get(local.clone(), "/dev/mail", true).await, 403);
    // The rest of the demo answers everyone.
    assert_eq!(get(lan, "/en/", false).await, 200);
    server.stop().await;
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

/// Several instances on one PostgreSQL database (issue 19): the per-address
/// limits are one count-and-insert per address, so two instances together
/// enforce exactly the limit. (Multi-instance runs on PostgreSQL only.)
#[tokio::test(flavor = "multi_thread")]
async fn per_address_limits_hold_across_two_instances() {
    if common::postgres_url().is_none() {
        return;
    }
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let apps = [&a, &b];

    // 20 code requests at once for one address, spread over both: 5 codes.
    let calls = (0..20).map(|i| {
        apps[i % 2].post_json(
            "/api/v1/requests",
            json!({"kind": "question", "email": "bram@example.nl", "locale": "nl"}),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        15,
        "{statuses:?}"
    );
    let hash = a.state().keys.lookup_hash("bram@example.nl");
    assert_eq!(
        a.scalar(
            "SELECT COUNT(*) FROM verification_codes WHERE email_hash = $1",
            &hash
        )
        .await,
        5
    );

    // 30 wrong codes at once over those five requests and both instances:
    // exactly 10 are checked, the rest refused before looking.
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM requests WHERE email_hash = $1 ORDER BY id")
            .bind(&hash)
            .fetch_all(a.state().db.read())
            .await
            .unwrap();
    let mails = a.mail.wait_for("bram@example.nl", 5).await;
    let codes: Vec<String> = mails.iter().map(code_in).collect();
    // Certainly wrong for every code that went out.
    let mut guess = 0u32;
    while codes.contains(&format!("{guess:06}")) {
        guess += 1;
    }
    let wrong = format!("{guess:06}");
    let paths: Vec<String> = (0..30)
        .map(|i| format!("/api/v1/requests/{}/verify", ids[i % ids.len()]))
        .collect();
    let calls = paths
        .iter()
        .enumerate()
        .map(|(i, path)| apps[i % 2].post_json(path, json!({"code": wrong})));
    futures_util::future::join_all(calls).await;
    assert_eq!(
        a.scalar(
            "SELECT COUNT(*) FROM verification_failures WHERE email_hash = $1",
            &hash
        )
        .await,
        10
    );
    b.stop().await;
    a.stop().await;
}
