//! Export: the archive's contents, delivery through a signed 24-hour link,
//! and deletion after expiry.

mod common;

use std::io::Read;

use common::{code_in, location, page, TestApp};
use privacy_portal::{domain::Locale, i18n::t};
use serde_json::{json, Value};

async fn submit(app: &TestApp, id: &str, token: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn wait_completed(app: &TestApp, id: &str, token: &str) -> Value {
    for _ in 0..600 {
        let v: Value = app
            .client
            .get(app.url(&format!("/api/v1/requests/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] != "processing" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("export still processing after 30 s");
}

/// The archive's stored (encrypted) bytes, chunk after chunk; empty once
/// deleted.
async fn stored_archive(app: &TestApp, id: &str) -> Vec<u8> {
    let chunks: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT c.data FROM export_chunks c JOIN exports e ON e.file_name = c.archive_id \
         WHERE e.request_id = $1 ORDER BY c.seq",
    )
    .bind(id)
    .fetch_all(app.state().db.read())
    .await
    .unwrap();
    chunks.into_iter().flat_map(|(c,)| c).collect()
}

fn unzip_raw(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        out.insert(f.name().unwrap().to_string(), b);
    }
    out
}

/// The files as text; only `report.pdf` is binary (read it with
/// [`pdf_text`]), and is kept here lossily so its name is listed.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    unzip_raw(bytes)
        .into_iter()
        .map(|(name, b)| {
            let text = match String::from_utf8(b) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            (name, text)
        })
        .collect()
}

/// The text of the archive's `report.pdf`, decoded through the embedded
/// font's ToUnicode map, with runs of white space made single spaces.
fn pdf_text(archive: &[u8]) -> String {
    let pdf = &unzip_raw(archive)["report.pdf"];
    assert!(pdf.starts_with(b"%PDF-"), "a PDF file");
    let text = pdf_extract::extract_text_from_mem(pdf).expect("report.pdf opens");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archive_holds_everything_with_the_art15_cover_in_the_customers_language() {
    let app = TestApp::spawn().await;
    let (id, token) = app.verified("export", "anna@example.nl", "nl").await;
    let (status, body) = submit(&app, &id, &token).await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "processing");
    let done = wait_completed(&app, &id, &token).await;
    assert_eq!(done["status"], "completed");
    assert!(done["download_expires_at"].as_str().is_some());

    let res = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let archive = res.bytes().await.unwrap();
    let files = unzip(&archive);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        [
            "contacts.csv",
            "data.json",
            "ip_log.csv",
            "orders.csv",
            "payments.csv",
            "profile.csv",
            "report.html",
            "report.pdf"
        ]
    );
    let data: Value = serde_json::from_str(&files["data.json"]).unwrap();
    assert_eq!(data["profile"]["name"], "Anna de Vries");
    assert_eq!(
        data["profile"]["loyalty_tier"], "gold",
        "unknown fields kept"
    );
    assert_eq!(
        data["profile"]["postcode"], "1012 AB",
        "the archive has everything"
    );
    assert_eq!(data["orders"][0]["id"], "O-1001");
    assert_eq!(data["ip_log"][0]["ip"], "203.0.113.7");
    assert!(
        files["orders.csv"].starts_with('\u{feff}'),
        "BOM for spreadsheets"
    );
    assert!(files["orders.csv"].contains("\"O-1001\""));
    let report = &files["report.html"];
    assert!(report.contains("<html lang=\"nl\">"));
    assert!(report.contains("Anna de Vries"));
    for key in [
        "privacy.purposes_title",
        "privacy.categories_title",
        "privacy.recipients_title",
        "privacy.source_title",
        "privacy.automated_title",
        "export.report.rights_title",
    ] {
        assert!(
            report.contains(&privacy_portal::export::escape(&t(Locale::Nl, key))),
            "{key} in the report"
        );
    }
    assert!(
        report.contains("autoriteitpersoonsgegevens.nl"),
        "the supervisory authority"
    );

    // The PDF says the same, in Dutch, as text a reader can search and copy.
    let pdf = pdf_text(&archive);
    assert!(pdf.contains("Anna de Vries"), "{pdf}");
    assert!(pdf.contains(&t(Locale::Nl, "export.report.title")), "{pdf}");
    for key in [
        "privacy.controller_title",
        "privacy.purposes_title",
        "privacy.categories_title",
        "privacy.recipients_title",
        "privacy.source_title",
        "privacy.automated_title",
        "export.report.rights_title",
        "export.report.profile",
        "export.report.orders",
    ] {
        assert!(pdf.contains(&t(Locale::Nl, key)), "{key} in the PDF: {pdf}");
    }
    assert!(
        pdf.contains(&t(Locale::Nl, "authority.nl")),
        "the supervisory authority in the PDF: {pdf}"
    );
    assert!(pdf.contains("autoriteitpersoonsgegevens.nl"), "{pdf}");
    assert!(pdf.contains("O-1001"), "the orders are listed: {pdf}");

    // At rest the archive is encrypted, in the database.
    let raw = stored_archive(&app, &id).await;
    assert!(raw.starts_with(b"PPX1"));
    assert!(!String::from_utf8_lossy(&raw).contains("Anna"));
    // Staff get the other systems to add by hand, by the same deadline.
    let task: String = sqlx::query_scalar("SELECT kind FROM staff_tasks WHERE request_id = $1")
        .bind(&id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(task, "export_other_systems");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_values_are_inert_in_the_report_and_the_csv() {
    let app = TestApp::spawn().await;
    let line = json!({"external_id":"C-666","email":"mallory@example.nl","name":"<script>alert(1)</script>",
        "contacts":[{"at":"2024-01-01T10:00:00Z","channel":"mail","summary":"=HYPERLINK(\"http://x\")"}]});
    privacy_portal::import::import(app.state(), std::io::Cursor::new(line.to_string()))
        .await
        .unwrap();
    let (id, token) = app.verified("export", "mallory@example.nl", "en").await;
    submit(&app, &id, &token).await;
    wait_completed(&app, &id, &token).await;
    let bytes = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let files = unzip(&bytes);
    assert!(!files["report.html"].contains("<script>"));
    assert!(files["report.html"].contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // In the PDF it is only text.
    assert!(pdf_text(&bytes).contains("<script>alert(1)</script>"));
    assert!(
        files["contacts.csv"].contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "{}",
        files["contacts.csv"]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_account_means_no_data_and_the_customer_is_told() {
    let app = TestApp::spawn().await;
    let email = "ghost@example.nl";
    let (id, token) = app.verified("export", email, "en").await;
    let (status, body) = submit(&app, &id, &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["outcome"], "no_data");
    let mail = app.mail.wait_for(email, 2).await.remove(1);
    assert!(
        mail.text.contains("We don't hold any data"),
        "{}",
        mail.text
    );
    let res = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // No archive was ever made: not found, not "expired".
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_found");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mailed_link_needs_a_fresh_code_and_expires() {
    let app = TestApp::spawn().await;
    let email = "sven@example.se";
    let (id, token) = app.verified("export", email, "sv").await;
    submit(&app, &id, &token).await;
    wait_completed(&app, &id, &token).await;
    let mail = app.mail.wait_for(email, 2).await.remove(1);
    let re = regex::Regex::new(r"http://127\.0\.0\.1:\d+(/sv/download/[^\s]+)").unwrap();
    let link = re.captures(&mail.text).expect("a download link")[1].to_string();

    // Another browser: a new code first, then the download.
    let browser = common::client();
    let (status, body, csrf) = page(&browser, &app.url(&link)).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"code\""));
    let code = code_in(&app.mail.wait_for(email, 3).await[2]);
    let (exp, sig) = {
        let q = link.split_once('?').unwrap().1;
        let mut exp = String::new();
        let mut sig = String::new();
        for kv in q.split('&') {
            match kv.split_once('=') {
                Some(("exp", v)) => exp = v.to_string(),
                Some(("sig", v)) => sig = v.to_string(),
                _ => {}
            }
        }
        (exp, sig)
    };
    let res = browser
        .post(app.url(&format!("/sv/download/{id}/code")))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("code", code),
            ("exp", exp.clone()),
            ("sig", sig.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = browser.get(app.url(&location(&res))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let archive = res.bytes().await.unwrap();
    let files = unzip(&archive);
    assert!(files["data.json"].contains("Sven Åström"));
    assert!(files["report.html"].contains("<html lang=\"sv\">"));
    // å and ö come through the embedded font, as text.
    let pdf = pdf_text(&archive);
    assert!(pdf.contains("Sven Åström"), "{pdf}");
    for key in [
        "export.report.title",
        "privacy.purposes_title",
        "export.report.rights_title",
    ] {
        assert!(pdf.contains(&t(Locale::Sv, key)), "{key} in the PDF: {pdf}");
    }

    // A tampered link: a friendly page in Swedish, no file.
    // Flip the last character so the signature always differs, whatever it was.
    let last = if sig.ends_with('0') { '1' } else { '0' };
    let tampered = link.replace(&sig, &format!("{}{last}", &sig[..sig.len() - 1]));
    let (status, body, _) = page(&common::client(), &app.url(&tampered)).await;
    assert_eq!(status, 410);
    assert!(body.contains(&t(Locale::Sv, "export.expired_title")));
    assert!(body.contains("href=\"/sv/export\""));

    // After 24 hours: 410 everywhere, and the sweeper deletes the file.
    sqlx::query("UPDATE exports SET expires_at = 1000 WHERE request_id = $1")
        .bind(&id)
        .execute(app.state().db.write())
        .await
        .unwrap();
    let res = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "download_expired"
    );
    let (status, _, _) = page(&browser, &app.url(&link)).await;
    assert_eq!(status, 410);
    assert!(!stored_archive(&app, &id).await.is_empty());
    let report = privacy_portal::workflow::sweep::run(app.state())
        .await
        .unwrap();
    assert_eq!(report.archives_deleted, 1);
    assert!(
        stored_archive(&app, &id).await.is_empty(),
        "the sweeper deletes the chunks"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = 'archive_deleted'", &id).await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_browser_that_verified_downloads_straight_away() {
    let app = TestApp::spawn().await;
    let email = "emma@example.com";
    let client = common::client();
    let (_, _, csrf) = page(&client, &app.url("/en/export")).await;
    let res = client
        .post(app.url("/en/export"))
        .form(&[("csrf", csrf.unwrap()), ("email", email.into())])
        .send()
        .await
        .unwrap();
    let code_url = location(&res);
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let code = code_in(&app.mail.wait_for(email, 1).await[0]);
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code)])
        .send()
        .await
        .unwrap();
    let request_url = location(&res);
    let (_, body, csrf) = page(&client, &app.url(&request_url)).await;
    assert!(body.contains("id=\"submit-request\""));
    let res = client
        .post(app.url(&format!("{request_url}/submit")))
        .form(&[("csrf", csrf.unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let mut href = None;
    let re = regex::Regex::new(r#"id="download" href="([^"]+)""#).unwrap();
    for _ in 0..300 {
        let (_, body, _) = page(&client, &app.url(&request_url)).await;
        if let Some(c) = re.captures(&body) {
            href = Some(c[1].replace("&amp;", "&").replace("&#x2F;", "/"));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let href = href.expect("a download button once ready");
    let res = client.get(app.url(&href)).send().await.unwrap();
    assert_eq!(res.status(), 303, "verified session: straight to the file");
    let res = client.get(app.url(&location(&res))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(unzip(&res.bytes().await.unwrap())["data.json"].contains("Emma Clarke"));
    assert_eq!(app.mail.to(email).len(), 2, "no extra code needed");
    app.stop().await;
}
