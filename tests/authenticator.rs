//! Customer authenticator: set-up after a code check, and the lost-mailbox
//! fallback of the email change (authenticator + postcode + house number).

mod common;

use common::{code_in, location, page, TestApp};
use serde_json::{json, Value};

fn totp_at(secret: &str, at: u64) -> String {
    let t = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .with_account_name("test".to_string())
        .build()
        .unwrap();
    t.generate(at).to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Verifies a question for `email` in a browser session and enrols an
/// authenticator; returns (secret, recovery codes).
async fn enrol(app: &TestApp, email: &str) -> (String, Vec<String>) {
    // Counted before the request starts: under load the code mail can
    // arrive before the code page has loaded.
    let before = app.mail.to(email).len();
    let client = common::client();
    let (_, _, csrf) = page(&client, &app.url("/en/question")).await;
    let res = client
        .post(app.url("/en/question"))
        .form(&[("csrf", csrf.unwrap()), ("email", email.into())])
        .send()
        .await
        .unwrap();
    let code_url = location(&res);
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let code = code_in(app.mail.wait_for(email, before + 1).await.last().unwrap());
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    let request_url = location(&res);
    let (_, _, csrf) = page(&client, &app.url(&request_url)).await;
    let res = client
        .post(app.url(&format!("{request_url}/submit")))
        .form(&[("csrf", csrf.unwrap()), ("message", "hi".into())])
        .send()
        .await
        .unwrap();
    let (_, body, _) = page(&client, &app.url(&location(&res))).await;
    assert!(
        body.contains("id=\"offer-authenticator\""),
        "offered after the code check"
    );

    let (status, body, csrf) =
        page(&client, &app.url(&format!("{request_url}/authenticator"))).await;
    assert_eq!(status, 200);
    assert!(body.contains("data:image/svg+xml;base64,"), "a QR code");
    assert!(
        regex::Regex::new(r#"<a href="otpauth:[^"]+"[^>]*id="open-authenticator""#)
            .unwrap()
            .is_match(&body),
        "a link that opens the app on this phone"
    );
    // Shown in groups of four; the apps ignore the spaces.
    let grouped = regex::Regex::new(r#"id="totp-secret" class="secret">([A-Z2-7 ]+)<"#)
        .unwrap()
        .captures(&body)
        .expect("the key in text")[1]
        .to_string();
    assert!(
        grouped.split(' ').all(|g| !g.is_empty() && g.len() <= 4) && grouped.contains(' '),
        "{grouped}"
    );
    let secret = grouped.replace(' ', "");
    let res = client
        .post(app.url(&format!("{request_url}/authenticator")))
        .form(&[("csrf", csrf.clone().unwrap()), ("code", "000000".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "a wrong first code is refused");
    let res = client
        .post(app.url(&format!("{request_url}/authenticator")))
        .form(&[("csrf", csrf.unwrap()), ("code", totp_at(&secret, now()))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let codes: Vec<String> = regex::Regex::new(r"<li><code>([0-9a-f-]+)</code></li>")
        .unwrap()
        .captures_iter(&body)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once");
    let notice = app.mail.wait_for(email, before + 3).await;
    assert!(
        notice.iter().any(|m| m.subject.contains("authenticator")),
        "the account's address is told"
    );
    (secret, codes)
}

async fn fallback(app: &TestApp, body: Value) -> (u16, Value) {
    let res = app.post_json("/api/v1/change-email/fallback", body).await;
    let s = res.status().as_u16();
    (s, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_mailbox_is_bridged_by_the_authenticator_once_per_time_step() {
    let app = TestApp::spawn().await;
    let (secret, codes) = enrol(&app, "anna@example.nl").await;
    // A stored secret is sealed, recovery codes hashed.
    let stored: String = sqlx::query_scalar("SELECT secret FROM customer_authenticators")
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert!(!stored.contains(&secret));

    let next_step = totp_at(&secret, now() + 30);
    let body = json!({"email": "anna@example.nl", "code": next_step, "postcode": "1012ab", "house_number": "12",
        "new_email": "anna.new@example.org", "locale": "en"});
    let (status, ok) = fallback(&app, body.clone()).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["status"], "awaiting_new_email");
    // The same code again (the same time step) proves nothing: it becomes a
    // case for support, like any other unproven attempt, with no token.
    let (status, again) = fallback(&app, body).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["status"], "awaiting_verification");
    assert!(again.get("token").is_none());

    // The new address is still proven with its own code.
    let id = ok["id"].as_str().unwrap();
    let token = ok["token"].as_str().unwrap();
    let code = code_in(&app.mail.wait_for("anna.new@example.org", 1).await[0]);
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/verify-new-email")))
        .bearer_auth(token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "completed");
    let owner: String = sqlx::query_scalar(
        "SELECT external_id FROM customers WHERE email = 'anna.new@example.org'",
    )
    .fetch_one(app.state().db.read())
    .await
    .unwrap();
    assert_eq!(owner, "C-1001");
    let method: String = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE request_id = $1 AND action = 'verified'",
    )
    .bind(id)
    .fetch_one(app.state().db.read())
    .await
    .unwrap();
    assert!(method.contains("totp"));

    // A recovery code works once.
    let body = json!({"email": "anna.new@example.org", "code": codes[0], "postcode": "1012 AB", "house_number": "12",
        "new_email": "anna.third@example.org", "locale": "en"});
    assert_eq!(fallback(&app, body.clone()).await.0, 200);
    let body2 = json!({"email": "anna.new@example.org", "code": codes[0], "postcode": "1012 AB", "house_number": "12",
        "new_email": "anna.fourth@example.org", "locale": "en"});
    assert_eq!(
        fallback(&app, body2).await.0,
        202,
        "a recovery code is single-use: the second use only reaches support"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attempt_counts_towards_the_limit() {
    let app = TestApp::spawn().await;
    let (secret, _) = enrol(&app, "sven@example.se").await;
    let good = totp_at(&secret, now() + 30);
    for (code, pc, hn) in [
        ("000000", "113 51", "14"),
        (good.as_str(), "113 52", "14"),
        (good.as_str(), "113 51", "15"),
        ("", "113 51", "14"),
        ("000000", "1", "1"),
    ] {
        let (status, body) = fallback(
            &app,
            json!({"email": "sven@example.se", "code": code, "postcode": pc, "house_number": hn,
            "new_email": "sven2@example.se", "locale": "sv"}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    // Five attempts for an address an hour; then even the right details wait.
    let (status, body) = fallback(
        &app,
        json!({"email": "sven@example.se", "code": good, "postcode": "113 51", "house_number": "14",
        "new_email": "sven2@example.se", "locale": "sv"}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_attempts");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_authenticator_support_changes_the_address_after_the_new_code() {
    let app = TestApp::spawn().await;
    let (status, body) = fallback(
        &app,
        json!({"email": "bram@example.nl", "code": "", "postcode": "3511 LX", "house_number": "4a",
        "new_email": "bram.new@example.nl", "locale": "nl"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["kind"], "change_email");
    let id = body["id"].as_str().unwrap().to_string();
    // The old address hears that someone tried, in case it was not Bram.
    let notice = app.mail.wait_for("bram@example.nl", 1).await.remove(0);
    assert_eq!(
        notice.subject,
        privacy_portal::i18n::t(
            privacy_portal::domain::Locale::Nl,
            "email.lost_mailbox_tried.subject"
        )
    );
    // The new address proves itself with its code; then the case is with staff.
    let code = code_in(&app.mail.wait_for("bram.new@example.nl", 1).await[0]);
    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let staff = app.staff_token().await;
    let case: Value = app
        .client
        .get(app.url(&format!("/api/v1/staff/cases/{id}")))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(case["case"]["status"], "escalated", "{case}");
    assert_eq!(case["case"]["reasons"], json!(["lost_mailbox"]));
    // The knowledge check's result is recorded, never the stated values.
    let proof = &case["facts"]["proofs"]["lost_mailbox"];
    assert_eq!(proof["knowledge"], "matched", "{case}");
    assert_eq!(proof["authenticator"], "none");
    assert!(
        !case.to_string().contains("3511"),
        "no postcode on the case"
    );
    // Staff change the address through the connector.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .bearer_auth(&staff)
        .json(&json!({"action": "execute"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let owner: String =
        sqlx::query_scalar("SELECT external_id FROM customers WHERE email = 'bram.new@example.nl'")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(owner, "C-1002");
    // Confirmation to the new address, notice to the old one.
    app.mail.wait_for("bram.new@example.nl", 2).await;
    app.mail.wait_for("bram@example.nl", 2).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_whose_details_did_not_match_needs_a_reason_to_change() {
    let app = TestApp::spawn().await;
    let (_, body) = fallback(
        &app,
        json!({"email": "bram@example.nl", "code": "", "postcode": "9999 ZZ", "house_number": "4a",
        "new_email": "bram.new@example.nl", "locale": "nl"}),
    )
    .await;
    let id = body["id"].as_str().unwrap().to_string();
    let code = code_in(&app.mail.wait_for("bram.new@example.nl", 1).await[0]);
    app.post_json(
        &format!("/api/v1/requests/{id}/verify"),
        json!({"code": code}),
    )
    .await;
    let staff = app.staff_token().await;
    let act = |body: Value| {
        let (app, staff, id) = (&app, staff.clone(), id.clone());
        async move {
            app.client
                .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
                .bearer_auth(staff)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(act(json!({"action": "execute"})).await, 422);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM customers WHERE email = $1",
            "bram.new@example.nl"
        )
        .await,
        0
    );
    assert_eq!(
        act(json!({"action": "execute", "override_reason": "Called the customer back on the number in the order"}))
            .await,
        200
    );
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM customers WHERE email = $1",
            "bram.new@example.nl"
        )
        .await,
        1
    );
    app.stop().await;
}
