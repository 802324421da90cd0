//! Browser test of the staff workspace (headless Chromium); built only with
//! `--features browser-tests`. The WebDriver client and axe-core helpers are
//! the shared ones of `tests/common/webdriver.rs`, with a laptop-sized window.
//!
//! Environment: PORTAL_CHROMEDRIVER, PORTAL_CHROMIUM, PORTAL_AXE_JS as in
//! `tests/browser.rs`.
#![allow(dead_code)]

mod common;
mod staff_common;

use std::time::{Duration, Instant};

use common::{webdriver::*, TestApp};
use serde_json::{json, Value};

/// How long to wait for a page.
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
/// CSS viewport of a staff member's laptop.
const LAPTOP: (u32, u32) = (1280, 900);

async fn submit_json(app: &TestApp, id: &str, token: &str, body: Value) {
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_logs_in_with_totp_executes_overdue_deletion_and_replies_in_swedish() {
    let app = TestApp::spawn().await;
    // A blocked deletion (open order), made overdue, and a Swedish question.
    let (delete_id, token) = app.verified("delete", "bram@example.nl", "nl").await;
    submit_json(
        &app,
        &delete_id,
        &token,
        json!({"postcode": "3511 LX", "house_number": "4a", "confirm": true}),
    )
    .await;
    let past = chrono::Utc::now() - chrono::Duration::days(2);
    sqlx::query("UPDATE requests SET due_date = $1, due_at = $2 WHERE id = $3")
        .bind(past.date_naive().to_string())
        .bind(past.timestamp())
        .bind(&delete_id)
        .execute(app.state().db.write())
        .await
        .unwrap();
    let (question_id, token) = app.verified("question", "sven@example.se", "sv").await;
    submit_json(
        &app,
        &question_id,
        &token,
        json!({"message": "Vilka uppgifter delar ni med budfirman?"}),
    )
    .await;
    let user = staff_common::enrol(&app, "agent@kaasboer.example", "agent").await;

    let browser = Browser::launch_sized(LAPTOP).await;
    let axe = axe_source();
    let mut scans = AxeLog::default();

    // Login with email, password and the code the authenticator app shows.
    browser.goto(&app.url("/staff/login?lang=en")).await;
    browser
        .wait_for("#email")
        .await
        .send_keys(&user.email)
        .await;
    browser
        .wait_for("#password")
        .await
        .send_keys(staff_common::PASSWORD)
        .await;
    browser
        .wait_for("#code")
        .await
        .send_keys(&staff_common::totp_code(&user.secret, 0))
        .await;
    scans.scan(&browser, &axe, "login").await;
    browser.wait_for("#login-submit").await.click().await;

    // The queue: the overdue deletion first, highlighted.
    let first = browser.wait_for("#queue-table tbody tr").await;
    assert_eq!(browser.current_url().await.path(), "/staff/");
    assert_eq!(
        first.attr("data-id").await.as_deref(),
        Some(delete_id.as_str())
    );
    assert_eq!(first.attr("class").await.as_deref(), Some("overdue"));
    assert!(
        first.text().await.contains("2 days overdue"),
        "{}",
        first.text().await
    );
    scans.scan(&browser, &axe, "queue").await;
    browser.screenshot("staff-queue-en.png").await;

    // The case: blocker shown; the customer cleared it (order delivered).
    browser
        .wait_for(&format!("#queue-table a[href='/staff/cases/{delete_id}']"))
        .await
        .click()
        .await;
    let reasons = browser.wait_for("#case-reasons").await;
    assert!(reasons.text().await.contains("An order is still open"));
    scans.scan(&browser, &axe, "case").await;
    browser.screenshot("staff-case-en.png").await;
    sqlx::query("UPDATE customer_orders SET status = 'delivered' WHERE id = 'O-2001'")
        .execute(app.state().db.write())
        .await
        .unwrap();
    browser.wait_for("#execute-submit").await.click().await;
    // A second step says what will happen before anything is erased.
    let what = browser.wait_for("#confirm-what-happens").await;
    assert!(what.text().await.contains("deleted for good"));
    scans.scan(&browser, &axe, "confirm").await;
    browser.wait_for("#confirm-submit").await.click().await;
    let notice = browser.wait_for("#case-notice").await;
    assert!(notice.text().await.contains("carried out"));
    assert_eq!(
        browser.wait_for("#case-status").await.text().await,
        "Completed"
    );

    // The Swedish question: a reply template in Swedish, previewed, sent.
    browser
        .goto(&app.url(&format!("/staff/cases/{question_id}")))
        .await;
    browser
        .wait_for("#template option[value='need_more_information']")
        .await
        .click()
        .await;
    browser
        .wait_for("#template-form button")
        .await
        .click()
        .await;
    // Wait for the page with the template (a plain GET form, no script).
    let deadline = Instant::now() + WAIT;
    while !browser
        .current_url()
        .await
        .query()
        .unwrap_or("")
        .contains("template=")
    {
        assert!(Instant::now() < deadline, "template page did not load");
        tokio::time::sleep(POLL).await;
    }
    let text = browser.wait_for("#reply-text").await;
    let prefilled = text.prop("value").await;
    assert!(
        prefilled
            .as_str()
            .unwrap()
            .contains("För att hantera din begäran"),
        "{prefilled}"
    );
    text.send_keys(" Tack!").await;
    browser.wait_for("#reply-preview").await.click().await;
    let preview = browser.wait_for("#preview-text").await;
    assert!(preview.text().await.contains("Din referens"));
    scans.scan(&browser, &axe, "preview").await;
    browser.screenshot("staff-reply-preview-sv.png").await;
    browser.wait_for("#reply-send").await.click().await;
    browser.wait_for("#case-notice").await;
    let mails = app.mail.wait_for("sven@example.se", 3).await;
    assert!(mails[2].text.contains("För att hantera din begäran"));
    assert!(mails[2].text.contains("Tack!"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'completed'",
            &question_id
        )
        .await,
        1
    );
    scans.print();
    browser.close().await;
    app.stop().await;
}
