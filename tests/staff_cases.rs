//! The staff queue, the case page and its actions, intake by staff, the
//! register and the tamper-evident audit trail.

mod common;
mod staff_common;

use chrono::{Duration, Months, NaiveDate, Utc};
use common::{code_in, location, page, TestApp};
use serde_json::{json, Value};
use staff_common::{enrol, login, post_form, StaffUser};

/// A verified question in the queue; returns its id.
async fn question(app: &TestApp, email: &str, locale: &str, message: &str) -> String {
    let (id, token) = app.verified("question", email, locale).await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(&token)
        .json(&json!({"message": message}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    id
}

async fn staff_id(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM staff WHERE email = $1")
        .bind(email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap()
}

async fn events(app: &TestApp, id: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT action, actor FROM audit_events WHERE request_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(app.state().db.read())
        .await
        .unwrap()
}

async fn agent(app: &TestApp) -> StaffUser {
    let a = enrol(app, "agent@kaasboer.example", "agent").await;
    login(app, &a, 0).await;
    a
}

async fn act(
    app: &TestApp,
    user: &StaffUser,
    id: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    post_form(
        app,
        &user.client,
        &format!("/staff/cases/{id}"),
        &format!("/staff/cases/{id}/{action}"),
        fields,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_action_writes_its_audit_event_with_the_staff_member() {
    let app = TestApp::spawn().await;
    let email = "emma@example.com";
    let id = question(&app, email, "en", "Which data do you share with couriers?").await;
    let a = agent(&app).await;
    let me = format!("staff:{}", staff_id(&app, &a.email).await);

    let (status, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{id}?lang=en"))).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Which data do you share with couriers?"),
        "the customer's words"
    );
    assert!(
        body.contains("Code sent to the email address"),
        "how identity was verified"
    );
    assert!(
        body.contains("emailed to the customer"),
        "warning that texts are mailed"
    );

    let res = act(
        &app,
        &a,
        &id,
        "note",
        &[("text", "Checked with logistics.")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/staff/cases/{id}?done=note"));
    let me_id = staff_id(&app, &a.email).await;
    let res = act(&app, &a, &id, "assign", &[("assignee", &me_id)]).await;
    assert_eq!(res.status(), 303);
    let res = act(
        &app,
        &a,
        &id,
        "ask",
        &[("text", "Which order do you mean?")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = act(
        &app,
        &a,
        &id,
        "extend",
        &[("months", "2"), ("text", "We need to ask three couriers.")],
    )
    .await;
    assert_eq!(res.status(), 303);
    // Once only.
    let res = act(
        &app,
        &a,
        &id,
        "extend",
        &[("months", "1"), ("text", "Again.")],
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("already been extended"));

    // Mails so far: code, confirmation, question, extension. The note was not mailed.
    let mails = app.mail.wait_for(email, 4).await;
    assert!(mails[2].text.contains("Which order do you mean?"));
    assert!(
        mails[3].subject.contains("we need more time"),
        "{}",
        mails[3].subject
    );
    assert!(mails[3].text.contains("We need to ask three couriers."));
    let row: (String, i64) =
        sqlx::query_as("SELECT due_date, extension_months FROM requests WHERE id = $1")
            .bind(&id)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(row.1, 2);
    let due = NaiveDate::parse_from_str(&row.0, "%Y-%m-%d").unwrap();
    assert!(mails[3].text.contains(&privacy_portal::i18n::long_date(
        privacy_portal::domain::Locale::En,
        due
    )));
    assert!(mails
        .iter()
        .all(|m| !m.text.contains("Checked with logistics")));

    // Reply: previewed first (nothing sent), then sent; it answers the question.
    let res = act(
        &app,
        &a,
        &id,
        "reply",
        &[("text", "We share your name and address only.")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let preview = res.text().await.unwrap();
    assert!(preview.contains("We share your name and address only."));
    assert!(
        preview.contains("Answer to your request"),
        "subject in the preview"
    );
    assert_eq!(app.mail.to(email).len(), 4);
    let res = act(
        &app,
        &a,
        &id,
        "reply",
        &[
            ("text", "We share your name and address only."),
            ("step", "send"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let mails = app.mail.wait_for(email, 5).await;
    assert!(mails[4]
        .text
        .contains("We share your name and address only."));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'completed'",
            &id
        )
        .await,
        1
    );

    let evs = events(&app, &id).await;
    let staff_events: Vec<&str> = evs
        .iter()
        .filter(|(_, actor)| *actor == me)
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(
        staff_events,
        [
            "note_added",
            "assigned",
            "info_requested",
            "extended",
            "replied"
        ]
    );

    // The history on the case page shows the note and the reply.
    let (_, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{id}"))).await;
    assert!(body.contains("Checked with logistics."));
    assert!(body.contains("Deadline extended"));
    // Closed: no more customer actions.
    assert!(!body.contains("id=\"reject-form\""));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejection_mail_in_the_customers_language_names_the_authority_and_the_court() {
    let app = TestApp::spawn().await;
    let email = "sven@example.se";
    let id = question(&app, email, "sv", "Radera allt om mig i bokföringen.").await;
    let a = agent(&app).await;
    // Reply templates come from the company configuration, in the
    // customer's language (Swedish), titled in the staff member's (English).
    let (_, body, _) = page(
        &a.client,
        &app.url(&format!(
            "/staff/cases/{id}?lang=en&template=need_more_information"
        )),
    )
    .await;
    assert!(body.contains("More information needed"), "{body}");
    assert!(body.contains("För att hantera din begäran behöver vi lite mer information"));
    let res = act(
        &app,
        &a,
        &id,
        "reject",
        &[("text", "Bokföringen måste sparas i sju år enligt lag.")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let mails = app.mail.wait_for(email, 3).await;
    let m = &mails[2];
    assert!(m.subject.contains("vårt beslut"), "{}", m.subject);
    assert!(m
        .text
        .contains("Bokföringen måste sparas i sju år enligt lag."));
    assert!(m.text.contains("tillsynsmyndigheten"));
    assert!(
        m.text.contains("Autoriteit Persoonsgegevens"),
        "the company's (NL) authority"
    );
    assert!(m.text.contains("https://autoriteitpersoonsgegevens.nl/"));
    assert!(m.text.contains("domstol"), "the right to a judicial remedy");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'rejected' AND outcome = 'rejected'", &id).await, 1);
    // A closed case cannot be rejected again (compare-and-set).
    let res = act(
        &app,
        &a,
        &id,
        "note",
        &[("text", "Customer called, understood.")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let (_, body, csrf) = page(&a.client, &app.url(&format!("/staff/cases/{id}"))).await;
    let res = a
        .client
        .post(app.url(&format!("/staff/cases/{id}/reject")))
        .form(&[("csrf", csrf.unwrap()), ("text", "again".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(body.contains("Customer called, understood."));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_api_actions_and_the_extension_rules() {
    let app = TestApp::spawn().await;
    let id = question(
        &app,
        "anna@example.nl",
        "nl",
        "Hoe lang bewaren jullie mijn bestellingen?",
    )
    .await;
    let token = app.staff_token().await;
    let post = |body: Value| {
        let c = app.client.clone();
        let url = app.url(&format!("/api/v1/staff/cases/{id}/actions"));
        let token = token.clone();
        async move {
            c.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let res = post(json!({"action": "note", "text": "Via de API."})).await;
    assert_eq!(res.status(), 200);
    // Assigned to the token's owner: the list filters by assignee.
    let res = post(json!({"action": "assign", "assignee": null})).await;
    assert_eq!(res.status(), 200);
    let list = |q: &'static str| {
        let c = app.client.clone();
        let url = app.url(&format!("/api/v1/staff/cases?{q}"));
        let token = token.clone();
        async move {
            let v: Value = c
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["cases"].as_array().unwrap().len()
        }
    };
    assert_eq!(list("assignee=none").await, 1);
    assert_eq!(list("assignee=me").await, 0);
    let res = post(json!({"action": "extend", "months": 3, "reason": "Te veel."})).await;
    assert_eq!(res.status(), 422);
    let res = post(json!({"action": "launch"})).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_input");
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .json(&json!({"action": "note", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Received 40 days ago: the first month is over, no extension any more.
    let now = Utc::now();
    let received = (now - Duration::days(40)).timestamp();
    let due = (now - Duration::days(9)).date_naive();
    sqlx::query("UPDATE requests SET received_at = $1, paused_seconds = 0, due_date = $2, due_at = $3 WHERE id = $4")
        .bind(received)
        .bind(due.to_string())
        .bind((now - Duration::days(9)).timestamp())
        .bind(&id)
        .execute(app.state().db.write())
        .await
        .unwrap();
    let res = post(json!({"action": "extend", "months": 2, "reason": "Ingewikkeld."})).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("eerste maand")
            || body["detail"].as_str().unwrap().contains("first month"),
        "{body}"
    );
    assert_eq!(
        app.scalar("SELECT extension_months FROM requests WHERE id = $1", &id)
            .await,
        0
    );

    let res = post(json!({"action": "reply", "message": "We bewaren ze zeven jaar."})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["case"]["status"], "completed");
    let actors: Vec<(String, String)> = events(&app, &id).await;
    assert!(actors
        .iter()
        .any(|(a, who)| a == "replied" && who.starts_with("staff:")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_puts_overdue_first_with_filters_counts_lookup_and_pages() {
    let app = TestApp::spawn().await;
    let a = agent(&app).await;
    let first = question(&app, "anna@example.nl", "nl", "Vraag een").await;
    let second = question(&app, "emma@example.com", "en", "Question two").await;
    let late = question(&app, "sven@example.se", "sv", "Fråga tre").await;
    let past = Utc::now() - Duration::days(3);
    sqlx::query("UPDATE requests SET due_date = $1, due_at = $2 WHERE id = $3")
        .bind(past.date_naive().to_string())
        .bind(past.timestamp())
        .bind(&late)
        .execute(app.state().db.write())
        .await
        .unwrap();

    let (status, body, _) = page(&a.client, &app.url("/staff/?lang=en")).await;
    assert_eq!(status, 200);
    let order: Vec<String> = regex::Regex::new(r#"data-id="([0-9a-f-]{36})""#)
        .unwrap()
        .captures_iter(&body)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(order[0], late, "overdue first");
    assert_eq!(order.len(), 3);
    assert!(
        body.contains(&format!(r#"<tr class="overdue" data-id="{late}">"#)),
        "highlighted"
    );
    assert!(body.contains("3 days overdue"));
    assert!(
        body.contains(r#"Overdue <span class="count">1</span>"#),
        "{body}"
    );
    assert!(body.contains(r#"Question <span class="count">3</span>"#));

    let (_, body, _) = page(&a.client, &app.url("/staff/?overdue=1")).await;
    assert_eq!(body.matches("data-id=").count(), 1);
    let (_, body, _) = page(&a.client, &app.url("/staff/?kind=delete")).await;
    assert_eq!(body.matches("data-id=").count(), 0);

    // Assignee filter.
    let me = staff_id(&app, &a.email).await;
    act(&app, &a, &second, "assign", &[("assignee", &me)]).await;
    let (_, body, _) = page(&a.client, &app.url("/staff/?assignee=me")).await;
    assert_eq!(body.matches("data-id=").count(), 1);
    assert!(body.contains(&second));
    let (_, body, _) = page(&a.client, &app.url("/staff/?assignee=none")).await;
    assert_eq!(body.matches("data-id=").count(), 2);

    // Look-up by exact customer address (any case) and by id.
    let (_, body, _) = page(&a.client, &app.url("/staff/?q=Anna%40Example.nl")).await;
    assert_eq!(body.matches("data-id=").count(), 1);
    assert!(body.contains(&first));
    let res = a
        .client
        .get(app.url(&format!("/staff/?q={first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/staff/cases/{first}"));
    let reference = privacy_portal::workflow::reference(&first);
    let res = a
        .client
        .get(app.url(&format!("/staff/?q={reference}")))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), format!("/staff/cases/{first}"));
    let (_, body, _) = page(
        &a.client,
        &app.url("/staff/?q=nobody%40example.org&lang=en"),
    )
    .await;
    assert!(body.contains("Nothing found"));

    // Keyset pagination: 51 more cases make a second page.
    let now = privacy_portal::store::now();
    for i in 0..51 {
        sqlx::query(
            "INSERT INTO requests (id, kind, locale, email, email_hash, status, channel, received_at, due_date, due_at, updated_at) \
             VALUES ($1, 'question', 'en', 'x@example.org', 'h', 'escalated', 'portal', $2, '2099-01-01', $3, $2)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(now)
        .bind(4_000_000_000i64 + i)
        .execute(app.state().db.write())
        .await
        .unwrap();
    }
    let (_, body, _) = page(&a.client, &app.url("/staff/")).await;
    assert_eq!(body.matches("data-id=").count(), 50);
    let next = staff_common::extract(r#"<a href="([^"]+)" rel="next""#, &body)
        .expect("a next link")
        .replace("&amp;", "&")
        .replace("&#x2F;", "/");
    let (_, body2, _) = page(&a.client, &app.url(&next)).await;
    assert_eq!(body2.matches("data-id=").count(), 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_intake_sends_the_code_and_counts_from_the_received_date() {
    let app = TestApp::spawn().await;
    let a = agent(&app).await;
    let received = (Utc::now() - Duration::days(10)).date_naive();
    let res = post_form(
        &app,
        &a.client,
        "/staff/intake",
        "/staff/intake",
        &[
            ("kind", "question"),
            ("email", "bram@example.nl"),
            ("locale", "nl"),
            ("channel", "phone"),
            ("received", &received.to_string()),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let id = location(&res)
        .trim_start_matches("/staff/cases/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let mail = app.mail.wait_for("bram@example.nl", 1).await.remove(0);
    let code = code_in(&mail);
    assert!(mail.text.contains(&format!("/nl/r/{id}/code")));
    let row: (String, i64) =
        sqlx::query_as("SELECT channel, received_at FROM requests WHERE id = $1")
            .bind(&id)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(row.0, "phone");
    let evs = events(&app, &id).await;
    assert!(evs[0].1.starts_with("staff:"));

    // The customer continues with the code; the deadline counts from the
    // received date, not from today.
    let res = app
        .post_json(
            &format!("/api/v1/requests/{id}/verify"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let due: String = sqlx::query_scalar("SELECT due_date FROM requests WHERE id = $1")
        .bind(&id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    let due = NaiveDate::parse_from_str(&due, "%Y-%m-%d").unwrap();
    let today = Utc::now().date_naive();
    assert!(
        due < today.checked_add_months(Months::new(1)).unwrap() - Duration::days(4),
        "due {due}"
    );
    assert!(due >= received.checked_add_months(Months::new(1)).unwrap());

    // A date in the future is refused.
    let future = (Utc::now() + Duration::days(2)).date_naive().to_string();
    let res = post_form(
        &app,
        &a.client,
        "/staff/intake",
        "/staff/intake",
        &[
            ("kind", "question"),
            ("email", "bram@example.nl"),
            ("locale", "nl"),
            ("channel", "letter"),
            ("received", &future),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn register_csv_shows_timeliness_without_personal_data() {
    let app = TestApp::spawn().await;
    let admin = enrol(&app, "admin@kaasboer.example", "admin").await;
    login(&app, &admin, 0).await;
    let on_time = question(&app, "anna@example.nl", "nl", "Een").await;
    let late = question(&app, "emma@example.com", "en", "Two").await;
    let extended = question(&app, "sven@example.se", "sv", "Tre").await;
    let _open = question(&app, "bram@example.nl", "nl", "Vier").await;
    for id in [&on_time, &late] {
        let res = act(
            &app,
            &admin,
            id,
            "reply",
            &[("text", "Antwoord."), ("step", "send")],
        )
        .await;
        assert_eq!(res.status(), 303);
    }
    act(
        &app,
        &admin,
        &extended,
        "extend",
        &[("months", "2"), ("text", "Complex.")],
    )
    .await;
    act(
        &app,
        &admin,
        &extended,
        "reply",
        &[("text", "Svar."), ("step", "send")],
    )
    .await;
    // Closed two months and 2 days after the one-month deadline: late.
    // Closed 10 days after the one-month deadline but within the extension.
    let (due_late, due_ext): (i64, i64) = (
        app.scalar("SELECT due_at FROM requests WHERE id = $1", &late)
            .await,
        app.scalar("SELECT due_at FROM requests WHERE id = $1", &extended)
            .await,
    );
    // Its code was entered a minute after the request: the month runs from
    // then, to the day (not a day later, as a rounded-up pause would have it).
    sqlx::query(
        "UPDATE requests SET closed_at = $1, received_at = received_at - 60, \
         paused_seconds = paused_seconds + 60 WHERE id = $2",
    )
    .bind(due_late + 2 * 86400)
    .bind(&late)
    .execute(app.state().db.write())
    .await
    .unwrap();
    sqlx::query("UPDATE requests SET closed_at = $1 WHERE id = $2")
        .bind(due_ext - 40 * 86400)
        .bind(&extended)
        .execute(app.state().db.write())
        .await
        .unwrap();

    // The year at a glance: four charts drawn on the server, no script.
    let html = admin
        .client
        .get(app.url("/staff/register"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for id in [
        "chart-per-month",
        "chart-in-time",
        "chart-median-days",
        "chart-open-age",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("<svg viewBox"));
    assert!(!html.contains("<script"), "no JavaScript");
    let res = admin
        .client
        .get(app.url("/staff/register.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "reference,kind,channel,received,due_date,extension_months,closed,status,outcome,timeliness");
    assert_eq!(lines.len(), 5, "{csv}");
    let line = |id: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&privacy_portal::workflow::reference(id)))
            .unwrap()
            .to_string()
    };
    assert!(
        line(&on_time).ends_with(",completed,answered,within_month"),
        "{}",
        line(&on_time)
    );
    assert!(line(&late).ends_with(",late"), "{}\n{csv}", line(&late));
    assert!(
        line(&extended).ends_with(",within_extension"),
        "{}",
        line(&extended)
    );
    assert!(line(&_open).ends_with(",open"));
    assert!(!csv.contains('@'), "no email addresses");

    let (_, body, _) = page(&admin.client, &app.url("/staff/register?lang=en")).await;
    assert!(
        body.contains(r#"<dd id="share-month">33.3 % (1)</dd>"#),
        "{body}"
    );
    assert!(body.contains(r#"<dd id="share-deadline">66.7 % (2)</dd>"#));
    app.stop().await;
}

/// `privacy-portal audit verify` against the test app's database, with `key`.
fn audit_verify(app: &TestApp, key: &str) -> std::process::Output {
    common::portal_bin()
        .args(["audit", "verify"])
        .env("PORTAL_DATABASE_URL", &app.database_url)
        .env("PORTAL_SECRET_KEY", key)
        .output()
        .unwrap()
}

fn app_key(app: &TestApp) -> String {
    use secrecy::ExposeSecret;
    app.state().settings.secret_key.expose_secret().to_string()
}

async fn verify_chain(app: &TestApp) -> privacy_portal::store::audit::ChainReport {
    privacy_portal::store::audit::verify_chain(&app.state().db, app.state().keys.audit())
        .await
        .unwrap()
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    request_id: Option<String>,
    at: i64,
    actor: String,
    action: String,
    from_status: Option<String>,
    to_status: Option<String>,
    detail: String,
}

/// What someone who can write the database but has no key can do: rewrite
/// the events from `from` on with the plain SHA-256 hash (the only one
/// before the chain was keyed), each linked to the one before, marked as
/// hash `version`.
async fn rewrite_unkeyed(app: &TestApp, from: i64, version: i64) {
    let db = app.state().db.write();
    let mut prev: String = sqlx::query_scalar(
        "SELECT COALESCE((SELECT hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1), '')",
    )
    .bind(from)
    .fetch_one(db)
    .await
    .unwrap();
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT seq, request_id, at, actor, action, from_status, to_status, detail \
         FROM audit_events WHERE seq >= $1 ORDER BY seq",
    )
    .bind(from)
    .fetch_all(db)
    .await
    .unwrap();
    for r in rows {
        let hash =
            privacy_portal::store::audit::unkeyed_hash(&privacy_portal::store::audit::Hashed {
                prev: &prev,
                request_id: r.request_id.as_deref(),
                at: r.at,
                actor: &r.actor,
                action: &r.action,
                from_status: r.from_status.as_deref(),
                to_status: r.to_status.as_deref(),
                detail: &r.detail,
            });
        sqlx::query(
            "UPDATE audit_events SET prev_hash = $1, hash = $2, hash_version = $3 WHERE seq = $4",
        )
        .bind(&prev)
        .bind(&hash)
        .bind(version)
        .bind(r.seq)
        .execute(db)
        .await
        .unwrap();
        prev = hash;
    }
}

async fn first_seq(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT MIN(seq) FROM audit_events")
        .fetch_one(app.state().db.read())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_detects_a_modified_row() {
    let app = TestApp::spawn().await;
    let id = question(&app, "anna@example.nl", "nl", "Vraag").await;
    let r = verify_chain(&app).await;
    assert!(r.broken.is_none());
    assert!(r.checked >= 3);
    assert_eq!(r.unkeyed, 0, "new events are keyed");

    let out = audit_verify(&app, &app_key(&app));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("intact"), "{said}");
    assert!(!said.contains("before the chain was keyed"), "{said}");

    // Another key: said plainly, at the very first event.
    let out = audit_verify(&app, &"ab".repeat(32));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "event {}: the chain does not verify with this key",
            first_seq(&app).await
        )),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let seq: i64 = sqlx::query_scalar(
        "SELECT seq FROM audit_events WHERE request_id = $1 AND action = 'verified'",
    )
    .bind(&id)
    .fetch_one(app.state().db.read())
    .await
    .unwrap();
    sqlx::query("UPDATE audit_events SET actor = 'staff:someone-else' WHERE seq = $1")
        .bind(seq)
        .execute(app.state().db.write())
        .await
        .unwrap();
    assert_eq!(verify_chain(&app).await.broken.map(|b| b.0), Some(seq));
    let out = audit_verify(&app, &app_key(&app));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("event {seq}")), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    app.stop().await;
}

/// Without the key, recomputing the hashes after an edit no longer helps:
/// neither as keyed events nor passed off as events from before the key.
#[tokio::test(flavor = "multi_thread")]
async fn an_edit_with_the_unkeyed_hashes_recomputed_is_detected() {
    let app = TestApp::spawn().await;
    let id = question(&app, "anna@example.nl", "nl", "Vraag").await;
    let seq: i64 = sqlx::query_scalar(
        "SELECT seq FROM audit_events WHERE request_id = $1 AND action = 'verified'",
    )
    .bind(&id)
    .fetch_one(app.state().db.read())
    .await
    .unwrap();
    assert!(seq > first_seq(&app).await, "a keyed event comes before it");
    sqlx::query("UPDATE audit_events SET actor = 'staff:someone-else' WHERE seq = $1")
        .bind(seq)
        .execute(app.state().db.write())
        .await
        .unwrap();

    rewrite_unkeyed(&app, seq, 2).await;
    let r = verify_chain(&app).await;
    assert_eq!(
        r.broken,
        Some((seq, "content was changed after it was written")),
        "{r:?}"
    );
    let out = audit_verify(&app, &app_key(&app));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("event {seq}")), "{err}");

    rewrite_unkeyed(&app, seq, 1).await;
    let r = verify_chain(&app).await;
    assert_eq!(r.broken.map(|b| b.0), Some(seq), "{r:?}");
    assert!(r.broken.unwrap().1.contains("without the key"), "{r:?}");
    let out = audit_verify(&app, &app_key(&app));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("event {seq}")));
    app.stop().await;
}

/// A trail written before the chain was keyed (plain SHA-256, version 1)
/// still verifies, and the keyed events after it link on to it; the switch
/// happens once.
#[tokio::test(flavor = "multi_thread")]
async fn an_unkeyed_trail_from_before_the_upgrade_verifies_with_the_keyed_events_after_it() {
    let app = TestApp::spawn().await;
    question(&app, "anna@example.nl", "nl", "Vraag").await;
    // What the portal wrote before the upgrade: every event so far.
    rewrite_unkeyed(&app, i64::MIN, 1).await;
    let old = verify_chain(&app).await;
    assert!(old.broken.is_none(), "{old:?}");
    assert!(old.checked >= 3);
    assert_eq!(old.unkeyed, old.checked);

    // After the upgrade: keyed events, the first linked to the old head.
    question(&app, "bram@example.nl", "nl", "Nog een vraag").await;
    let r = verify_chain(&app).await;
    assert!(r.broken.is_none(), "{r:?}");
    assert!(r.checked >= old.checked + 3);
    assert_eq!(r.unkeyed, old.checked);
    let out = audit_verify(&app, &app_key(&app));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "({} of them before the chain was keyed)",
            old.checked
        )),
        "{said}"
    );

    // An unkeyed event after keyed ones is one written without the key.
    let (head, last): (String, i64) =
        sqlx::query_as("SELECT hash, seq FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    let at = privacy_portal::store::now();
    let hash = privacy_portal::store::audit::unkeyed_hash(&privacy_portal::store::audit::Hashed {
        prev: &head,
        request_id: None,
        at,
        actor: "cli",
        action: "staff_token_issued",
        from_status: None,
        to_status: None,
        detail: "{}",
    });
    sqlx::query(
        "INSERT INTO audit_events (request_id, at, actor, action, detail, prev_hash, hash, hash_version) \
         VALUES (NULL, $1, 'cli', 'staff_token_issued', '{}', $2, $3, 1)",
    )
    .bind(at)
    .bind(&head)
    .bind(&hash)
    .execute(app.state().db.write())
    .await
    .unwrap();
    let r = verify_chain(&app).await;
    let (seq, why) = r.broken.expect("the forged event is found");
    assert!(seq > last, "{r:?}");
    assert!(why.contains("without the key"), "{why}");
    let out = audit_verify(&app, &app_key(&app));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("event {seq}")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blocked_deletion_is_executed_from_the_case_page_once_the_blocker_is_cleared() {
    let app = TestApp::spawn().await;
    let (id, token) = app.verified("delete", "bram@example.nl", "nl").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(&token)
        .json(&json!({"postcode": "3511 LX", "house_number": "4a", "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let a = agent(&app).await;
    let (_, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{id}?lang=en"))).await;
    assert!(
        body.contains("An order is still open"),
        "the blocker is shown"
    );
    assert!(body.contains(r#"id="execute-form""#));

    // The first press only says what will happen; nothing is erased.
    let res = act(&app, &a, &id, "execute", &[("text", "")]).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains(r#"id="confirm-form""#), "{body}");
    assert!(body.contains("are now deleted for good"), "{body}");
    assert!(body.contains("This cannot be undone."));
    assert!(
        body.contains(
            "First we check again whether this still stands in the way: An order is still open"
        ),
        "{body}"
    );
    assert!(body.contains(r#"name="confirm" value="1""#));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'escalated'",
            &id
        )
        .await,
        1
    );

    // Still blocked: refused, with the reason, nothing erased.
    let res = act(&app, &a, &id, "execute", &[("text", ""), ("confirm", "1")]).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("An order is still open"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'escalated'",
            &id
        )
        .await,
        1
    );

    sqlx::query("UPDATE customer_orders SET status = 'delivered' WHERE id = 'O-2001'")
        .execute(app.state().db.write())
        .await
        .unwrap();
    let res = act(&app, &a, &id, "execute", &[("text", ""), ("confirm", "1")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM requests WHERE id = $1 AND status = 'completed'",
            &id
        )
        .await,
        1
    );
    let me = format!("staff:{}", staff_id(&app, &a.email).await);
    assert!(events(&app, &id)
        .await
        .iter()
        .any(|(_, actor)| *actor == me));
    // The Art. 19 checklist of the company's other systems is on the case.
    let (_, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{id}?lang=en"))).await;
    assert!(body.contains("Other systems to clean by hand"), "{body}");
    assert!(body.contains("Bookkeeping (Exact Online)"));

    // Tick every item: the task is done, each tick an audit event.
    let (task_id, checklist): (String, String) =
        sqlx::query_as("SELECT id, checklist FROM staff_tasks WHERE request_id = $1")
            .bind(&id)
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    let items: Vec<Value> = serde_json::from_str(&checklist).unwrap();
    assert!(!items.is_empty());
    for item in &items {
        let res = post_form(
            &app,
            &a.client,
            &format!("/staff/cases/{id}"),
            &format!("/staff/cases/{id}/task"),
            &[
                ("task", &task_id),
                ("item", item["id"].as_str().unwrap()),
                ("done", "1"),
            ],
        )
        .await;
        assert_eq!(res.status(), 303);
    }
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM staff_tasks WHERE id = $1 AND status = 'done'",
            &task_id
        )
        .await,
        1
    );
    let ticks = events(&app, &id)
        .await
        .iter()
        .filter(|(action, actor)| action == "task_item_done" && *actor == me)
        .count();
    assert_eq!(ticks, items.len());
    let (_, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{id}?lang=en"))).await;
    assert!(body.contains("(done)"), "task shown as done");
    app.stop().await;
}

#[tokio::test]
async fn an_extension_counts_from_the_verified_day_not_a_day_later() {
    let app = TestApp::spawn().await;
    let admin = enrol(&app, "admin@kaasboer.example", "admin").await;
    login(&app, &admin, 0).await;
    let id = question(&app, "anna@example.nl", "nl", "Een vraag").await;
    // Received on Tuesday 10 March 2026 at 11:59 UTC; the code was entered
    // a minute later, still on the 10th. One month plus two of extension
    // run to Wednesday 10 June (a working day in NL and SE alike).
    let received = chrono::DateTime::parse_from_rfc3339("2026-03-10T11:59:00Z")
        .unwrap()
        .timestamp();
    sqlx::query("UPDATE requests SET received_at = $1, paused_seconds = 60 WHERE id = $2")
        .bind(received)
        .bind(&id)
        .execute(app.state().db.write())
        .await
        .unwrap();
    let res = act(
        &app,
        &admin,
        &id,
        "extend",
        &[("months", "2"), ("text", "Veel gegevens.")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let due: String = sqlx::query_scalar("SELECT due_date FROM requests WHERE id = $1")
        .bind(&id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(due, "2026-06-10");
    app.stop().await;
}

/// Work left for staff after an automatic erasure (the other systems to
/// clean) is open work: in its own queue filter with a count, on the default
/// queue page, in the staff API, and in the daily digest to the privacy address.
#[tokio::test(flavor = "multi_thread")]
async fn checklist_work_is_visible_in_the_queue_the_api_and_the_daily_digest() {
    let app = TestApp::spawn().await;
    let (id, token) = app.verified("delete", "anna@example.nl", "en").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(&token)
        .json(&json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let reference = privacy_portal::workflow::reference(&id);

    // Staff API: the filter finds it (the request itself is completed), and
    // the case carries its checklist.
    let staff = app.staff_token().await;
    let get = |path: String| {
        let (app, staff) = (&app, staff.clone());
        async move {
            app.client
                .get(app.url(&path))
                .bearer_auth(staff)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let list = get("/api/v1/staff/cases?work=checklist".into()).await;
    assert_eq!(list["cases"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["cases"][0]["status"], "completed");
    let case = get(format!("/api/v1/staff/cases/{id}")).await;
    assert_eq!(case["tasks"][0]["kind"], "erasure_other_systems", "{case}");
    assert_eq!(case["tasks"][0]["status"], "open");

    // The queue page: counted in its own filter and shown on the default page.
    let a = enrol(&app, "checklist.agent@kaasboer.example", "agent").await;
    login(&app, &a, 0).await;
    let (_, body, _) = page(&a.client, &app.url("/staff/?lang=en")).await;
    assert!(body.contains("id=\"checklist-work\""), "{body}");
    assert!(body.contains(&reference));
    let (_, body, _) = page(&a.client, &app.url("/staff/?work=checklist&lang=en")).await;
    assert!(body.contains(&format!("/staff/cases/{id}")), "{body}");

    // The digest: once a day, from 07:00 company time, to the privacy address.
    let tz = app.state().settings.company.country.timezone();
    let eight = chrono::TimeZone::from_local_datetime(
        &tz,
        &Utc::now()
            .with_timezone(&tz)
            .date_naive()
            .and_hms_opt(8, 0, 0)
            .unwrap(),
    )
    .earliest()
    .unwrap()
    .timestamp();
    let six = eight - 2 * 3600;
    let digest = privacy_portal::workflow::digest::run;
    assert!(
        digest(app.state(), six).await.unwrap().is_none(),
        "not before 07:00"
    );
    let sent = digest(app.state(), eight).await.unwrap().unwrap();
    assert_eq!(sent.checklist, 1);
    assert!(
        digest(app.state(), eight + 60).await.unwrap().is_none(),
        "once a day"
    );
    let mail = app
        .mail
        .wait_for("privacy@kaasboer.example", 1)
        .await
        .remove(0);
    assert!(mail.text.contains(&reference), "{}", mail.text);
    assert!(mail.text.contains(&format!("/staff/cases/{id}")));
    assert!(
        !mail.text.contains("anna@"),
        "no personal data in the digest"
    );
    app.stop().await;
}

/// The customer card: a person's account and all their requests, found by
/// exact email, account id, or (after an erasure, when the address is gone)
/// a request reference; staff start an erasure or export on their behalf,
/// the customer gets the code mail and the staff member is the actor.
#[tokio::test(flavor = "multi_thread")]
async fn the_customer_card_finds_a_person_and_starts_requests_on_their_behalf() {
    let app = TestApp::spawn().await;
    let earlier = question(
        &app,
        "anna@example.nl",
        "nl",
        "Welke gegevens hebben jullie?",
    )
    .await;
    // The code mail and the confirmation of the question, before the next code.
    app.mail.wait_for("anna@example.nl", 2).await;
    let (id, token) = app.verified("delete", "anna@example.nl", "nl").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(&token)
        .json(&json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let a = enrol(&app, "card.agent@kaasboer.example", "agent").await;
    login(&app, &a, 0).await;

    // After the erasure: by the reference, both requests, no address, no account.
    let reference = privacy_portal::workflow::reference(&id);
    let (_, body, _) = page(
        &a.client,
        &app.url(&format!("/staff/customers?q={reference}&lang=en")),
    )
    .await;
    assert!(body.contains(&format!("/staff/cases/{id}")), "{body}");
    assert!(body.contains(&format!("/staff/cases/{earlier}")), "{body}");
    // The account is erased; the open question still carries the address.
    assert!(body.contains("No account under this address"), "{body}");

    // By account id: Bram's account, with the forms to act on his behalf.
    let (_, body, _) = page(&a.client, &app.url("/staff/customers?q=C-1002&lang=en")).await;
    assert!(body.contains("C-1002 · active"), "{body}");
    assert!(body.contains("bram@example.nl"));
    let res = post_form(
        &app,
        &a.client,
        "/staff/customers?q=C-1002",
        "/staff/intake",
        &[
            ("kind", "export"),
            ("email", "bram@example.nl"),
            ("locale", "nl"),
            ("channel", "phone"),
            ("received", &Utc::now().format("%Y-%m-%d").to_string()),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let case_url = location(&res);
    let new_id = case_url
        .trim_start_matches("/staff/cases/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    code_in(&app.mail.wait_for("bram@example.nl", 1).await[0]);
    let me = format!("staff:{}", staff_id(&app, &a.email).await);
    assert!(events(&app, &new_id)
        .await
        .iter()
        .any(|(action, actor)| action == "request_created" && *actor == me));
    // And the card now lists it, found by the exact address.
    let (_, body, _) = page(
        &a.client,
        &app.url("/staff/customers?q=bram@example.nl&lang=en"),
    )
    .await;
    assert!(body.contains(&format!("/staff/cases/{new_id}")), "{body}");
    let (_, body, _) = page(
        &a.client,
        &app.url("/staff/customers?q=nobody@example.nl&lang=en"),
    )
    .await;
    assert!(body.contains("id=\"customer-not-found\""));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_record_of_processing_is_for_admins_in_any_language_and_as_csv() {
    let app = TestApp::spawn().await;
    let agent = enrol(&app, "agent2@kaasboer.example", "agent").await;
    login(&app, &agent, 0).await;
    let res = agent
        .client
        .get(app.url("/staff/register-of-processing"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let admin = enrol(&app, "admin@kaasboer.example", "admin").await;
    login(&app, &admin, 0).await;
    for (lang, title, basis) in [
        ("nl", "Register van verwerkingsactiviteiten", "Grondslag"),
        ("sv", "Register över behandling", "Rättslig grund"),
        ("en", "Record of processing activities", "Legal basis"),
    ] {
        let res = admin
            .client
            .get(app.url(&format!("/staff/register-of-processing?lang={lang}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        assert!(html.contains(title), "{lang}");
        assert!(html.contains(basis), "{lang}");
        assert!(html.contains("PostNL B.V."), "recipients named");
    }
    let res = admin
        .client
        .get(app.url("/staff/register-of-processing.csv?lang=sv"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csv = res.text().await.unwrap();
    assert!(
        csv.lines().next().unwrap().contains("\"Ändamål\";\""),
        "{csv}"
    );
    app.stop().await;
}

/// The visible text of a page: scripts and styles dropped, tags stripped.
fn visible_text(html: &str) -> String {
    let no_code = regex::Regex::new(r"(?s)<(script|style)\b.*?</(script|style)>")
        .unwrap()
        .replace_all(html, " ");
    regex::Regex::new(r"(?s)<[^>]*>")
        .unwrap()
        .replace_all(&no_code, " ")
        .into_owned()
}

fn snake_tokens(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\b[a-z]+_[a-z_]+\b").unwrap();
    re.find_iter(&visible_text(html))
        .map(|m| m.as_str().to_string())
        .collect()
}

/// Issue 17: the Dutch queue and case pages speak Dutch, not the portal's
/// keys; a queue row says the customer's language, why a person is needed
/// and what is left of its checklist.
#[tokio::test(flavor = "multi_thread")]
async fn dutch_queue_and_case_pages_show_no_raw_keys() {
    let app = TestApp::spawn().await;
    // A question, extended and assigned: history with facts.
    let q = question(&app, "emma@example.com", "sv", "Vilka uppgifter har ni?").await;
    // A deletion held back by an open order.
    let (del, token) = app.verified("delete", "bram@example.nl", "nl").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{del}/submit")))
        .bearer_auth(&token)
        .json(&json!({"postcode": "3511 LX", "house_number": "4a", "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // An objection to a use based on legitimate interest, plus a newsletter.
    let (obj, token) = app.verified("object", "carla@example.nl", "nl").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{obj}/submit")))
        .bearer_auth(&token)
        .json(&json!({"purposes": ["call_recording", "newsletter"], "reason": "Mijn gesprekken zijn vertrouwelijk."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let a = agent(&app).await;
    let (status, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{q}?lang=nl"))).await;
    assert_eq!(status, 200);
    // "1 maand", "2 maanden": no "maand(en)".
    assert!(
        body.contains("<option value=\"1\">1 maand</option>"),
        "{body}"
    );
    assert!(body.contains("<option value=\"2\" selected>2 maanden</option>"));
    let res = act(
        &app,
        &a,
        &q,
        "extend",
        &[("months", "1"), ("text", "Veel gegevens.")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let me = staff_id(&app, &a.email).await;
    let res = act(&app, &a, &q, "assign", &[("assignee", &me)]).await;
    assert_eq!(res.status(), 303);

    let (status, queue, _) = page(&a.client, &app.url("/staff/?lang=nl")).await;
    assert_eq!(status, 200);
    assert_eq!(snake_tokens(&queue), Vec::<String>::new(), "queue");
    let text = visible_text(&queue);
    assert!(text.contains("Zweeds"), "the customer's language: {text}");
    assert!(text.contains("Er staat nog een bestelling open"), "{text}");
    assert!(text.contains("Waarom een mens nodig is:"), "{text}");

    for id in [&q, &del, &obj] {
        let (status, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{id}"))).await;
        assert_eq!(status, 200);
        assert!(body.contains("<html lang=\"nl\""), "Dutch UI kept");
        assert_eq!(snake_tokens(&body), Vec::<String>::new(), "case {id}");
    }
    let (_, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{q}"))).await;
    assert!(body.contains("Maanden: 1"), "a history fact in words");
    let (_, body, _) = page(&a.client, &app.url(&format!("/staff/cases/{obj}"))).await;
    assert!(body.contains("Bezwaar om af te wegen: Opnemen van telefoongesprekken"));
    assert!(body.contains("Meteen gestopt: Nieuwsbrief"));

    // The confirmation step of "carry out now" is Dutch too.
    let res = act(&app, &a, &del, "execute", &[("text", "")]).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert_eq!(snake_tokens(&body), Vec::<String>::new(), "confirm page");
    assert!(body.contains("Ja, nu uitvoeren"));

    // Checklist work: a deletion carried out leaves the other systems to
    // clean; the queue row says which are still open.
    sqlx::query("UPDATE customer_orders SET status = 'delivered' WHERE id = 'O-2001'")
        .execute(app.state().db.write())
        .await
        .unwrap();
    let res = act(&app, &a, &del, "execute", &[("text", ""), ("confirm", "1")]).await;
    assert_eq!(res.status(), 303);
    let (_, queue, _) = page(&a.client, &app.url("/staff/?lang=nl&work=checklist")).await;
    let text = visible_text(&queue);
    assert!(text.contains("Nog open:"), "{text}");
    assert!(text.contains("Boekhouding"), "{text}");
    assert_eq!(
        snake_tokens(&queue),
        Vec::<String>::new(),
        "checklist queue"
    );
    app.stop().await;
}
