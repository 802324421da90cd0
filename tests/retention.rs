//! Retention per data category: what the privacy notice promises is what
//! the daily run deletes, in every system, audited with counts.

mod common;

use chrono::{Duration, Utc};
use common::TestApp;

fn ts(days_ago: i64) -> String {
    (Utc::now() - Duration::days(days_ago)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_past_their_period_go_and_the_notice_shows_the_same_period() {
    let mut company =
        privacy_portal::config::parse_company(privacy_portal::config::DEMO_COMPANY_TOML, "test")
            .unwrap();
    for cat in &mut company.privacy_notice.categories {
        match cat.id.as_str() {
            "usage" => {
                cat.retain = Some("6 months".into());
                cat.data = vec!["ip_log".into()];
            }
            "service" => {
                cat.retain = Some("1 year".into());
                cat.data = vec!["contacts".into()];
            }
            _ => {}
        }
    }
    let app = TestApp::spawn_with(move |s| {
        s.company = company;
        s.run_schedules = false;
    })
    .await;
    // A customer with recent rows beside Anna's old ones (400 and 390 days).
    let fresh = serde_json::json!({"external_id": "C-8001", "email": "fresh@example.nl", "name": "F",
        "contacts": [{"at": ts(100), "channel": "mail", "summary": "recent"}, {"at": ts(500), "channel": "mail", "summary": "old"}],
        "ip_log": [{"at": ts(10), "ip": "198.51.100.1"}, {"at": ts(200), "ip": "198.51.100.2"}]});
    privacy_portal::import::import(app.state(), std::io::Cursor::new(fresh.to_string()))
        .await
        .unwrap();
    let count = |table: &'static str| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table}"
            )))
            .fetch_one(app.state().db.read())
            .await
            .unwrap()
        }
    };
    assert_eq!(count("customer_ip_log").await, 3);
    assert_eq!(count("customer_contacts").await, 3);

    let counts = privacy_portal::workflow::retention::run(app.state(), Utc::now())
        .await
        .unwrap();
    // Anna's 400-day log and Fresh's 200-day one (over 6 months) went; the
    // 10-day one stayed. Contacts: 390 and 500 days went, 100 days stayed.
    assert_eq!(count("customer_ip_log").await, 1);
    assert_eq!(count("customer_contacts").await, 1);
    let deleted = |data: &str| {
        counts
            .iter()
            .find(|(_, d, s, _)| d == data && s == "builtin")
            .and_then(|c| c.3)
    };
    assert_eq!(deleted("ip_log"), Some(2));
    assert_eq!(deleted("contacts"), Some(2));
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'retention_purged' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(app.state().db.read())
    .await
    .unwrap();
    assert!(detail.contains(r#""deleted":2"#), "{detail}");
    // Running again deletes nothing more.
    privacy_portal::workflow::retention::run(app.state(), Utc::now())
        .await
        .unwrap();
    assert_eq!(count("customer_ip_log").await, 1);

    // The notice states the period it enforces, from the same line.
    let (status, html, _) = common::page(&app.client, &app.url("/nl/privacy")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Wordt na 6 maanden automatisch verwijderd."),
        "notice shows the enforced period"
    );
    assert!(html.contains("Wordt na 1 jaar automatisch verwijderd."));
    app.stop().await;
}

#[test]
fn a_period_that_cannot_be_read_is_refused_at_start() {
    let file = privacy_portal::config::DEMO_COMPANY_TOML.replacen(
        "id = \"usage\"",
        "id = \"usage\"\nretain = \"half a year\"\ndata = [\"ip_log\"]",
        1,
    );
    let err = privacy_portal::config::parse_company(&file, "company.toml")
        .unwrap_err()
        .0;
    assert!(err.contains("retain `half a year`"), "{err}");
}
