//! The question flow and the identity check through the JSON API.

mod common;

use common::{code_in, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn question_via_api_lands_in_the_staff_queue_with_its_due_date() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let id = app.create("question", email, "nl").await;

    let mail = app.mail.wait_for(email, 1).await.remove(0);
    let code = code_in(&mail);
    // In the request's language (Dutch), with the code itself.
    assert_eq!(mail.subject, format!("Je code: {code}"));
    assert!(mail.html.contains(&code), "code in the HTML part too");

    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "verified");
    let token = body["token"].as_str().unwrap().to_string();

    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(&token)
        .json(&json!({"message": "Welke gegevens delen jullie met bezorgers?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["status"], "escalated");
    assert_eq!(view["reasons"], json!(["question"]));
    let due_date = view["due_date"].as_str().unwrap().to_string();

    // GET with the token shows the same state.
    let res = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["status"], "escalated");
    assert_eq!(got["kind"], "question");
    assert!(got["received_at"].as_str().unwrap().ends_with('Z'));

    // Confirmation mail in Dutch with the due date written out.
    let mails = app.mail.wait_for(email, 2).await;
    let confirmation = &mails[1];
    let d = chrono::NaiveDate::parse_from_str(&due_date, "%Y-%m-%d").unwrap();
    let long = privacy_portal::i18n::long_date(privacy_portal::domain::Locale::Nl, d);
    assert!(
        confirmation.text.contains(&long),
        "due date {long} in: {}",
        confirmation.text
    );
    assert!(confirmation
        .text
        .contains("Welke gegevens delen jullie met bezorgers?"));

    // The staff queue shows the case with its facts.
    let staff = app.staff_token().await;
    let res = app
        .client
        .get(app.url("/api/v1/staff/cases"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let case = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .expect("case in queue");
    assert_eq!(case["due_date"], due_date.as_str());
    assert!(case["days_left"].as_i64().unwrap() >= 28);
    let res = app
        .client
        .get(app.url(&format!("/api/v1/staff/cases/{id}")))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    let detail: Value = res.json().await.unwrap();
    assert_eq!(
        detail["facts"]["message"],
        "Welke gegevens delen jullie met bezorgers?"
    );
    let actions: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["request_created", "verified", "question_submitted"]
    );

    // Nothing personal reached the log.
    let logs = common::logs();
    assert!(!logs.contains(email), "email address in logs");
    // As a number of its own, not as digits inside some other number.
    let code_alone = regex::Regex::new(&format!(r"(^|[^0-9]){code}([^0-9]|$)")).unwrap();
    assert!(!code_alone.is_match(&logs), "code in logs");
    assert!(!logs.contains(&token), "token in logs");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_api_needs_a_valid_token_and_sorts_by_due_date() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/api/v1/staff/cases"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app
        .client
        .get(app.url("/api/v1/staff/cases"))
        .bearer_auth("pps_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    for who in ["bram@example.nl", "carla@example.nl", "sven@example.se"] {
        let (id, token) = app.verified("question", who, "en").await;
        let res = app
            .client
            .post(app.url(&format!("/api/v1/requests/{id}/submit")))
            .bearer_auth(&token)
            .json(&json!({"message": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // Make one case older so that it is due first.
    sqlx::query("UPDATE requests SET due_at = due_at - 864000 WHERE email = $1")
        .bind("sven@example.se")
        .execute(app.state().db.write())
        .await
        .unwrap();
    let staff = app.staff_token().await;
    let res = app
        .client
        .get(app.url("/api/v1/staff/cases?limit=2"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    let page1: Value = res.json().await.unwrap();
    assert_eq!(page1["cases"].as_array().unwrap().len(), 2);
    let first_id = page1["cases"][0]["id"].as_str().unwrap();
    let first: String = sqlx::query_scalar("SELECT email FROM requests WHERE id = $1")
        .bind(first_id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(first, "sven@example.se");
    let next = page1["next"].as_str().unwrap();
    let res = app
        .client
        .get(app.url(&format!("/api/v1/staff/cases?limit=2&after={next}")))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    let page2: Value = res.json().await.unwrap();
    assert_eq!(page2["cases"].as_array().unwrap().len(), 1);
    assert!(page2["next"].is_null());
    let res = app
        .client
        .get(app.url("/api/v1/staff/cases?kind=export"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    let none: Value = res.json().await.unwrap();
    assert!(none["cases"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_never_moves_backwards_and_repeats_change_nothing() {
    let app = TestApp::spawn().await;
    let email = "emma@example.com";
    let id = app.create("question", email, "en").await;
    let code = code_in(&app.mail.wait_for(email, 1).await[0]);

    // No token yet: submit is refused.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .json(&json!({"message": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Verifying again is not a way back to awaiting_verification.
    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 409);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "wrong_state");
    // A resend after verification is refused too.
    let res = app
        .post_json(&format!("/api/v1/requests/{id}/resend"), json!({}))
        .await;
    assert_eq!(res.status(), 409);

    let submit = || async {
        app.client
            .post(app.url(&format!("/api/v1/requests/{id}/submit")))
            .bearer_auth(&token)
            .json(&json!({"message": "Why do you keep my IP address?"}))
            .send()
            .await
            .unwrap()
    };
    let first: Value = submit().await.json().await.unwrap();
    let second: Value = submit().await.json().await.unwrap();
    assert_eq!(first["status"], "escalated");
    assert_eq!(
        second, first,
        "a repeated submit answers with the current state"
    );
    app.mail.wait_for(email, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(app.mail.to(email).len(), 2, "one confirmation only");
    let events = app.scalar("SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = 'question_submitted'", &id).await;
    assert_eq!(events, 1);

    // Empty message: clear error, nothing changed.
    let (id2, token2) = app.verified("question", "bram@example.nl", "sv").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id2}/submit")))
        .bearer_auth(&token2)
        .json(&json!({"message": "   "}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_input");
    assert_eq!(problem["field"], "message");
    assert_eq!(
        problem["detail"],
        privacy_portal::i18n::t(privacy_portal::domain::Locale::Sv, "errors.message_empty")
    );
    let status: String = sqlx::query_scalar("SELECT status FROM requests WHERE id = $1")
        .bind(&id2)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(status, "verified");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/api/v1/requests",
            json!({"kind": "shout", "email": "anna@example.nl", "locale": "en"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "kind");
    let res = app
        .post_json(
            "/api/v1/requests",
            json!({"kind": "question", "email": "anna@example.nl", "locale": "de"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "locale");
    let res = app
        .post_json(
            "/api/v1/requests",
            json!({"kind": "question", "email": "not-an-address", "locale": "en"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "email");
    let res = app
        .client
        .post(app.url("/api/v1/requests"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests")
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(n, 0, "bad input changes nothing");
    app.stop().await;
}
