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

use common::{connectors, webdriver::*, TestApp};
use serde_json::{json, Value};

/// How long to wait for a page.
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
/// CSS viewport of a staff member's laptop.
const LAPTOP: (u32, u32) = (1280, 900);
/// How long background work (the mail worker, the step runner) may take
/// before a page shows its result: generous, as CI runs many servers at
/// once on two cores.
const EVENTUALLY_PAGE: Duration = common::EVENTUALLY;

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

/// Opens the English login page and fills in email, password and the code
/// the authenticator app shows (not yet submitted).
async fn fill_login(browser: &Browser, app: &TestApp, user: &staff_common::StaffUser) {
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
}

/// Waits (bounded) until the current page's URL satisfies `ok`.
async fn wait_url(browser: &Browser, what: &str, ok: impl Fn(&reqwest::Url) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let url = browser.current_url().await;
        if ok(&url) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still on {url}");
        tokio::time::sleep(POLL).await;
    }
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
    fill_login(&browser, &app, &user).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn agent_sees_each_company_system_and_retries_the_one_that_was_down() {
    let c = connectors::company(connectors::Options::default()).await;
    let app = &c.app;
    let email = "anna@example.nl";
    let account = c
        .shop
        .control
        .account_by_email(email)
        .await
        .unwrap()
        .unwrap();
    // The newsletter tool is away while the customer's deletion runs.
    c.news.control.set_down(true);
    let (id, token) = app.verified("delete", email, "nl").await;
    let (status, body) = connectors::submit(
        app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("processing")));
    // Retried on its own a few times, then held: the runner would retry it
    // again within 2 s, so once the tool is back it would be done before
    // the agent's click lands. Holding its lease keeps the runner away;
    // the agent's retry takes the step regardless.
    let hold = "UPDATE connector_steps SET lease_until = $1 \
                WHERE request_id = $2 AND system = 'newsletter' AND status = 'pending' \
                AND attempts >= 2 AND lease_until < $3";
    common::eventually("the newsletter step retried and held", || async {
        let now = chrono::Utc::now().timestamp();
        let held = sqlx::query(hold)
            .bind(now + 3600)
            .bind(&id)
            .bind(now)
            .execute(app.state().db.write())
            .await
            .unwrap()
            .rows_affected();
        if held == 1 {
            Ok(())
        } else {
            Err("not yet")
        }
    })
    .await;
    let user = staff_common::enrol(app, "agent@kaasboer.example", "agent").await;

    let browser = Browser::launch_sized(LAPTOP).await;
    let axe = axe_source();
    let mut scans = AxeLog::default();
    fill_login(&browser, app, &user).await;
    browser.wait_for("#login-submit").await.click().await;

    // The queue, filtered to cases waiting on a company system.
    browser.wait_for("#queue-table").await;
    browser.wait_for("#filter-systems").await.click().await;
    wait_url(&browser, "the systems filter", |u| {
        u.query().unwrap_or("").contains("work=systems")
    })
    .await;
    assert_eq!(
        browser
            .wait_for("#filter-systems")
            .await
            .attr("aria-current")
            .await
            .as_deref(),
        Some("true")
    );
    browser
        .wait_for(&format!("#queue-table tbody tr[data-id='{id}']"))
        .await;
    scans.scan(&browser, &axe, "queue-systems").await;

    // The case: the shop erased the account, the newsletter waits.
    browser
        .wait_for(&format!("#queue-table a[href='/staff/cases/{id}']"))
        .await
        .click()
        .await;
    let shop = browser.wait_for("#case-steps #step-shop").await;
    assert_eq!(shop.attr("data-status").await.as_deref(), Some("done"));
    let text = shop.text().await;
    assert!(text.contains("Web shop"), "{text}");
    assert!(text.contains(&format!("Account id: {account}")), "{text}");
    let news = browser.wait_for("#case-steps #step-newsletter").await;
    assert_eq!(news.attr("data-status").await.as_deref(), Some("pending"));
    let error = browser
        .wait_for("#step-newsletter .step-error")
        .await
        .text()
        .await;
    assert!(error.contains("503"), "{error}");
    browser
        .wait_for("#retry-newsletter")
        .await
        .assert_visible()
        .await;
    // Every line is in words: an untranslated key would show as itself.
    let table = browser.wait_for("#case-steps").await.text().await;
    assert!(table.contains("Attempts: "), "{table}");
    assert!(!table.contains("staff."), "{table}");
    assert_eq!(
        browser.wait_for("#case-status").await.text().await,
        "Processing"
    );
    scans.scan(&browser, &axe, "case-systems").await;
    browser
        .execute("document.getElementById('systems-title').scrollIntoView();")
        .await;
    browser.screenshot("staff-case-systems-en.png").await;

    // The tool is back; the agent does not wait for the next try.
    c.news.control.set_down(false);
    browser.wait_for("#retry-newsletter").await.click().await;
    let notice = browser.wait_for("#case-notice").await;
    assert!(
        notice.text().await.contains("tried again"),
        "{}",
        notice.text().await
    );
    // The courier's instruction mail may still be on its way: reload until
    // the request is completed.
    let deadline = Instant::now() + EVENTUALLY_PAGE;
    loop {
        let status = browser.wait_for("#case-status").await.text().await;
        if status == "Completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request was not completed within {EVENTUALLY_PAGE:?}; status {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.goto(&app.url(&format!("/staff/cases/{id}"))).await;
    }
    for system in ["shop", "newsletter", "courier"] {
        let row = browser
            .wait_for(&format!("#case-steps #step-{system}"))
            .await;
        assert_eq!(
            row.attr("data-status").await.as_deref(),
            Some("done"),
            "{system}: {}",
            row.text().await
        );
    }
    assert!(browser.find("#retry-newsletter").await.is_none());
    assert_eq!(c.news.control.erasures_executed(&id), 1);
    assert_eq!(c.news.control.account_by_email(email).await.unwrap(), None);
    scans.print();
    browser.close().await;
    c.app.stop().await;
}
