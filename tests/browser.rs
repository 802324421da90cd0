//! Browser tests (headless Chromium); built only with `--features browser-tests`.
//!
//! The customer flow as a customer on a phone sees it: a real Chromium driven
//! over WebDriver by a chromedriver the test starts itself, against the real
//! app (`TestApp`), with axe-core scanning every page for accessibility
//! problems and screenshots saved to `docs/screenshots/` for the docs.
//!
//! The WebDriver client, the chromedriver launcher and the axe-core helpers
//! live in `tests/common/webdriver.rs` (shared with `tests/browser_flows.rs`).
//!
//! Environment: PORTAL_CHROMEDRIVER (default /usr/bin/chromedriver),
//! PORTAL_CHROMIUM (default /usr/bin/chromium), PORTAL_AXE_JS (default
//! `node_modules/axe-core/axe.min.js` in the crate root; `npm ci` installs it).

mod common;

use common::{
    code_in,
    webdriver::{axe_source, run_axe, AxeLog, Browser},
    TestApp,
};
use privacy_portal::{domain::Locale, i18n};

// ---------- the tests ----------

#[tokio::test(flavor = "multi_thread")]
async fn question_flow_in_dutch_with_axe() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await;
    let axe = axe_source();
    let mut scans = AxeLog::default();
    let email = "anna@example.nl";
    let nl = Locale::Nl;

    // Landing page in Dutch.
    browser.goto(&app.url("/nl/")).await;
    let h1 = browser.wait_for("main h1").await;
    assert_eq!(browser.html_lang().await, "nl");
    h1.assert_visible().await;
    assert_eq!(h1.text().await, i18n::t(nl, "landing.title"));
    let question = browser.wait_for("#kind-question").await;
    question.assert_visible().await;
    assert!(
        question
            .text()
            .await
            .contains(&i18n::t(nl, "kinds.question.title")),
        "the question link reads in Dutch"
    );
    scans.scan(&browser, &axe, "landing").await;
    browser.screenshot("customer-landing-nl.png").await;

    // Start page: the e-mail address.
    question.click().await;
    let email_input = browser.wait_for("#email").await;
    assert_eq!(browser.current_url().await.path(), "/nl/question");
    assert_eq!(browser.html_lang().await, "nl");
    email_input.send_keys(email).await;
    assert_eq!(email_input.prop("value").await, email);
    scans.scan(&browser, &axe, "start").await;
    browser.screenshot("customer-start-nl.png").await;
    browser.wait_for("#start-submit").await.click().await;

    // Code page: the code from the real SMTP server.
    let code_input = browser.wait_for("#code").await;
    let code_url = browser.current_url().await;
    let id = code_url
        .path()
        .strip_prefix("/nl/r/")
        .and_then(|p| p.strip_suffix("/code"))
        .unwrap_or_else(|| panic!("on the code page, not {code_url}"))
        .to_string();
    assert_eq!(
        browser.wait_for("main h1").await.text().await,
        i18n::t(nl, "code.title")
    );
    scans.scan(&browser, &axe, "code").await;
    let mails = app.mail.wait_for(email, 1).await;
    assert_eq!(mails.len(), 1, "exactly one code mail");
    code_input.send_keys(&code_in(&mails[0])).await;
    browser.screenshot("customer-code-nl.png").await;
    browser.wait_for("#verify-submit").await.click().await;

    // The question itself.
    let message = browser.wait_for("#message").await;
    assert_eq!(browser.current_url().await.path(), format!("/nl/r/{id}"));
    scans.scan(&browser, &axe, "question").await;
    message
        .send_keys("Welke gegevens delen jullie met bezorgdiensten, en hoe lang bewaren jullie mijn adres?")
        .await;
    browser.wait_for("#submit-request").await.click().await;

    // Done: the status with the legal due date, in Dutch.
    let status = browser.wait_for("#request-status").await;
    let (db_status, due): (String, String) =
        sqlx::query_as("SELECT status, due_date FROM requests WHERE id = $1")
            .bind(&id)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(db_status, "escalated");
    let due = chrono::NaiveDate::parse_from_str(&due, "%Y-%m-%d").unwrap();
    let long_due = i18n::long_date(nl, due);
    let sentence = i18n::t_args(nl, "status.question_received", &[("due_date", &long_due)]);
    status.assert_visible().await;
    let shown = status.text().await;
    assert!(
        shown.contains(&sentence),
        "status shows {shown:?}, expected {sentence:?}"
    );
    scans.scan(&browser, &axe, "done").await;
    browser.screenshot("customer-done-nl.png").await;

    let mails = app.mail.wait_for(email, 2).await;
    assert_eq!(mails.len(), 2, "a code mail and a confirmation");
    assert!(
        mails[1].text.contains(&long_due),
        "the confirmation names the due date {long_due}: {}",
        mails[1].text
    );

    scans.print();
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn language_switcher_keeps_the_page() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await;

    browser
        .goto(&app.url("/sv/question?email=sven@example.se"))
        .await;
    let email = browser.wait_for("#email").await;
    assert_eq!(browser.html_lang().await, "sv");
    assert_eq!(email.prop("value").await, "sven@example.se", "prefilled");

    browser
        .wait_for(r#"nav.lang-switch a[hreflang="en"]"#)
        .await
        .click()
        .await;
    browser.wait_for(r#"html[lang="en"]"#).await;
    let url = browser.current_url().await;
    assert_eq!(url.path(), "/en/question", "same page: {url}");
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [("email".to_string(), "sven@example.se".to_string())],
        "same query: {url}"
    );
    assert_eq!(browser.html_lang().await, "en");
    assert_eq!(
        browser.wait_for("#email").await.prop("value").await,
        "sven@example.se",
        "still prefilled after switching"
    );

    browser.close().await;
    app.stop().await;
}

/// The scan is only worth something if it can fail: plant an image without
/// alt text and an unlabelled field in a real page and expect axe to see them.
#[tokio::test(flavor = "multi_thread")]
async fn axe_scan_sees_a_planted_violation() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await;
    let axe = axe_source();
    browser.goto(&app.url("/en/")).await;
    browser.wait_for("main h1").await;
    browser
        .execute(
            "const m = document.querySelector('main');
             const img = document.createElement('img');
             img.src = '/static/none.png'; img.id = 'planted-img';
             const input = document.createElement('input');
             input.type = 'text'; input.id = 'planted-input';
             m.append(img, input);",
        )
        .await;
    let (_, _, violations) = run_axe(&browser, &axe, "planted").await;
    let found = |id: &str| {
        violations
            .iter()
            .any(|v| v["id"] == id && matches!(v["impact"].as_str(), Some("serious" | "critical")))
    };
    assert!(found("image-alt"), "axe missed image-alt: {violations:?}");
    assert!(found("label"), "axe missed label: {violations:?}");
    browser.close().await;
    app.stop().await;
}

/// Issue 6: a newsletter footer link in Swedish — the purpose is ticked after
/// the emailed code, consent is withdrawn at once; axe scans the privacy
/// notice, the objection pages and a guidance page.
#[tokio::test(flavor = "multi_thread")]
async fn newsletter_objection_in_swedish_via_footer_deep_link_with_axe() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await;
    let axe = axe_source();
    let mut scans = AxeLog::default();
    let email = "sven@example.se";
    let sv = Locale::Sv;

    // The privacy notice, reached from the footer of every page.
    browser.goto(&app.url("/sv/")).await;
    browser.wait_for("#privacy-link").await.click().await;
    let h1 = browser.wait_for("main h1").await;
    assert_eq!(browser.current_url().await.path(), "/sv/privacy");
    assert_eq!(h1.text().await, i18n::t(sv, "privacy.title"));
    assert!(browser
        .wait_for("#recipients-title")
        .await
        .text()
        .await
        .contains(&i18n::t(sv, "privacy.recipients_title")));
    scans.scan(&browser, &axe, "privacy").await;
    browser.screenshot("customer-privacy-sv.png").await;

    // A guidance page.
    browser.goto(&app.url("/sv/help/bank-account")).await;
    browser.wait_for("#help-steps").await.assert_visible().await;
    assert_eq!(browser.html_lang().await, "sv");
    scans.scan(&browser, &axe, "help").await;

    // The footer link of a newsletter: purpose and address in the URL.
    browser
        .goto(&app.url(&format!("/sv/object?purpose=newsletter&email={email}")))
        .await;
    let notice = browser.wait_for("#purpose-notice").await;
    // "Du är på väg att avsluta nyhetsbrevet."
    assert!(notice.text().await.to_lowercase().contains("nyhetsbrev"));
    assert_eq!(browser.wait_for("#email").await.prop("value").await, email);
    scans.scan(&browser, &axe, "object start").await;
    browser.wait_for("#start-submit").await.click().await;

    // Still the emailed code first.
    let code_input = browser.wait_for("#code").await;
    let mails = app.mail.wait_for(email, 1).await;
    code_input.send_keys(&code_in(&mails[0])).await;
    browser.wait_for("#verify-submit").await.click().await;

    // The purposes with their current state; the newsletter is ticked.
    let newsletter = browser.wait_for("#purpose_newsletter").await;
    assert_eq!(newsletter.prop("checked").await, true);
    assert_eq!(
        browser.wait_for("main h1").await.text().await,
        i18n::t(sv, "object.form.title")
    );
    scans.scan(&browser, &axe, "object form").await;
    browser.screenshot("customer-object-sv.png").await;
    browser.wait_for("#submit-request").await.click().await;

    // Done at once, in Swedish, and the consent is gone from the store.
    let status = browser.wait_for("#request-status").await;
    assert!(status
        .text()
        .await
        .contains(&i18n::t(sv, "object.done.completed")));
    scans.scan(&browser, &axe, "object done").await;
    let state = app.state();
    let acc = state
        .connector
        .find_account(&privacy_portal::domain::Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let consents = state.connector.consents(&acc).await.unwrap();
    assert_eq!(consents.get("newsletter"), Some(&false));
    assert_eq!(consents.get("reviews"), Some(&true));
    let mails = app.mail.wait_for(email, 2).await;
    assert!(mails[1].text.contains("Nyhetsbrev"));

    scans.print();
    browser.close().await;
    app.stop().await;
}
