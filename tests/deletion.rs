//! Deletion: knowledge check, blockers to staff, erasure with proof.

mod common;

use common::{location, page, TestApp};
use privacy_portal::{domain::Locale, i18n::t};
use serde_json::{json, Value};

async fn submit(app: &TestApp, id: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// Every text column of every table that contains `needle`, as "table.column".
async fn find_everywhere(app: &TestApp, needle: &str) -> Vec<String> {
    let db = app.state().db.read();
    let postgres = common::postgres_url().is_some();
    let tables: Vec<String> = if postgres {
        sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()")
            .fetch_all(db)
            .await
            .unwrap()
    } else {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(db)
            .await
            .unwrap()
    };
    assert!(tables.len() >= 10, "found the tables: {tables:?}");
    let mut hits = vec![];
    for table in tables {
        let columns: Vec<String> = if postgres {
            sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(&table)
            .fetch_all(db)
            .await
            .unwrap()
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{table}')"
            )))
            .fetch_all(db)
            .await
            .unwrap()
        };
        for column in columns {
            // Keyed HMACs (hex) are not the value; they are what the rate
            // limits count by and go with their request at retention.
            if column.ends_with("_hash") {
                continue;
            }
            let sql =
                format!("SELECT COUNT(*) FROM {table} WHERE LOWER(CAST({column} AS TEXT)) LIKE $1");
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(format!("%{}%", needle.to_lowercase()))
                .fetch_one(db)
                .await
                .unwrap();
            if n > 0 {
                hits.push(format!("{table}.{column}"));
            }
        }
    }
    hits
}

/// Waits until `needle` is nowhere in the database: the address goes with
/// the outbox row once its mail is delivered, in the worker's own time.
async fn gone_everywhere(app: &TestApp, needle: &str) {
    common::eventually(&format!("{needle} gone from every table"), || async {
        let hits = find_everywhere(app, needle).await;
        if hits.is_empty() {
            Ok(())
        } else {
            Err(hits)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_account_is_erased_at_once_with_proof_and_nothing_left() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let (id, token) = app.verified("delete", email, "nl").await;

    // Consent is required; nothing changes without it.
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "confirm");
    // Wrong details: only "they don't match", never which field.
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12a", "confirm": true}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "details_mismatch");
    assert_eq!(body["attempts_left"], 4);
    assert!(
        !body.to_string().contains("1012"),
        "stored data never echoed"
    );

    // Normalised comparison: case and spaces do not matter.
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1012ab", "house_number": " 12 ", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["outcome"], "erased");

    // Proof of erasure, in Dutch, listing what went and what stayed and why.
    let mails = app.mail.wait_for(email, 2).await;
    let proof = &mails[1];
    assert!(
        proof
            .text
            .contains(&t(Locale::Nl, "delete.category.bank_details")),
        "{}",
        proof.text
    );
    assert!(proof
        .text
        .contains(&t(Locale::Nl, "email.erasure_proof.retained_why")));
    assert!(proof.text.contains("Exact Online"), "other systems listed");

    // Repeating the submit answers with the current state; erasure ran once.
    let (status, again) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "x", "house_number": "y", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "completed");
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = 'erased'",
            &id
        )
        .await,
        1
    );

    // Once the proof was delivered, the portal forgets the address as well.
    for needle in [
        email,
        "Anna de Vries",
        "de Vries",
        "1012 AB",
        "1012AB",
        "+31612345678",
        "NL91ABNA0417164300",
        "203.0.113.7",
        "gold",
    ] {
        // No exceptions: what the retention rule keeps (orders and payments:
        // dates, amounts, status, method) holds none of these values.
        gone_everywhere(&app, needle).await;
    }
    let kept: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT o.id, o.retention_reason FROM customer_orders o JOIN customers c ON c.id = o.customer_id WHERE c.external_id = 'C-1001'")
            .fetch_all(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(
        kept,
        vec![(
            "O-1001".to_string(),
            Some("bookkeeping_7_years".to_string())
        )],
        "invoice kept for bookkeeping"
    );
    let task: (String, String) =
        sqlx::query_as("SELECT kind, checklist FROM staff_tasks WHERE request_id = $1")
            .bind(&id)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(task.0, "erasure_other_systems");
    assert!(task.1.contains("bookkeeping") && task.1.contains("call_recordings"));

    // The address no longer has an account.
    let (id2, token2) = app.verified("delete", email, "nl").await;
    let (status, body) = submit(
        &app,
        &id2,
        &token2,
        json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "no_account");
    // Asking for the other systems only completes it, with a checklist.
    let (status, body) = submit(&app, &id2, &token2, json!({"other_systems_only": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["outcome"].as_str()),
        (Some("completed"), Some("other_systems"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_blocker_escalates_with_its_reason() {
    let app = TestApp::spawn().await;
    for (email, pc, hn, reason) in [
        ("bram@example.nl", "3511LX", "4A", "open_order"),
        ("carla@example.nl", "2514 ea", "101", "outstanding_balance"),
        ("daan@example.nl", "9711 LM", "7", "recent_direct_debit"),
    ] {
        let (id, token) = app.verified("delete", email, "en").await;
        let (status, body) = submit(
            &app,
            &id,
            &token,
            json!({"postcode": pc, "house_number": hn, "confirm": true}),
        )
        .await;
        assert_eq!(status, 200, "{email}: {body}");
        assert_eq!(body["status"], "escalated");
        assert_eq!(body["reasons"], json!([reason]));
        let mail = app.mail.wait_for(email, 2).await.remove(1);
        let sentence = t(Locale::En, &format!("delete.reasons.{reason}"));
        let first_words: String = sentence.split(' ').take(5).collect::<Vec<_>>().join(" ");
        assert!(mail.text.contains(&first_words), "{email}: {}", mail.text);
        if reason == "recent_direct_debit" {
            // Collected 21 days ago: possible 35 days from now.
            let from = (chrono::Utc::now() + chrono::Duration::days(35))
                .with_timezone(&chrono_tz::Europe::Amsterdam)
                .date_naive();
            let long = privacy_portal::i18n::long_date(Locale::En, from);
            assert!(
                mail.text.contains(&long),
                "possible-from date {long}: {}",
                mail.text
            );
        }
        // The account is untouched.
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers WHERE email = $1")
            .bind(email)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    // All three at once.
    let now = chrono::Utc::now();
    let line = json!({"external_id":"C-9","email":"all@example.nl","postcode":"1000 AA","house_number":"1","balance_cents":500,
        "orders":[{"id":"O-9","placed_at":now.to_rfc3339(),"status":"open","total_cents":100,"currency":"EUR"}],
        "payments":[{"method":"direct_debit","amount_cents":100,"collected_at":(now - chrono::Duration::days(55)).to_rfc3339()}]});
    privacy_portal::import::import(app.state(), std::io::Cursor::new(line.to_string()))
        .await
        .unwrap();
    let (id, token) = app.verified("delete", "all@example.nl", "sv").await;
    let (_, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1000aa", "house_number": "1", "confirm": true}),
    )
    .await;
    assert_eq!(
        body["reasons"],
        json!(["open_order", "outstanding_balance", "recent_direct_debit"])
    );

    // The staff queue shows them with their reasons.
    let staff = app.staff_token().await;
    let list: Value = app
        .client
        .get(app.url("/api/v1/staff/cases?kind=delete"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["cases"].as_array().unwrap().len(), 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_wrong_details_close_the_request() {
    let app = TestApp::spawn().await;
    let (id, token) = app.verified("delete", "emma@example.com", "en").await;
    for left in [4, 3, 2, 1] {
        let (status, body) = submit(
            &app,
            &id,
            &token,
            json!({"postcode": "9999 ZZ", "house_number": "22", "confirm": true}),
        )
        .await;
        assert_eq!(status, 422);
        assert_eq!(body["attempts_left"], left);
    }
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "9999 ZZ", "house_number": "22", "confirm": true}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "too_many_attempts");
    // Now even the right details do nothing: the customer must start again.
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1071 DJ", "house_number": "22", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "cancelled");
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM customers WHERE email = 'emma@example.com'")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(n, 1, "nothing erased");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_execute_rechecks_blockers_and_records_an_override() {
    let app = TestApp::spawn().await;
    let state = app.state();
    let (bram, token) = app.verified("delete", "bram@example.nl", "nl").await;
    submit(
        &app,
        &bram,
        &token,
        json!({"postcode": "3511 LX", "house_number": "4a", "confirm": true}),
    )
    .await;
    let err = privacy_portal::workflow::delete::staff_execute(state, &bram, "staff:test", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ("still_blocked", 409));
    // The blocker is cleared (the order was delivered): now it goes through.
    sqlx::query("UPDATE customer_orders SET status = 'delivered' WHERE id = 'O-2001'")
        .execute(state.db.write())
        .await
        .unwrap();
    let row = privacy_portal::workflow::delete::staff_execute(state, &bram, "staff:test", None)
        .await
        .unwrap();
    assert_eq!(row.status, "completed");
    app.mail.wait_for("bram@example.nl", 3).await;

    let (daan, token) = app.verified("delete", "daan@example.nl", "nl").await;
    submit(
        &app,
        &daan,
        &token,
        json!({"postcode": "9711LM", "house_number": "7", "confirm": true}),
    )
    .await;
    let row = privacy_portal::workflow::delete::staff_execute(
        state,
        &daan,
        "staff:test",
        Some("Bank confirmed the debit cannot be reversed"),
    )
    .await
    .unwrap();
    assert_eq!(row.status, "completed");
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE request_id = $1 AND action = 'erasure_started'",
    )
    .bind(&daan)
    .fetch_one(state.db.read())
    .await
    .unwrap();
    // The audit event names the overridden blocker and points to the
    // reason, which is a case note (purged with the request), not the text.
    assert!(
        !detail.contains("Bank confirmed") && detail.contains("recent_direct_debit"),
        "{detail}"
    );
    let note_id = serde_json::from_str::<Value>(&detail).unwrap()["note_id"]
        .as_str()
        .unwrap()
        .to_string();
    let body: String = sqlx::query_scalar("SELECT body FROM case_notes WHERE id = $1")
        .bind(&note_id)
        .fetch_one(state.db.read())
        .await
        .unwrap();
    assert_eq!(body, "Bank confirmed the debit cannot be reversed");
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_events WHERE request_id = $1 AND action = 'erased'",
    )
    .bind(&daan)
    .fetch_one(state.db.read())
    .await
    .unwrap();
    assert_eq!(actor, "staff:test");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_through_the_dutch_html_forms() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let client = common::client();
    let (status, body, csrf) = page(&client, &app.url("/nl/delete")).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"email\""), "deletion is available");
    let res = client
        .post(app.url("/nl/delete"))
        .form(&[("csrf", csrf.unwrap()), ("email", email.into())])
        .send()
        .await
        .unwrap();
    let code_url = location(&res);
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let code = common::code_in(&app.mail.wait_for(email, 1).await[0]);
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    let request_url = location(&res);
    let (status, body, csrf) = page(&client, &app.url(&request_url)).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"postcode\"") && body.contains("id=\"confirm\""));
    assert!(
        !body.contains("1012") && !body.contains("Anna"),
        "the page never shows stored data"
    );
    let csrf = csrf.unwrap();

    let submit_url = app.url(&format!("{request_url}/submit"));
    let res = client
        .post(&submit_url)
        .form(&[
            ("csrf", csrf.as_str()),
            ("postcode", "1012 AB"),
            ("house_number", "12"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(
        body.contains(&t(Locale::Nl, "errors.consent_required")),
        "consent error in Dutch"
    );
    // A wrong postcode: the form comes back as it was sent, consent ticked.
    let (_, _, csrf) = page(&client, &app.url(&request_url)).await;
    let res = client
        .post(&submit_url)
        .form(&[
            ("csrf", csrf.unwrap().as_str()),
            ("postcode", "1012 AC"),
            ("house_number", "12"),
            ("confirm", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains("value=\"1012 AC\""), "{body}");
    assert!(body.contains("value=\"12\""), "{body}");
    assert!(body.contains("value=\"yes\" required checked"), "{body}");
    let (_, _, csrf) = page(&client, &app.url(&request_url)).await;
    let res = client
        .post(&submit_url)
        .form(&[
            ("csrf", csrf.unwrap().as_str()),
            ("postcode", "1012ab"),
            ("house_number", "12"),
            ("confirm", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (status, body, _) = page(&client, &app.url(&location(&res))).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(&t(Locale::Nl, "delete.completed").replace('\'', "&#x27;")),
        "{body}"
    );
    app.mail.wait_for(email, 2).await;

    // A verified address without an account is told so (it proved the address).
    let client = common::client();
    let (_, _, csrf) = page(&client, &app.url("/en/delete")).await;
    let res = client
        .post(app.url("/en/delete"))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("email", "stranger@example.nl".into()),
        ])
        .send()
        .await
        .unwrap();
    let code_url = location(&res);
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let code = common::code_in(&app.mail.wait_for("stranger@example.nl", 1).await[0]);
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    let request_url = location(&res);
    let (_, body, csrf) = page(&client, &app.url(&request_url)).await;
    assert!(
        body.contains(&t(Locale::En, "errors.no_account").replace('\'', "&#x27;")),
        "{body}"
    );
    assert!(!body.contains("id=\"postcode\""));
    // Nothing to erase, but the address may sit in the other systems: the
    // customer can ask for those, the request completes with a checklist for
    // staff and a confirmation mail, instead of hanging.
    assert!(body.contains("id=\"other-systems-submit\""), "{body}");
    let res = client
        .post(app.url(&format!("{request_url}/submit")))
        .form(&[("csrf", csrf.unwrap()), ("other_systems_only", "1".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, body, _) = page(&client, &app.url(&location(&res))).await;
    let done = t(Locale::En, "delete.other_systems_done");
    let done = done.split("%{").next().unwrap().replace('\'', "&#x27;");
    assert!(body.contains(&done), "{body}");
    let id = request_url.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'completed' AND outcome = 'other_systems'",
            &id
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM staff_tasks WHERE request_id = $1 AND status = 'open'",
            &id
        )
        .await,
        1
    );
    let mail = app.mail.wait_for("stranger@example.nl", 2).await.remove(1);
    assert!(mail.text.contains("Call recordings"), "{}", mail.text);
    app.stop().await;
}

/// After an erasure nothing personal lives on in the portal's own records:
/// not in the customer's other (closed) requests, not in mail already sent,
/// not in a staff override reason in the permanent audit trail. The proof
/// names the day and only the categories the account actually held.
#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_leaves_nothing_personal_in_other_requests_mail_or_audit() {
    let app = TestApp::spawn().await;
    let email = "emma@example.com";
    let words = "I am Emma Clarke of Keizersgracht 99";
    // An earlier question, answered and closed by staff.
    let (q, qtoken) = app.verified("question", email, "en").await;
    let (status, _) = submit(&app, &q, &qtoken, json!({"message": words})).await;
    assert_eq!(status, 200);
    let staff = app.staff_token().await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{q}/actions")))
        .bearer_auth(&staff)
        .json(&json!({"action": "reply", "message": "Dear Emma Clarke, here is the answer."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.mail.wait_for(email, 3).await;

    // Emma has an open order; staff erase anyway, with a reason.
    sqlx::query("UPDATE customer_orders SET status = 'open' WHERE id = 'O-8001'")
        .execute(app.state().db.write())
        .await
        .unwrap();
    let (id, token) = app.verified("delete", email, "en").await;
    let (_, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1071 DJ", "house_number": "22", "confirm": true}),
    )
    .await;
    assert_eq!(body["status"], "escalated");
    let reason = "Customer phoned on 3 Dec: order O-8001 cancelled by phone";
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .bearer_auth(&staff)
        .json(&json!({"action": "execute", "override_reason": reason}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let proof = loop {
        let mails = app.mail.wait_for(email, 6).await;
        if let Some(m) = mails
            .iter()
            .find(|m| m.subject.starts_with("Your account has been deleted"))
        {
            break m.clone();
        }
    };
    let en = privacy_portal::domain::Locale::En;
    let today = chrono::Utc::now()
        .with_timezone(&app.state().settings.company.country.timezone())
        .date_naive();
    assert!(
        proof
            .text
            .contains(&privacy_portal::i18n::long_date(en, today)),
        "{}",
        proof.text
    );
    // Emma never had bank details stored or calls logged: not listed.
    for never_held in [
        "delete.category.bank_details",
        "delete.category.contact_history",
    ] {
        assert!(
            !proof
                .text
                .contains(&privacy_portal::i18n::t(en, never_held)),
            "{never_held}"
        );
    }
    assert!(proof
        .text
        .contains(&privacy_portal::i18n::t(en, "delete.category.address")));

    // Once the proof is delivered the portal keeps none of it.
    for needle in ["Keizersgracht", "Emma Clarke", email] {
        gone_everywhere(&app, needle).await;
    }
    // The reason is a case note, purged with the request; the permanent
    // audit trail only points to it.
    assert!(find_everywhere(&app, "cancelled by phone")
        .await
        .iter()
        .all(|h| h == "case_notes.body"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM case_notes WHERE request_id = $1 AND kind = 'override_reason'",
            &id
        )
        .await,
        1
    );
    app.stop().await;
}
