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
    // Dutch Excel splits on ;, with Dutch headers.
    let first = files["orders.csv"].lines().next().unwrap().to_string();
    assert_eq!(
        first.trim_start_matches('\u{feff}').split(';').count(),
        6,
        "{first}"
    );
    assert!(first.contains("\"Bestelnummer\";\"Besteld op\""), "{first}");
    assert!(files["orders.csv"].contains("\"O-1001\";"));
    assert!(files["profile.csv"].contains("\"Klantnummer\";\"C-1001\""));
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

/// Imports `mallory@example.nl` as `line`, exports her data and returns the
/// downloaded archive.
async fn export_of(app: &TestApp, line: Value) -> Vec<u8> {
    let report =
        privacy_portal::import::import(app.state(), std::io::Cursor::new(line.to_string()))
            .await
            .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let (id, token) = app.verified("export", "mallory@example.nl", "en").await;
    submit(app, &id, &token).await;
    let done = wait_completed(app, &id, &token).await;
    assert_eq!(done["status"], "completed", "{done}");
    app.client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_values_are_inert_in_the_report_and_the_csv() {
    let app = TestApp::spawn().await;
    let line = json!({"external_id":"C-666","email":"mallory@example.nl","name":"<script>alert(1)</script>",
        "contacts":[{"at":"2024-01-01T10:00:00Z","channel":"mail","summary":"=HYPERLINK(\"http://x\")"}]});
    let bytes = export_of(&app, line).await;
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
    // Written for people: labels, kronor, a Swedish long date; no stored keys.
    let report = &files["report.html"];
    assert!(
        report.contains("name=\"viewport\" content=\"width=device-width, initial-scale=1\""),
        "a phone layout"
    );
    assert!(report.contains(">Saldo<"), "a label, not balance_cents");
    assert!(!report.contains("balance_cents") && !report.contains("placed_at"));
    assert!(report.contains("599,00\u{a0}kr"), "the amount in kronor");
    assert!(report.contains(">Levererad<"), "the status in Swedish");
    let months = [
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ];
    let date = regex::Regex::new(r"\d{1,2} ([a-zåäö]+) \d{4} kl\. \d{2}:\d{2}").unwrap();
    assert!(
        date.captures_iter(report)
            .any(|c| months.contains(&c.get(1).unwrap().as_str())),
        "a local long date and time"
    );
    assert!(!report.contains("{\""), "no JSON in the report");
    // A Dutch company's Swedish customer: the lead authority and IMY (Art. 77).
    assert!(report.contains("autoriteitpersoonsgegevens.nl") && report.contains("www.imy.se"));
    assert!(
        !report.contains("599,00\u{a0}€"),
        "the Swish payment is in kronor too"
    );
    // Swedish spreadsheets split on ; and read a decimal comma.
    let orders = &files["orders.csv"];
    assert!(
        orders.starts_with("\u{feff}\"Ordernummer\";"),
        "headers in Swedish: {orders}"
    );
    assert!(orders.contains(";\"599,00\";\"SEK\""), "{orders}");
    assert!(
        files["data.json"].contains("\"balance_cents\":0"),
        "data.json keeps the keys"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn hidden_and_fullwidth_formulas_are_inert_and_negative_amounts_stay_numbers() {
    let app = TestApp::spawn().await;
    let line = json!({"external_id":"C-667","email":"mallory@example.nl","name":"Mallory",
        "orders":[{"id":"R-1","placed_at":"2024-01-02T10:00:00Z","status":"cancelled","total_cents":-1250,"currency":"EUR"}],
        "payments":[{"method":"card","amount_cents":-1250,"collected_at":"2024-01-03T10:00:00Z"}],
        "contacts":[
            {"at":"2024-01-01T10:00:00Z","channel":"mail","summary":" =1+1"},
            {"at":"2024-01-01T11:00:00Z","channel":"mail","summary":"\u{a0}@SUM(A1)"},
            {"at":"2024-01-01T12:00:00Z","channel":"mail","summary":"\u{ff1d}HYPERLINK(\"http://x\")"},
            {"at":"2024-01-01T13:00:00Z","channel":"mail","summary":"-1+1"}]});
    let files = unzip(&export_of(&app, line).await);
    let contacts = &files["contacts.csv"];
    for inert in [
        "\"' =1+1\"",
        "\"'\u{a0}@SUM(A1)\"",
        "\"'\u{ff1d}HYPERLINK(\"\"http://x\"\")\"",
        "\"'-1+1\"",
    ] {
        assert!(contacts.contains(inert), "{inert} in {contacts}");
    }
    assert!(
        files["orders.csv"].contains(",\"-12.50\","),
        "{}",
        files["orders.csv"]
    );
    assert!(
        files["payments.csv"].contains("\"card\",\"-12.50\""),
        "{}",
        files["payments.csv"]
    );
    app.stop().await;
}

// ---------- export jobs that survive a restart; archives every instance reads ----------

fn now() -> i64 {
    privacy_portal::store::now()
}

/// What an instance that died mid-build leaves behind: the request in
/// `processing`, its job leased (until `locked_until`) to an attempt that
/// will never finish, and a chunk that attempt wrote.
async fn left_by_a_dead_instance(app: &TestApp, id: &str, account_id: &str, locked_until: i64) {
    let mut tx = app.state().db.begin().await.unwrap();
    sqlx::query("UPDATE requests SET status = 'processing' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO export_chunks (archive_id, seq, data) VALUES ('dead-attempt', 0, $1)")
        .bind(vec![7u8; 4096])
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO export_jobs (request_id, account_id, attempts, next_attempt_at, locked_until, lease, created_at) \
         VALUES ($1, $2, 1, $3, $4, 'dead-attempt', $3)",
    )
    .bind(id)
    .bind(account_id)
    .bind(now() - 300)
    .bind(locked_until)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn account_of(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM customers WHERE email = $1")
        .bind(email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap()
}

async fn api_archive(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_whose_instance_died_is_finished_by_another_and_the_customer_gets_the_mail() {
    let mut a = TestApp::spawn().await;
    let email = "anna@example.nl";
    let (id, token) = a.verified("export", email, "en").await;
    let b = a.spawn_sibling().await;
    // Instance A dies while building; its lease still runs for an hour.
    a.server.take().unwrap().stop().await;
    let account = account_of(&b, email).await;
    left_by_a_dead_instance(&b, &id, &account, now() + 3600).await;

    // Meanwhile the archive is "still being prepared", never "expired".
    let res = api_archive(&b, &id, &token).await;
    assert_eq!(res.status(), 409);
    assert!(res.headers().contains_key("retry-after"));
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "export_processing");
    assert_eq!(
        problem["detail"],
        t(Locale::En, "errors.export_processing").as_str()
    );
    // A signed link says the same, as a page that reloads itself.
    let link =
        privacy_portal::workflow::export::download_path(b.state(), &id, Locale::Sv, now() + 3600);
    let (status, body, _) = page(&common::client(), &b.url(&link)).await;
    assert_eq!(status, 409);
    assert!(
        body.contains(&t(Locale::Sv, "export.preparing_title")),
        "{body}"
    );
    assert!(body.contains("http-equiv=\"refresh\""));

    // The lease runs out: instance B takes the job over and finishes it.
    sqlx::query("UPDATE export_jobs SET locked_until = $1 WHERE request_id = $2")
        .bind(now() - 1)
        .bind(&id)
        .execute(b.state().db.write())
        .await
        .unwrap();
    b.state().export_notify.notify_one();
    let mail = b.mail.wait_for(email, 2).await.remove(1);
    assert!(
        mail.text.contains(&format!("/en/download/{id}?exp=")),
        "{}",
        mail.text
    );
    let done = wait_completed(&b, &id, &token).await;
    assert_eq!(done["status"], "completed");
    let res = api_archive(&b, &id, &token).await;
    assert_eq!(res.status(), 200);
    assert!(unzip(&res.bytes().await.unwrap())["data.json"].contains("Anna de Vries"));
    let ready: Value = sqlx::query_scalar::<_, String>(
        "SELECT detail FROM audit_events WHERE request_id = $1 AND action = 'export_ready'",
    )
    .bind(&id)
    .fetch_one(b.state().db.read())
    .await
    .map(|d| serde_json::from_str(&d).unwrap())
    .unwrap();
    assert_eq!(ready["attempt"], 2, "the dead attempt counted as the first");
    assert_eq!(
        b.scalar(
            "SELECT COUNT(*) FROM export_jobs WHERE request_id = $1",
            &id
        )
        .await,
        0
    );

    // What the dead attempt wrote goes with the next sweep.
    privacy_portal::workflow::sweep::run(b.state())
        .await
        .unwrap();
    assert_eq!(
        b.scalar(
            "SELECT COUNT(*) FROM export_chunks WHERE archive_id = $1",
            "dead-attempt"
        )
        .await,
        0
    );
    assert!(
        !stored_archive(&b, &id).await.is_empty(),
        "the new archive stays"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_started_before_jobs_were_stored_is_picked_up_after_a_restart() {
    let mut a = TestApp::spawn().await;
    let email = "sven@example.se";
    let (id, token) = a.verified("export", email, "sv").await;
    // The previous version built in a task that died with the process: the
    // request stayed `processing` with no job and no archive.
    sqlx::query("UPDATE requests SET status = 'processing' WHERE id = $1")
        .bind(&id)
        .execute(a.state().db.write())
        .await
        .unwrap();
    a.server.take().unwrap().stop().await;
    let b = a.spawn_sibling().await;
    let mail = b.mail.wait_for(email, 2).await.remove(1);
    assert!(
        mail.text.contains(&format!("/sv/download/{id}?exp=")),
        "{}",
        mail.text
    );
    assert_eq!(wait_completed(&b, &id, &token).await["status"], "completed");
    assert_eq!(
        b.scalar(
            "SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = 'export_resumed'",
            &id
        )
        .await,
        1
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_that_keeps_failing_goes_to_staff_after_the_limit() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let (id, token) = app.verified("export", email, "en").await;
    // The connector cannot deliver the account (it is gone): every attempt fails.
    left_by_a_dead_instance(&app, &id, "no-such-account", now() - 1).await;
    app.state().export_notify.notify_one();

    let mut first_wait = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "the job never ended");
        let job: Option<(i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT attempts, lease, next_attempt_at FROM export_jobs WHERE request_id = $1",
        )
        .bind(&id)
        .fetch_optional(app.state().db.read())
        .await
        .unwrap();
        let Some((attempts, lease, next_at)) = job else {
            break;
        };
        if lease.is_none() && next_at > now() {
            // A failure recorded with its backoff; let that time pass.
            first_wait.get_or_insert((attempts, next_at - now()));
            sqlx::query("UPDATE export_jobs SET next_attempt_at = 0 WHERE request_id = $1 AND lease IS NULL")
                .bind(&id)
                .execute(app.state().db.write())
                .await
                .unwrap();
            app.state().export_notify.notify_one();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (attempts, wait) = first_wait.expect("a retry was scheduled");
    assert_eq!(attempts, 2, "the dead attempt and the first failure");
    assert!(
        wait >= 100,
        "the second failure waits two minutes, got {wait} s"
    );

    // Staff have it, with the reason; the customer's archive call says so.
    let v: Value = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "escalated");
    assert_eq!(v["reasons"], json!(["export_failed"]));
    let staff = app.staff_token().await;
    let list: Value = app
        .client
        .get(app.url("/api/v1/staff/cases"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let case = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .expect("the case is in the staff queue");
    assert_eq!(case["reasons"], json!(["export_failed"]));
    let count = |action: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM audit_events WHERE request_id = $1 AND action = $2",
            )
            .bind(id)
            .bind(action)
            .fetch_one(app.state().db.read())
            .await
            .unwrap()
        }
    };
    // The dead attempt was the first; attempts 2 to 4 were retried, the
    // fifth failure handed the request over.
    assert_eq!(count("export_retry").await, 3);
    assert_eq!(count("export_failed").await, 1);
    let res = api_archive(&app, &id, &token).await;
    assert_eq!(res.status(), 404, "no archive; not 'expired'");
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM export_chunks WHERE archive_id <> $1",
            "dead-attempt"
        )
        .await,
        0
    );
    assert!(!common::logs().contains(email), "no address in the logs");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_due_job_is_leased_to_one_worker_at_a_time() {
    use privacy_portal::store::exports;
    let app = TestApp::spawn().await;
    let (id, _) = app.verified("export", "emma@example.com", "en").await;
    // Due only in the future, so the app's own worker leaves it alone; the
    // claims below run "then".
    let then = now() + 10_000;
    let mut conn = app.state().db.write().acquire().await.unwrap();
    assert!(exports::insert_job(&mut conn, &id, "acc", then)
        .await
        .unwrap());
    drop(conn);
    let race = |at: i64| {
        let claims: Vec<_> = (0..8)
            .map(|_| {
                let db = app.state().db.clone();
                tokio::spawn(async move { exports::claim_job(&db, at, 120).await.unwrap() })
            })
            .collect();
        async move {
            let mut won = vec![];
            for c in claims {
                won.extend(c.await.unwrap());
            }
            won
        }
    };
    let won = race(then).await;
    assert_eq!(won.len(), 1, "one of eight workers gets the job");
    assert_eq!(won[0].attempts, 1);
    assert!(race(then + 60).await.is_empty(), "not while the lease runs");
    let again = race(then + 121).await;
    assert_eq!(again.len(), 1, "after the lease, one worker takes it over");
    assert_eq!(again[0].attempts, 2);
    assert_ne!(again[0].lease, won[0].lease);
    // The first worker's late chunk and hand-over are refused.
    assert!(
        !exports::write_chunk(&app.state().db, &id, &won[0].lease, 0, vec![1])
            .await
            .unwrap()
    );
    let mut tx = app.state().db.begin().await.unwrap();
    assert!(!exports::end_job(&mut tx, &id, &won[0].lease).await.unwrap());
    drop(tx);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_built_on_one_instance_is_downloaded_through_another() {
    let mut a = TestApp::spawn().await;
    // Enough incompressible order notes for an archive of several chunks.
    let orders: Vec<Value> = (0..20_000)
        .map(|i| {
            json!({"id": format!("O-{i:05}"), "placed_at": "2024-05-01T09:00:00Z", "status": "delivered",
                "total_cents": 1000 + i, "currency": "EUR",
                "note": format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())})
        })
        .collect();
    let line = json!({"external_id": "C-BIG", "email": "big@example.nl", "name": "Bram Groot",
        "postcode": "1012 AB", "house_number": "1", "orders": orders});
    let report = privacy_portal::import::import(a.state(), std::io::Cursor::new(line.to_string()))
        .await
        .unwrap();
    assert!(report.errors.is_empty());
    let email = "big@example.nl";
    let (id, token) = a.verified("export", email, "nl").await;
    let (status, _) = submit(&a, &id, &token).await;
    assert_eq!(status, 202);
    assert_eq!(wait_completed(&a, &id, &token).await["status"], "completed");
    let chunks = a
        .scalar(
            "SELECT COUNT(*) FROM export_chunks c JOIN exports e ON e.file_name = c.archive_id WHERE e.request_id = $1",
            &id,
        )
        .await;
    assert!(chunks >= 2, "{chunks} chunk(s)");
    let mail = a.mail.wait_for(email, 2).await.remove(1);

    // Instance A is gone; B serves the archive from the database.
    let b = a.spawn_sibling().await;
    a.server.take().unwrap().stop().await;
    let res = api_archive(&b, &id, &token).await;
    assert_eq!(res.status(), 200);
    let files = unzip(&res.bytes().await.unwrap());
    let data: Value = serde_json::from_str(&files["data.json"]).unwrap();
    assert_eq!(data["profile"]["name"], "Bram Groot");
    assert_eq!(data["orders"].as_array().unwrap().len(), 20_000);
    assert!(files["orders.csv"].contains("\"O-19999\""));

    // The mailed link works through B too: a fresh code, then the file.
    let re = regex::Regex::new(r"http://127\.0\.0\.1:\d+(/nl/download/[^\s]+)").unwrap();
    let link = re.captures(&mail.text).expect("a download link")[1].to_string();
    let browser = common::client();
    let (status, _, csrf) = page(&browser, &b.url(&link)).await;
    assert_eq!(status, 200);
    let code = code_in(&b.mail.wait_for(email, 3).await[2]);
    let q = link.split_once('?').unwrap().1;
    let param = |name: &str| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
            .unwrap()
    };
    let res = browser
        .post(b.url(&format!("/nl/download/{id}/code")))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("code", code),
            ("exp", param("exp")),
            ("sig", param("sig")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = browser.get(b.url(&location(&res))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(unzip(&res.bytes().await.unwrap())["data.json"].contains("Bram Groot"));
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_left_on_disk_by_the_previous_version_still_downloads_and_is_deleted() {
    use std::io::Write;
    let app = TestApp::spawn().await;
    let (id, token) = app.verified("export", "anna@example.nl", "en").await;
    // Before migration 0012 the archive was a file under PORTAL_EXPORT_DIR.
    let plain = b"an archive built before the upgrade".repeat(5000);
    let key = app.state().keys.archive_key(&id);
    let mut w = privacy_portal::export::crypt::EncryptingWriter::new(Vec::new(), &key).unwrap();
    w.write_all(&plain).unwrap();
    let (sealed, size) = w.finish().unwrap();
    let dir = &app.state().settings.export_dir;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("legacy.ppx"), &sealed).unwrap();
    sqlx::query(
        "INSERT INTO exports (request_id, file_name, size_bytes, created_at, expires_at) \
         VALUES ($1, 'legacy.ppx', $2, $3, $4)",
    )
    .bind(&id)
    .bind(size as i64)
    .bind(now())
    .bind(now() + 3600)
    .execute(app.state().db.write())
    .await
    .unwrap();
    let res = api_archive(&app, &id, &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), plain.as_slice());

    sqlx::query("UPDATE exports SET expires_at = 1000 WHERE request_id = $1")
        .bind(&id)
        .execute(app.state().db.write())
        .await
        .unwrap();
    let report = privacy_portal::workflow::sweep::run(app.state())
        .await
        .unwrap();
    assert_eq!(report.archives_deleted, 1);
    assert!(!dir.join("legacy.ppx").exists());
    assert_eq!(api_archive(&app, &id, &token).await.status(), 410);
    app.stop().await;
}
