//! Connectors end to end: the portal acting on the company's own systems
//! over real HTTP — the reference company API (`reference-company/`) as the
//! primary shop and as a newsletter tool, plus a courier told by mail (set up
//! in `tests/common/connectors.rs`).

mod common;

use std::io::Read;

use common::{
    connectors::{company, staff_case, status_of, step, submit, wait_status, Options},
    eventually, TestApp,
};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_reaches_every_system_and_the_proof_says_what_each_did() {
    let c = company(Options::default()).await;
    let app = &c.app;
    let email = "anna@example.nl";
    let account = c
        .shop
        .control
        .account_by_email(email)
        .await
        .unwrap()
        .unwrap();
    let (id, token) = app.verified("delete", email, "nl").await;
    // The company compares the details; a wrong house number is refused.
    let (status, body) = submit(
        app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "13", "confirm": true}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("details_mismatch"))
    );
    let (status, body) = submit(
        app,
        &id,
        &token,
        json!({"postcode": "1012ab", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_status(app, &id, &token, "completed").await;

    // Erased in the shop, exactly once, and in the newsletter tool.
    assert!(c.shop.control.is_erased(&account).await.unwrap());
    assert_eq!(c.shop.control.customer_email(&account).await.unwrap(), None);
    assert_eq!(c.shop.control.erasures_executed(&id), 1);
    assert_eq!(c.news.control.account_by_email(email).await.unwrap(), None);
    assert_eq!(c.news.control.erasures_executed(&id), 1);
    // The courier was instructed by mail, in English, naming the customer.
    let courier = app.mail.wait_for("privacy@courier.example", 1).await;
    assert!(courier[0].text.contains(email), "{}", courier[0].text);
    assert!(courier[0].text.contains("erase all personal data"));

    // The proof lists each system with what that system reported.
    let mails = app.mail.wait_for(email, 2).await;
    let proof = &mails.last().unwrap().text;
    assert!(proof.contains("Webwinkel"), "{proof}");
    assert!(proof.contains("Nieuwsbrief"), "{proof}");
    assert!(proof.contains("Bestellingen"), "kept orders named: {proof}");

    // Staff see per system what happened, with the shop's account id.
    let staff = app.staff_token().await;
    let case = staff_case(app, &staff, &id).await;
    assert_eq!(step(&case, "shop")["status"], "done");
    assert_eq!(step(&case, "shop")["account"], account.as_str());
    assert_eq!(step(&case, "newsletter")["status"], "done");
    assert_eq!(step(&case, "courier")["status"], "done");
    // The courier stays on the checklist until staff tick its confirmation.
    let tasks = case["tasks"].to_string();
    assert!(tasks.contains("courier"), "{tasks}");
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_system_down_for_the_whole_erasure_loses_nothing_and_erases_once() {
    let c = company(Options::default()).await;
    let app = &c.app;
    let email = "anna@example.nl";
    let (id, token) = app.verified("delete", email, "nl").await;

    // The shop away while the customer waits: a plain "try again later",
    // nothing changed, and the request is still there.
    c.shop.control.set_down(true);
    let (status, body) = submit(
        app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("system_unavailable")),
        "{body}"
    );
    assert_eq!(status_of(app, &id, &token).await["status"], "verified");
    c.shop.control.set_down(false);

    // The newsletter tool away for the whole erasure.
    c.news.control.set_down(true);
    let (status, body) = submit(
        app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "processing");
    let staff = app.staff_token().await;
    let case = eventually("the newsletter step retried", || async {
        let case = staff_case(app, &staff, &id).await;
        if step(&case, "newsletter")["attempts"].as_i64().unwrap_or(0) >= 3 {
            Ok(case)
        } else {
            Err(case)
        }
    })
    .await;
    let news = step(&case, "newsletter");
    assert_eq!(news["status"], "pending");
    assert!(news["error"].as_str().unwrap().contains("503"), "{news}");
    assert_eq!(step(&case, "shop")["status"], "done");
    // It is in the queue, under its own filter, while the customer waits.
    let queue: Value = app
        .client
        .get(app.url("/api/v1/staff/cases?work=systems"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(queue.to_string().contains(&id), "{queue}");
    assert_eq!(status_of(app, &id, &token).await["status"], "processing");
    assert!(
        app.mail.to(email).len() == 1,
        "no proof before every system is done"
    );

    c.news.control.set_down(false);
    wait_status(app, &id, &token, "completed").await;
    assert_eq!(c.news.control.erasures_executed(&id), 1);
    assert_eq!(c.shop.control.erasures_executed(&id), 1);
    assert!(c.news.control.calls_while_down() >= 3);
    app.mail.wait_for(email, 2).await;
    // Operators see it too: calls by system, operation and outcome.
    let metrics = app.state().metrics.render();
    assert!(
        metrics.contains(
            r#"portal_connector_calls_total{system="newsletter",operation="erase",outcome="unavailable"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"portal_connector_call_seconds_count{system="shop",operation="erase"}"#)
    );
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_asynchronous_erasure_is_polled_until_done() {
    let c = company(Options {
        async_erase: true,
        ..Default::default()
    })
    .await;
    let app = &c.app;
    let email = "emma@example.com";
    let (id, token) = app.verified("delete", email, "en").await;
    let (status, body) = submit(
        app,
        &id,
        &token,
        json!({"postcode": "1071DJ", "house_number": "22", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "processing");
    wait_status(app, &id, &token, "completed").await;
    assert_eq!(c.shop.control.erasures_executed(&id), 1);
    assert!(
        c.shop.control.erase_calls(&id) >= 2,
        "asked again after 202"
    );
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocker_in_the_shop_sends_the_deletion_to_staff() {
    let c = company(Options::default()).await;
    let app = &c.app;
    let (id, token) = app.verified("delete", "bram@example.nl", "nl").await;
    let (status, body) = submit(
        app,
        &id,
        &token,
        json!({"postcode": "3511 LX", "house_number": "4a", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "escalated");
    assert!(body.to_string().contains("open_order"), "{body}");
    let account = c
        .shop
        .control
        .account_by_email("bram@example.nl")
        .await
        .unwrap()
        .unwrap();
    assert!(!c.shop.control.is_erased(&account).await.unwrap());
    assert_eq!(c.shop.control.calls("erase"), 0);
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_refused_reported_plainly_and_staff_can_finish_by_hand() {
    let c = company(Options {
        wrong_news_secret: true,
        ..Default::default()
    })
    .await;
    let app = &c.app;
    let email = "anna@example.nl";
    let (id, token) = app.verified("delete", email, "nl").await;
    let (status, body) = submit(
        app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let staff = app.staff_token().await;
    let case = staff_case(app, &staff, &id).await;
    let news = step(&case, "newsletter");
    assert_eq!(news["status"], "failed", "{news}");
    assert!(
        news["error"].as_str().unwrap().contains("signature"),
        "{news}"
    );
    assert!(c.news.control.refused_signatures() >= 1);
    assert_eq!(c.news.control.calls("erase"), 0);

    // No reason, no change.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .bearer_auth(&staff)
        .json(&json!({"action": "complete_step", "system": "newsletter", "reason": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .bearer_auth(&staff)
        .json(&json!({"action": "complete_step", "system": "newsletter",
                      "reason": "Removed in the newsletter tool by hand; ticket 4411"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    wait_status(app, &id, &token, "completed").await;
    let case = staff_case(app, &staff, &id).await;
    assert_eq!(step(&case, "newsletter")["status"], "manual");
    assert!(case["history"]
        .to_string()
        .contains("step_completed_by_staff"));
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_objection_reaches_every_system_that_declares_the_consent() {
    let c = company(Options::default()).await;
    let app = &c.app;
    let email = "anna@example.nl";
    let (id, token) = app.verified("object", email, "nl").await;
    let (status, body) = submit(app, &id, &token, json!({"purposes": ["newsletter"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    let account = c
        .shop
        .control
        .account_by_email(email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.shop
            .control
            .consents(&account)
            .await
            .unwrap()
            .get("newsletter"),
        Some(&false)
    );
    let news_account = c
        .news
        .control
        .account_by_email(email)
        .await
        .unwrap()
        .unwrap();
    eventually("the newsletter stopped", || async {
        match c
            .news
            .control
            .consents(&news_account)
            .await
            .unwrap()
            .get("newsletter")
        {
            Some(false) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    c.app.stop().await;
}

fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        out.insert(
            f.name().unwrap().to_string(),
            String::from_utf8_lossy(&b).into_owned(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_holds_every_systems_data_in_its_own_folder() {
    let c = company(Options::default()).await;
    let app = &c.app;
    let email = "anna@example.nl";
    let (id, token) = app.verified("export", email, "en").await;
    let (status, body) = submit(app, &id, &token, json!({})).await;
    assert_eq!(status, 202, "{body}");
    wait_status(app, &id, &token, "completed").await;
    let res = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let files = unzip(&res.bytes().await.unwrap());
    // The shop's data is the account itself, read through the protocol.
    let data: Value = serde_json::from_str(&files["data.json"]).unwrap();
    assert_eq!(data["profile"]["name"], "Anna de Vries");
    assert!(!data["orders"].as_array().unwrap().is_empty(), "{data}");
    // The newsletter tool has its own folder, and the report lists it.
    let news: Value = serde_json::from_str(&files["newsletter/data.json"]).unwrap();
    assert_eq!(news["system"], "newsletter");
    assert!(news.to_string().contains("newsletter"), "{news}");
    let report = &files["report.html"];
    assert!(report.contains("Our other systems"), "report lists systems");
    assert!(report.contains("Newsletter"));
    assert!(c.shop.control.calls("export") >= 1);
    assert!(c.news.control.calls("export") >= 1);
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connectors_check_names_each_system_and_fails_when_one_is_down() {
    let c = company(Options::default()).await;
    let systems = &c.app.state().systems;
    let lines = privacy_portal::cli::connectors_check(c.app.state()).await;
    assert_eq!(lines.len(), 1 + systems.secondaries.len());
    assert!(lines.iter().all(|(_, ok)| *ok), "{lines:?}");
    c.news.control.set_down(true);
    let lines = privacy_portal::cli::connectors_check(c.app.state()).await;
    let news = lines
        .iter()
        .find(|(l, _)| l.contains("newsletter"))
        .unwrap();
    assert!(!news.1, "{news:?}");
    assert!(news.0.contains("unavailable"), "{news:?}");
    c.app.stop().await;
}

/// Starts a change for `old`, gives `new` and proves it with the mailed code.
async fn change_email(app: &TestApp, old: &str, new: &str) -> (String, String, Value) {
    let (id, token) = app.verified("change_email", old, "en").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(&token)
        .json(&json!({"new_email": new}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let code = common::code_in(&app.mail.wait_for(new, 1).await[0]);
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/verify-new-email")))
        .bearer_auth(&token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    (id, token, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_change_reaches_every_system_that_stores_the_address() {
    let c = company(Options::default()).await;
    let app = &c.app;
    let (old, new) = ("emma@example.com", "emma.clarke@example.org");
    let account = c.shop.control.account_by_email(old).await.unwrap().unwrap();
    let (id, _, body) = change_email(app, old, new).await;
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(
        c.shop
            .control
            .customer_email(&account)
            .await
            .unwrap()
            .as_deref(),
        Some(new)
    );
    eventually("the newsletter follows", || async {
        match c.news.control.account_by_email(new).await.unwrap() {
            Some(a) => Ok(a),
            None => Err("not yet"),
        }
    })
    .await;
    assert_eq!(c.news.control.account_by_email(old).await.unwrap(), None);
    let staff = app.staff_token().await;
    let case = staff_case(app, &staff, &id).await;
    assert_eq!(step(&case, "newsletter")["status"], "done");
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_taken_in_the_shop_goes_to_staff_as_a_collision() {
    let c = company(Options::default()).await;
    let app = &c.app;
    let (_, _, body) = change_email(app, "eva.old@example.nl", "eva@example.nl").await;
    assert_eq!(body["status"], "escalated", "{body}");
    assert_eq!(body["reasons"], json!(["email_in_use"]));
    // Nothing moved in the company's systems.
    let old = c
        .shop
        .control
        .account_by_email("eva.old@example.nl")
        .await
        .unwrap();
    assert!(old.is_some());
    assert_eq!(c.news.control.calls("change-email"), 0);
    c.app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_customer_is_not_brought_back_by_an_import() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let (id, token) = app.verified("delete", email, "nl").await;
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("completed")));

    // The company's nightly export still holds her: the line is skipped,
    // named by its number, and every other customer is imported as usual.
    let seed = privacy_portal::demo::customers()
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let report = privacy_portal::import::import(app.state(), std::io::Cursor::new(seed))
        .await
        .unwrap();
    assert_eq!(report.erased, vec![1]);
    assert!(report.errors.is_empty());
    assert!(report.updated > 0);
    // Under a new customer number too: the erased address is remembered
    // (as a keyed hash, never in the clear).
    let again =
        json!({"external_id": "C-9999", "email": "Anna@Example.nl", "name": "Anna de Vries"});
    let report =
        privacy_portal::import::import(app.state(), std::io::Cursor::new(again.to_string()))
            .await
            .unwrap();
    assert_eq!(report.erased, vec![1]);
    let found = app
        .state()
        .connector
        .find_account(&privacy_portal::domain::Email::parse(email).unwrap())
        .await
        .unwrap();
    assert!(found.is_none());
    let stored: i64 = app
        .scalar(
            "SELECT COUNT(*) FROM erased_subjects WHERE hash = $1",
            &privacy_portal::workflow::steps::erased_email_hash(
                app.state(),
                &privacy_portal::domain::Email::parse(email).unwrap(),
            ),
        )
        .await;
    assert_eq!(stored, 1);
    app.stop().await;
}
