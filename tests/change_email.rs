//! Email change: both addresses proven, collisions resolved by staff (A/B).

mod common;

use common::{code_in, location, page, TestApp};
use serde_json::{json, Value};

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn owner_of(app: &TestApp, email: &str) -> Option<String> {
    sqlx::query_scalar("SELECT external_id FROM customers WHERE email = $1")
        .bind(email)
        .fetch_optional(app.state().db.read())
        .await
        .unwrap()
}

/// Starts a change for `old`, gives `new` and returns (id, token, code sent to `new`).
async fn to_new_address(
    app: &TestApp,
    old: &str,
    new: &str,
    locale: &str,
) -> (String, String, String) {
    let (id, token) = app.verified("change_email", old, locale).await;
    let before = app.mail.to(new).len();
    let (status, body) = post(
        app,
        &format!("/api/v1/requests/{id}/submit"),
        &token,
        json!({"new_email": new}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "awaiting_new_email");
    let mails = app.mail.wait_for(new, before + 1).await;
    (id, token, code_in(mails.last().unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_free_address_is_changed_and_both_addresses_hear_of_it() {
    let app = TestApp::spawn().await;
    let (old, new) = ("emma@example.com", "Emma.Clarke@Example.org");
    let (id, token) = app.verified("change_email", old, "en").await;
    // Same address, or no address at all: clear errors, nothing changes.
    let (status, body) = post(
        &app,
        &format!("/api/v1/requests/{id}/submit"),
        &token,
        json!({"new_email": "EMMA@example.com"}),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("new_email")));
    let (status, _) = post(
        &app,
        &format!("/api/v1/requests/{id}/submit"),
        &token,
        json!({"new_email": "emma(at)x"}),
    )
    .await;
    assert_eq!(status, 422);

    let (status, _) = post(
        &app,
        &format!("/api/v1/requests/{id}/submit"),
        &token,
        json!({"new_email": new}),
    )
    .await;
    assert_eq!(status, 200);
    let new = "emma.clarke@example.org";
    let code = code_in(&app.mail.wait_for(new, 1).await[0]);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 3) % 1_000_000);
    let (status, body) = post(
        &app,
        &format!("/api/v1/requests/{id}/verify-new-email"),
        &token,
        json!({"code": wrong}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["attempts_left"], 4);
    let (status, body) = post(
        &app,
        &format!("/api/v1/requests/{id}/verify-new-email"),
        &token,
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");

    // The data is now found under the new address, not the old.
    assert_eq!(owner_of(&app, new).await.as_deref(), Some("C-3001"));
    assert_eq!(owner_of(&app, old).await, None);
    let notice = app.mail.wait_for(old, 2).await.remove(1);
    assert!(
        notice.text.contains("e•••@example.org"),
        "masked new address: {}",
        notice.text
    );
    assert!(notice.text.contains("privacy@kaasboer.example"));
    let confirmation = app.mail.wait_for(new, 2).await.remove(1);
    assert!(
        confirmation.subject.contains("log in"),
        "{}",
        confirmation.subject
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn collision_option_a_deletes_the_old_account() {
    let app = TestApp::spawn().await;
    let (id, token, code) =
        to_new_address(&app, "eva.old@example.nl", "eva@example.nl", "nl").await;
    let (status, body) = post(
        &app,
        &format!("/api/v1/requests/{id}/verify-new-email"),
        &token,
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "escalated");
    assert_eq!(body["reasons"], json!(["email_in_use"]));
    assert_eq!(body["options"].as_array().unwrap().len(), 2);
    let (status, body) = post(
        &app,
        &format!("/api/v1/requests/{id}/collision-choice"),
        &token,
        json!({"option": "A", "postcode": "6811aa", "house_number": "3"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "escalated");
    assert_eq!(body["choice"], "A");
    // The customer hears that the choice arrived, and which one it was.
    let choice_mail = app.mail.wait_for("eva.old@example.nl", 2).await.remove(1);
    assert!(
        choice_mail.text.contains(&privacy_portal::i18n::t(
            privacy_portal::domain::Locale::Nl,
            "change_email.collision.a_title"
        )),
        "{}",
        choice_mail.text
    );

    // Staff carry it out from the queue (staff API action).
    let staff = app.staff_token().await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .bearer_auth(&staff)
        .json(&json!({"action": "execute"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let status: String = sqlx::query_scalar("SELECT status FROM requests WHERE id = $1")
        .bind(&id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(status, "completed");
    // The old account (C-1005) is erased; the new address keeps its own account (C-1006).
    assert_eq!(
        owner_of(&app, "eva@example.nl").await.as_deref(),
        Some("C-1006")
    );
    assert_eq!(owner_of(&app, "eva.old@example.nl").await, None);
    let erased: Option<i64> =
        sqlx::query_scalar("SELECT erased_at FROM customers WHERE external_id = 'C-1005'")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert!(erased.is_some());
    let mails = app.mail.wait_for("eva@example.nl", 2).await;
    assert!(mails[1].text.contains(&privacy_portal::i18n::t(
        privacy_portal::domain::Locale::Nl,
        "email.email_changed_new.option_a"
    )));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn collision_option_b_moves_the_address_and_blockers_are_shown_to_staff() {
    let app = TestApp::spawn().await;
    // The new address's account has an open order: deleting it is blocked.
    sqlx::query("UPDATE customer_orders SET status = 'open' WHERE id = 'O-6001'")
        .execute(app.state().db.write())
        .await
        .unwrap();
    let (id, token, code) =
        to_new_address(&app, "eva.old@example.nl", "eva@example.nl", "en").await;
    post(
        &app,
        &format!("/api/v1/requests/{id}/verify-new-email"),
        &token,
        json!({"code": code}),
    )
    .await;
    let (status, _) = post(
        &app,
        &format!("/api/v1/requests/{id}/collision-choice"),
        &token,
        json!({"option": "C"}),
    )
    .await;
    assert_eq!(status, 422);
    let (_, body) = post(
        &app,
        &format!("/api/v1/requests/{id}/collision-choice"),
        &token,
        json!({"option": "B", "postcode": "6811 AA", "house_number": "3"}),
    )
    .await;
    assert_eq!(body["choice"], "B");

    let err =
        privacy_portal::workflow::change_email::staff_execute(app.state(), &id, "staff:test", None)
            .await
            .unwrap_err();
    assert_eq!(err.code(), ("still_blocked", 409));
    // Staff see the blocker in the case facts.
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
    assert_eq!(
        case["facts"]["blockers"][0]["reason"], "open_order",
        "{case}"
    );
    // Both accounts were proven: each address by its code, the account that
    // option B deletes by its own postcode and house number.
    let proofs = &case["facts"]["proofs"];
    assert_eq!(
        proofs["old"]["account"], case["facts"]["old_account"],
        "{case}"
    );
    assert_eq!(proofs["old"]["method"], "email_code");
    assert_eq!(proofs["new"]["account"], case["facts"]["new_account"]);
    assert_ne!(proofs["old"]["account"], proofs["new"]["account"]);
    assert_eq!(proofs["knowledge"]["account"], case["facts"]["new_account"]);
    assert_eq!(proofs["knowledge"]["result"], "matched");

    sqlx::query("UPDATE customer_orders SET status = 'delivered' WHERE id = 'O-6001'")
        .execute(app.state().db.write())
        .await
        .unwrap();
    let row =
        privacy_portal::workflow::change_email::staff_execute(app.state(), &id, "staff:test", None)
            .await
            .unwrap();
    assert_eq!(row.status, "completed");
    // B: the original account (C-1005) now has the new address; C-1006 is erased.
    assert_eq!(
        owner_of(&app, "eva@example.nl").await.as_deref(),
        Some("C-1005")
    );
    assert_eq!(owner_of(&app, "eva.old@example.nl").await, None);
    let orders: Vec<String> = sqlx::query_scalar(
        "SELECT o.id FROM customer_orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = 'eva@example.nl'",
    )
    .fetch_all(app.state().db.read())
    .await
    .unwrap();
    assert_eq!(
        orders,
        vec!["O-5001".to_string()],
        "the old account's history moved with the address"
    );
    app.mail.wait_for("eva.old@example.nl", 2).await;
    // Like any erasure: proof of erasure to the erased account's address
    // (the new one, now on the kept account) and the Art. 19 checklist.
    let proof_subject = privacy_portal::i18n::t(
        privacy_portal::domain::Locale::En,
        "email.erasure_proof.subject",
    );
    let prefix = proof_subject.split("{{").next().unwrap().trim().to_string();
    let mut waited = 2;
    let proof = loop {
        let mails = app.mail.wait_for("eva@example.nl", waited).await;
        if let Some(m) = mails.iter().find(|m| m.subject.starts_with(&prefix)) {
            break m.clone();
        }
        waited += 1;
    };
    assert!(
        proof.text.contains(&privacy_portal::i18n::t(
            privacy_portal::domain::Locale::En,
            "delete.category.account"
        )),
        "{}",
        proof.text
    );
    let tasks = app
        .scalar(
            "SELECT COUNT(*) FROM staff_tasks WHERE request_id = $1 AND kind = 'erasure_other_systems'",
            &id,
        )
        .await;
    assert_eq!(tasks, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_with_collision_through_the_html_pages() {
    let app = TestApp::spawn().await;
    let client = common::client();
    let (_, _, csrf) = page(
        &client,
        &app.url("/en/change-email?email=eva.old@example.nl"),
    )
    .await;
    let res = client
        .post(app.url("/en/change-email"))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("email", "eva.old@example.nl".into()),
        ])
        .send()
        .await
        .unwrap();
    let code_url = location(&res);
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let code = code_in(&app.mail.wait_for("eva.old@example.nl", 1).await[0]);
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    let request_url = location(&res);
    let (status, body, csrf) = page(&client, &app.url(&request_url)).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"new_email\""));
    let res = client
        .post(app.url(&format!("{request_url}/submit")))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("new_email", "eva@example.nl".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, body, csrf) = page(&client, &app.url(&location(&res))).await;
    assert!(body.contains("/new-code"), "code page for the new address");
    let code = code_in(&app.mail.wait_for("eva@example.nl", 1).await[0]);
    let res = client
        .post(app.url(&format!("{request_url}/new-code")))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, body, csrf) = page(&client, &app.url(&location(&res))).await;
    assert!(
        body.contains("id=\"option-a\"") && body.contains("id=\"option-b\""),
        "{body}"
    );
    assert!(body.contains("order history"), "what each option loses");
    // What each account holds, in numbers only (issue 17).
    assert!(
        body.contains("Deleted: your current account, with 1 order."),
        "{body}"
    );
    assert!(body.contains("Deleted: the account of the new address, with 1 order."));
    assert!(
        !body.contains("O-5001") && !body.contains("Eva"),
        "no personal details"
    );
    let res = client
        .post(app.url(&format!("{request_url}/choice")))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("option", "B".into()),
            ("postcode", "6811 AA".into()),
            ("house_number", "3".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, body, _) = page(&client, &app.url(&location(&res))).await;
    assert!(body.contains("option B"), "{body}");
    let status: String =
        sqlx::query_scalar("SELECT status FROM requests WHERE kind = 'change_email'")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(status, "escalated");
    app.stop().await;
}

/// Mail apps open links in their own browser: the link in the mail to the
/// new address asks for that code wherever it is opened, like the first
/// code mail's link does, and the change completes there.
#[tokio::test(flavor = "multi_thread")]
async fn the_new_address_link_works_in_any_browser() {
    let app = TestApp::spawn().await;
    let (id, _token, code) =
        to_new_address(&app, "sven@example.se", "sven.ny@example.se", "sv").await;
    let mail = app.mail.wait_for("sven.ny@example.se", 1).await.remove(0);
    let link = format!("/sv/r/{id}/new-code");
    assert!(mail.text.contains(&link), "{}", mail.text);

    let elsewhere = common::client();
    let (status, body, csrf) = page(&elsewhere, &app.url(&link)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("name=\"code\""), "{body}");
    let res = elsewhere
        .post(app.url(&link))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (status, body, _) = page(&elsewhere, &app.url(&location(&res))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&privacy_portal::i18n::t(
            privacy_portal::domain::Locale::Sv,
            "change_email.completed"
        )),
        "{body}"
    );
    // A request that is not waiting for that code still needs its session.
    let (status, _, _) = page(&common::client(), &app.url(&link)).await;
    assert_ne!(status, 200);
    app.stop().await;
}
