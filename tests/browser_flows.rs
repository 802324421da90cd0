//! Browser tests of the deletion, export and email-change flows (headless
//! Chromium on a phone-sized viewport); built only with
//! `--features browser-tests`.
//!
//! Each test drives a real Chromium over WebDriver (`tests/common/webdriver.rs`)
//! against the real app (`TestApp`) and its real SMTP server, scans the pages
//! with axe-core (no serious or critical violations allowed) and saves
//! screenshots to `docs/screenshots/`.
//!
//! Environment: PORTAL_CHROMEDRIVER, PORTAL_CHROMIUM, PORTAL_AXE_JS as in
//! `tests/browser.rs`.

mod common;

use std::{
    io::Read,
    time::{Duration, Instant},
};

use common::{
    code_in,
    webdriver::{axe_source, AxeLog, Browser},
    TestApp,
};
use privacy_portal::{domain::Locale, i18n};

/// Starts a request of the kind behind `start_path` for `email` and enters
/// the mailed code; returns the request id (the browser is then on `/{lang}/r/{id}`).
async fn start_and_verify(
    app: &TestApp,
    browser: &Browser,
    start_path: &str,
    email: &str,
) -> String {
    let lang = &start_path[1..3];
    browser.goto(&app.url(start_path)).await;
    browser.wait_for("#email").await.send_keys(email).await;
    browser.wait_for("#start-submit").await.click().await;

    let code_input = browser.wait_for("#code").await;
    let code_url = browser.current_url().await;
    let id = code_url
        .path()
        .strip_prefix(&format!("/{lang}/r/"))
        .and_then(|p| p.strip_suffix("/code"))
        .unwrap_or_else(|| panic!("on the code page, not {code_url}"))
        .to_string();
    let before = app.mail.to(email).len();
    let mails = app.mail.wait_for(email, before.max(1)).await;
    code_input.send_keys(&code_in(mails.last().unwrap())).await;
    browser.wait_for("#verify-submit").await.click().await;
    wait_for_path(browser, &format!("/{lang}/r/{id}")).await;
    id
}

/// Waits (bounded) until the browser is on `path`.
async fn wait_for_path(browser: &Browser, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = browser.current_url().await;
        if url.path() == path {
            return;
        }
        assert!(Instant::now() < deadline, "expected {path}, still on {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn due_date(app: &TestApp, id: &str) -> chrono::NaiveDate {
    let due: String = sqlx::query_scalar("SELECT due_date FROM requests WHERE id = $1")
        .bind(id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    chrono::NaiveDate::parse_from_str(&due, "%Y-%m-%d").unwrap()
}

/// Deletion in Dutch: an open order blocks it (the reason is shown in Dutch);
/// a clean account is erased at once and the proof is mailed.
#[tokio::test(flavor = "multi_thread")]
async fn deletion_in_dutch_blocked_by_an_open_order_then_erased_with_axe() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await;
    let axe = axe_source();
    let mut scans = AxeLog::default();
    let nl = Locale::Nl;

    // Bram has an open order.
    let bram = "bram@example.nl";
    start_and_verify(&app, &browser, "/nl/delete", bram).await;
    assert_eq!(browser.html_lang().await, "nl");
    assert_eq!(
        browser.wait_for("main h1").await.text().await,
        i18n::t(nl, "delete.form.title")
    );
    scans.scan(&browser, &axe, "delete form").await;
    browser
        .wait_for("#postcode")
        .await
        .send_keys("3511 LX")
        .await;
    browser
        .wait_for("#house_number")
        .await
        .send_keys("4a")
        .await;
    let confirm = browser.wait_for("#confirm").await;
    confirm.click().await;
    assert_eq!(confirm.prop("checked").await, true, "consent ticked");
    // Ticking the box scrolled the page; the screenshot shows it from the top.
    browser.execute("window.scrollTo(0, 0);").await;
    browser.screenshot("customer-delete-form-nl.png").await;
    browser.wait_for("#submit-request").await.click().await;

    let status = browser.wait_for("#request-status").await;
    status.assert_visible().await;
    let shown = status.text().await;
    let reason = i18n::t(nl, "delete.reasons.open_order");
    assert!(
        shown.contains(&reason),
        "blocked status shows {shown:?}, expected the reason {reason:?}"
    );
    assert!(shown.contains(&i18n::t(nl, "delete.blocked_intro")));
    scans.scan(&browser, &axe, "delete blocked").await;
    browser.screenshot("customer-delete-blocked-nl.png").await;

    // Anna's account is clean: erased at once.
    let anna = "anna@example.nl";
    start_and_verify(&app, &browser, "/nl/delete", anna).await;
    browser
        .wait_for("#postcode")
        .await
        .send_keys("1012 AB")
        .await;
    browser
        .wait_for("#house_number")
        .await
        .send_keys("12")
        .await;
    browser.wait_for("#confirm").await.click().await;
    browser.wait_for("#submit-request").await.click().await;
    let status = browser.wait_for("#request-status").await;
    let shown = status.text().await;
    let completed = i18n::t(nl, "delete.completed");
    assert!(
        shown.contains(&completed),
        "status shows {shown:?}, expected {completed:?}"
    );
    scans.scan(&browser, &axe, "delete completed").await;

    // The proof of erasure: the second mail to Anna, in Dutch.
    let mails = app.mail.wait_for(anna, 2).await;
    assert_eq!(mails.len(), 2, "a code mail and the proof");
    assert!(
        mails[1]
            .text
            .contains(&i18n::t(nl, "email.erasure_proof.retained_why")),
        "the proof in Dutch: {}",
        mails[1].text
    );

    scans.print();
    browser.close().await;
    app.stop().await;
}

fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        // report.pdf is binary; only the text files are looked at here.
        let s = String::from_utf8_lossy(&b).into_owned();
        out.insert(f.name().unwrap().to_string(), s);
    }
    out
}

/// Export in Swedish: prepared in one browser (which refreshes itself until
/// the file is ready), then the mailed link opened in a fresh browser, which
/// must give a new code before the download.
#[tokio::test(flavor = "multi_thread")]
async fn export_in_swedish_and_the_mailed_link_in_a_fresh_browser_with_axe() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await;
    let axe = axe_source();
    let mut scans = AxeLog::default();
    let sv = Locale::Sv;
    let email = "sven@example.se";

    let id = start_and_verify(&app, &browser, "/sv/export", email).await;
    assert_eq!(browser.html_lang().await, "sv");
    assert_eq!(
        browser.wait_for("main h1").await.text().await,
        i18n::t(sv, "kinds.export.title")
    );
    scans.scan(&browser, &axe, "export").await;
    browser.screenshot("customer-export-sv.png").await;
    browser.wait_for("#submit-request").await.click().await;
    browser.wait_for("#request-status").await;

    // While the archive is being made the page refreshes itself every 5 s;
    // here the test reloads it instead of waiting.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refreshing_seen = false;
    loop {
        if browser.find("#download").await.is_some() {
            break;
        }
        if let Some(meta) = browser.find(r#"meta[http-equiv="refresh"]"#).await {
            assert_eq!(meta.attr("content").await.as_deref(), Some("5"));
            refreshing_seen = true;
        }
        assert!(
            Instant::now() < deadline,
            "no download button within 30 s: {}",
            browser.wait_for("#request-status").await.text().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.refresh().await;
        browser.wait_for("#request-status").await;
    }
    println!("export: processing page with meta refresh seen: {refreshing_seen}");
    let download = browser.wait_for("#download").await;
    download.assert_visible().await;
    assert_eq!(download.text().await, i18n::t(sv, "export.download"));
    assert!(
        browser
            .find(r#"meta[http-equiv="refresh"]"#)
            .await
            .is_none(),
        "the ready page no longer refreshes itself"
    );
    scans.scan(&browser, &axe, "export ready").await;

    // The mailed link (the export_ready mail).
    let mails = app.mail.wait_for(email, 2).await;
    let re = regex::Regex::new(r"http://127\.0\.0\.1:\d+(/sv/download/[^\s]+)").unwrap();
    let link = mails
        .iter()
        .find_map(|m| re.captures(&m.text).map(|c| c[1].to_string()))
        .expect("an export_ready mail with a /sv/download/ link");
    assert!(link.starts_with(&format!("/sv/download/{id}?")), "{link}");
    browser.close().await;

    // A fresh browser (own chromedriver session and profile) asks for a new code.
    let fresh = Browser::launch().await;
    let downloads = tempfile::tempdir().unwrap();
    fresh
        .cdp(
            "Browser.setDownloadBehavior",
            serde_json::json!({
                "behavior": "allow",
                "downloadPath": downloads.path().display().to_string(),
            }),
        )
        .await;
    let before = app.mail.to(email).len();
    fresh.goto(&app.url(&link)).await;
    let code_input = fresh.wait_for("#code").await;
    assert_eq!(fresh.html_lang().await, "sv");
    assert_eq!(
        fresh.wait_for("main h1").await.text().await,
        i18n::t(sv, "export.code_title")
    );
    scans.scan(&fresh, &axe, "download code").await;
    let mails = app.mail.wait_for(email, before + 1).await;
    code_input.send_keys(&code_in(mails.last().unwrap())).await;
    fresh.wait_for("#verify-submit").await.click().await;

    // Chromium saves the attachment ...
    let deadline = Instant::now() + Duration::from_secs(15);
    let saved = loop {
        let done: Vec<_> = std::fs::read_dir(downloads.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zip"))
            .collect();
        if let Some(p) = done.first() {
            break p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "Chromium did not save the archive within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let name = saved.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("privacy-export-"), "{name}");
    let files = unzip(&std::fs::read(&saved).unwrap());
    assert!(files["data.json"].contains("Sven Åström"));

    // ... and the file URL answers this browser's session with the zip.
    let (path, query) = link.split_once('?').unwrap();
    let file_url = app.url(&format!("{path}/file?{query}"));
    let cookies = fresh.cookie_header().await;
    assert!(
        !cookies.is_empty(),
        "the fresh browser has a session cookie"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .get(&file_url)
        .header(reqwest::header::COOKIE, cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the verified session gets the file");
    assert_eq!(res.headers()["content-type"], "application/zip");
    let files = unzip(&res.bytes().await.unwrap());
    let data: serde_json::Value = serde_json::from_str(&files["data.json"]).unwrap();
    assert_eq!(data["profile"]["name"], "Sven Åström");
    assert!(files["report.html"].contains("<html lang=\"sv\">"));

    // Without the session the link asks for a code again.
    let res = http.get(&file_url).send().await.unwrap();
    assert_eq!(res.status(), 303, "no session, no file");

    scans.print();
    fresh.close().await;
    app.stop().await;
}

/// Email change in English onto an address that already has an account:
/// both addresses proven, then the customer chooses option B.
#[tokio::test(flavor = "multi_thread")]
async fn email_change_in_english_with_a_collision_and_option_b_with_axe() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await;
    let axe = axe_source();
    let mut scans = AxeLog::default();
    let en = Locale::En;
    let (old, new) = ("eva.old@example.nl", "eva@example.nl");

    let id = start_and_verify(&app, &browser, "/en/change-email", old).await;
    assert_eq!(browser.html_lang().await, "en");
    let new_email = browser.wait_for("#new_email").await;
    new_email.send_keys(new).await;
    browser.wait_for("#submit-request").await.click().await;

    // The code sent to the new address.
    let code_input = browser.wait_for("#code").await;
    // The same request page, now with the form for the new address's code.
    browser
        .wait_for(&format!(r#"form[action="/en/r/{id}/new-code"]"#))
        .await;
    assert_eq!(
        browser.wait_for("main h1").await.text().await,
        i18n::t(en, "change_email.code.title")
    );
    let mails = app.mail.wait_for(new, 1).await;
    code_input.send_keys(&code_in(&mails[0])).await;
    browser.wait_for("#verify-submit").await.click().await;

    // The address is taken: options A and B.
    let option_b = browser.wait_for("#option-b").await;
    let option_a = browser.wait_for("#option-a").await;
    assert_eq!(
        browser.wait_for("main h1").await.text().await,
        i18n::t(en, "change_email.collision.title")
    );
    option_a.assert_visible().await;
    option_b.assert_visible().await;
    let labels = browser.wait_for("fieldset.options").await.text().await;
    for key in [
        "change_email.collision.a_title",
        "change_email.collision.b_title",
    ] {
        assert!(labels.contains(&i18n::t(en, key)), "{key} in {labels:?}");
    }
    scans.scan(&browser, &axe, "collision").await;
    option_b.click().await;
    assert_eq!(option_b.prop("checked").await, true);
    assert_eq!(option_a.prop("checked").await, false);
    // Option B deletes the other account: its postcode and house number.
    browser
        .wait_for("#postcode")
        .await
        .send_keys("6811 AA")
        .await;
    browser.wait_for("#house_number").await.send_keys("3").await;
    browser.screenshot("customer-collision-en.png").await;
    browser.wait_for("#choice-submit").await.click().await;

    // The status page confirms the choice and the deadline.
    let status = browser.wait_for("#request-status").await;
    wait_for_path(&browser, &format!("/en/r/{id}")).await;
    let long_due = i18n::long_date(en, due_date(&app, &id).await);
    let sentence = i18n::t_args(
        en,
        "change_email.choice_recorded",
        &[("option", "B"), ("due_date", &long_due)],
    );
    let shown = status.text().await;
    assert!(
        shown.contains(&sentence),
        "status shows {shown:?}, expected {sentence:?}"
    );
    scans.scan(&browser, &axe, "choice recorded").await;
    let db_status: String = sqlx::query_scalar("SELECT status FROM requests WHERE id = $1")
        .bind(&id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(db_status, "escalated", "staff carry out option B");

    scans.print();
    browser.close().await;
    app.stop().await;
}
