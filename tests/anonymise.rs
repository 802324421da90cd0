//! Scheduled anonymisation with a controllable clock: the warning, the
//! day itself (not a day earlier), "keep my account", blockers skipped,
//! the dry run, and two instances erasing once.

mod common;

use chrono::{Duration, Utc};
use common::TestApp;
use privacy_portal::workflow::anonymise;

fn company() -> privacy_portal::config::Company {
    let mut company =
        privacy_portal::config::parse_company(privacy_portal::config::DEMO_COMPANY_TOML, "test")
            .unwrap();
    company.inactivity = Some(privacy_portal::config::Inactivity {
        anonymise_after_months: 12,
        warn_days_before: 30,
    });
    company
}

async fn app() -> TestApp {
    let company = company();
    // The test drives the schedule with its own clock.
    let app = TestApp::spawn_with(move |s| {
        s.company = company;
        s.run_schedules = false;
    })
    .await;
    // Two years without activity and money still owed: blocked.
    let olle = serde_json::json!({"external_id": "C-7001", "email": "olle@example.se", "name": "Olle Berg",
        "locale": "sv", "postcode": "411 01", "house_number": "3",
        "created_at": (Utc::now() - Duration::days(730)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "balance_cents": 500});
    let report =
        privacy_portal::import::import(app.state(), std::io::Cursor::new(olle.to_string()))
            .await
            .unwrap();
    assert!(report.errors.is_empty());
    app
}

fn actions(lines: &[anonymise::Line]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| l.action.to_string()).collect();
    v.sort();
    v
}

async fn requests_for(app: &TestApp, email: &str) -> i64 {
    app.scalar(
        "SELECT COUNT(*) FROM requests WHERE email_hash = $1 AND channel = 'scheduler'",
        &app.state().keys.lookup_hash(email),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn inactive_accounts_are_warned_then_anonymised_on_the_day_unless_kept_or_blocked() {
    let app = app().await;
    let state = app.state();
    let now = Utc::now();

    // The dry run lists, by account id only, and changes nothing.
    let dry = anonymise::run(state, now, true).await.unwrap();
    assert_eq!(actions(&dry), ["warn", "warn", "warn"], "{dry:?}");
    for l in &dry {
        assert!(!l.to_string().contains('@'), "no address: {l}");
    }
    assert!(app.mail.to("anna@example.nl").is_empty());
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM inactivity_notices WHERE system = $1",
            "builtin"
        )
        .await,
        0
    );

    // Anna (400 days), Eva's old account (800) and Olle (730) are warned,
    // each in their language, with a link to keep the account.
    let lines = anonymise::run(state, now, false).await.unwrap();
    assert_eq!(actions(&lines), ["warn", "warn", "warn"]);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM inactivity_notices WHERE status = $1",
            "warned"
        )
        .await,
        3
    );
    let anna = app.mail.wait_for("anna@example.nl", 1).await;
    assert!(anna[0].subject.contains("account"), "{}", anna[0].subject);
    let eva = app.mail.wait_for("eva.old@example.nl", 1).await;
    let link = regex::Regex::new(r"http://127\.0\.0\.1:\d+(/nl/keep/[A-Za-z0-9_-]+)")
        .unwrap()
        .captures(&eva[0].text)
        .expect("a keep link")[1]
        .to_string();
    // Warned once, however often the schedule runs.
    anonymise::run(state, now, false).await.unwrap();
    assert_eq!(app.mail.to("anna@example.nl").len(), 1);

    // Eva keeps hers with one click (a page, then one button).
    let (status, html, _) = common::page(&app.client, &app.url(&link)).await;
    assert_eq!(status, 200);
    let csrf = regex::Regex::new(r#"name="csrf" value="([^"]+)""#)
        .unwrap()
        .captures(&html)
        .unwrap()[1]
        .to_string();
    let res = app
        .client
        .post(app.url(&link))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("keep-done"));

    // A day before: nothing is erased.
    let day_before = anonymise::run(state, now + Duration::days(29), false)
        .await
        .unwrap();
    assert!(
        day_before.iter().all(|l| l.action == "wait"),
        "{day_before:?}"
    );
    assert_eq!(requests_for(&app, "anna@example.nl").await, 0);

    // On the day: Anna is anonymised through the same erasure as a
    // deletion (with proof saying why); Eva is not (she kept it); Olle owes
    // money, so he is skipped — no case for staff.
    let on_the_day = anonymise::run(state, now + Duration::days(31), false)
        .await
        .unwrap();
    assert_eq!(
        actions(&on_the_day),
        ["anonymise", "blocked"],
        "{on_the_day:?}"
    );
    assert_eq!(requests_for(&app, "anna@example.nl").await, 1);
    assert_eq!(requests_for(&app, "olle@example.se").await, 0);
    assert_eq!(requests_for(&app, "eva.old@example.nl").await, 0);
    let proof = app.mail.wait_for("anna@example.nl", 2).await.remove(1);
    assert!(
        proof.text.contains("lange tijd niet gebruikt"),
        "{}",
        proof.text
    );
    let anna_account = state
        .connector
        .find_account(&privacy_portal::domain::Email::parse("anna@example.nl").unwrap())
        .await
        .unwrap();
    assert!(anna_account.is_none(), "erased");
    let eva_account = state
        .connector
        .find_account(&privacy_portal::domain::Email::parse("eva.old@example.nl").unwrap())
        .await
        .unwrap();
    assert!(eva_account.is_some(), "kept");
    // The erasure's audit trail names the scheduler.
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM audit_events WHERE actor = 'scheduler' AND action = $1",
            "erased"
        )
        .await,
        1
    );
    // Blocked: tried again the next day, still not escalated.
    let again = anonymise::run(state, now + Duration::days(33), false)
        .await
        .unwrap();
    assert_eq!(actions(&again), ["blocked"]);
    assert_eq!(requests_for(&app, "olle@example.se").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_anonymise_an_account_once() {
    let app = app().await;
    let sibling = app
        .spawn_sibling_with(|s| {
            s.company = company();
            s.run_schedules = false;
        })
        .await;
    let now = Utc::now();
    anonymise::run(app.state(), now, false).await.unwrap();
    let later = now + Duration::days(31);
    let (a, b) = tokio::join!(
        anonymise::run(app.state(), later, false),
        anonymise::run(sibling.state(), later, false)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(requests_for(&app, "anna@example.nl").await, 1);
    assert_eq!(requests_for(&app, "eva.old@example.nl").await, 1);
    // Each erased once (a step may finish on the other instance's runner).
    common::eventually("both erasures complete", || async {
        let n = app
            .scalar(
                "SELECT COUNT(*) FROM audit_events WHERE action = 'erased' AND actor = $1",
                "scheduler",
            )
            .await;
        if n == 2 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'erased' AND actor = $1",
            "scheduler"
        )
        .await,
        2,
        "and not a third time"
    );
    sibling.stop().await;
    app.stop().await;
}
