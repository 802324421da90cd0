//! The SQL connector end to end on the example shop of `config/sql-example`
//! (customers, addresses, orders, order lines, payments, newsletter,
//! reviews): each scenario on SQLite always, on PostgreSQL when
//! PORTAL_TEST_POSTGRES_URL is set and on MariaDB when
//! PORTAL_TEST_MARIADB_URL is set (`.ci/run` sets both). Each test gets
//! its own company database, dropped at the end.

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use common::{eventually, TestApp};
use privacy_portal::connector::{
    sql::db::{self, Backend, Pool, Q},
    AccountRef,
};
use serde_json::{json, Value};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sql-example");

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
    MariaDb,
}

/// One company database holding the example shop.
struct Shop {
    kind: Kind,
    url: String,
    pool: Pool,
    backend: Backend,
    /// (admin URL, database name) to drop at the end.
    drop: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

fn example(file: &str) -> String {
    std::fs::read_to_string(format!("{EXAMPLE}/{file}")).unwrap()
}

fn with_database(base: &str, name: &str) -> String {
    let mut u = url::Url::parse(base).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

async fn admin(base: &str, sql: &str) {
    let (_, pool) = db::connect(base).await.expect("admin connection");
    pool.run_script(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

/// The example shop on `kind`, or `None` when that backend is not
/// configured for this run.
async fn shop(kind: Kind) -> Option<Shop> {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("portal_sqltest_{}", uuid::Uuid::new_v4().simple());
    let (url, drop, script) = match kind {
        Kind::Sqlite => {
            let path = dir.path().join("shop.db");
            std::fs::File::create(&path).unwrap();
            (format!("sqlite://{}", path.display()), None, "sqlite.sql")
        }
        Kind::Postgres => {
            let base = common::postgres_url()?;
            admin(&base, &format!("CREATE DATABASE \"{name}\"")).await;
            (
                with_database(&base, &name),
                Some((base, name)),
                "postgres.sql",
            )
        }
        Kind::MariaDb => {
            let base = std::env::var("PORTAL_TEST_MARIADB_URL")
                .ok()
                .filter(|u| !u.is_empty())?;
            admin(&base, &format!("CREATE DATABASE `{name}`")).await;
            (
                with_database(&base, &name),
                Some((base, name)),
                "mariadb.sql",
            )
        }
    };
    let (backend, pool) = db::connect(&url).await.expect("company database");
    pool.run_script(&example(script))
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    Some(Shop {
        kind,
        url,
        pool,
        backend,
        drop,
        _dir: dir,
    })
}

impl Shop {
    async fn rows(&self, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        let mut q = Q::new(self.backend);
        q.push(sql);
        self.pool
            .fetch(&q)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn exec(&self, sql: &str) {
        self.pool
            .run_script(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every table, every row, by primary key.
    async fn dump(&self) -> BTreeMap<String, Vec<serde_json::Map<String, Value>>> {
        let mut out = BTreeMap::new();
        for (t, k) in [
            ("customers", "customer_id"),
            ("addresses", "address_id"),
            ("orders", "order_id"),
            ("order_lines", "line_id"),
            ("payments", "payment_id"),
            ("newsletter", "customer_id"),
            ("reviews", "review_id"),
        ] {
            out.insert(
                t.to_string(),
                self.rows(&format!("SELECT * FROM {t} ORDER BY {k}")).await,
            );
        }
        out
    }

    /// The mapping of `config/sql-example/connectors.toml`, its URL in a
    /// variable of its own (tests run in parallel).
    fn mapping(&self) -> String {
        let var = format!(
            "SHOP_DATABASE_URL_{}",
            uuid::Uuid::new_v4().simple().to_string().to_uppercase()
        );
        std::env::set_var(&var, &self.url);
        let mut m =
            example("connectors.toml").replace("\"SHOP_DATABASE_URL\"", &format!("\"{var}\""));
        if matches!(self.kind, Kind::Sqlite) {
            // SQLite has no INTERVAL: its own date arithmetic.
            let start = m.find("sql = \"SELECT MAX(p.collected_at)").unwrap();
            let end = start + m[start..].find('\n').unwrap();
            m.replace_range(
                start..end,
                "sql = \"SELECT date(MAX(p.collected_at), '+56 days') AS until FROM payments p JOIN orders o ON o.order_id = p.order_id WHERE o.customer_id = :account AND p.method = 'direct_debit' AND p.collected_at > datetime('now', '-56 days') HAVING COUNT(*) > 0\"",
            );
        }
        m
    }

    fn company(&self, mapping: &str) -> privacy_portal::config::Company {
        let file = format!("{}\n{mapping}", privacy_portal::config::DEMO_COMPANY_TOML);
        privacy_portal::config::parse_company(&file, "test").unwrap()
    }

    async fn app(&self) -> TestApp {
        let company = self.company(&self.mapping());
        TestApp::spawn_with(move |s| s.company = company).await
    }

    async fn close(self) {
        self.pool.close().await;
        if let Some((base, name)) = &self.drop {
            let sql = match self.kind {
                Kind::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS `{name}`"),
            };
            admin(base, &sql).await;
        }
    }
}

async fn submit(app: &TestApp, id: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn wait_status(app: &TestApp, id: &str, token: &str, want: &str) -> Value {
    eventually(&format!("request {want}"), || async {
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
        if v["status"] == want {
            Ok(v)
        } else {
            Err(v)
        }
    })
    .await
}

async fn staff_case(app: &TestApp, id: &str) -> Value {
    let staff = app.staff_token().await;
    app.client
        .get(app.url(&format!("/api/v1/staff/cases/{id}")))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let mut out = BTreeMap::new();
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

/// Runs a scenario on each backend this run has.
macro_rules! on_every_backend {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                super::$scenario(super::Kind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$scenario(super::Kind::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn mariadb() {
                super::$scenario(super::Kind::MariaDb).await
            }
        }
    };
}

on_every_backend!(export);
on_every_backend!(erasure);
on_every_backend!(blocked_erasure);
on_every_backend!(email_change);
on_every_backend!(objection);
on_every_backend!(unknown_column);
on_every_backend!(failed_erasure_rolls_back);
on_every_backend!(check_and_preview);
on_every_backend!(retention_and_inactivity);

/// Retention per category and scheduled anonymisation through the
/// operator's own SQL (`:before` bound as a moment).
async fn retention_and_inactivity(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    let mapping = format!(
        "{}\n[connectors.inactivity]\nlist = \"SELECT customer_id AS account, email, NULL AS locale, created_at AS last_activity FROM customers WHERE created_at < :before\"\ntouch = \"UPDATE customers SET created_at = CURRENT_TIMESTAMP WHERE customer_id = :account\"\n\n[[connectors.retention]]\ncategory = \"reviews\"\nsql = \"DELETE FROM reviews WHERE created_at < :before\"\n",
        shop.mapping()
    );
    let mut company = shop.company(&mapping);
    company.inactivity = Some(privacy_portal::config::Inactivity {
        anonymise_after_months: 12,
        warn_days_before: 30,
    });
    for cat in &mut company.privacy_notice.categories {
        if cat.id == "service" {
            cat.retain = Some("1 year".into());
            cat.data = vec!["reviews".into()];
        }
    }
    let app = TestApp::spawn_with(move |s| {
        s.company = company;
        s.run_schedules = false;
    })
    .await;
    let connector = &app.state().connector;
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };

    // Retention: the review of February 2023 is older than March 2023.
    let n = connector
        .purge("reviews", at("2023-03-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(n, Some(1));
    assert_eq!(
        connector
            .purge("ip_log", at("2023-03-01T00:00:00Z"))
            .await
            .unwrap(),
        None
    );
    let left = shop
        .rows("SELECT review_id FROM reviews ORDER BY review_id")
        .await;
    assert_eq!(left.len(), 1, "{left:?}");
    // The daily run applies the notice's period (1 year) and audits it.
    let counts = privacy_portal::workflow::retention::run(app.state(), chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        counts
            .iter()
            .any(|(_, d, _, n)| d == "reviews" && *n == Some(1)),
        "{counts:?}"
    );
    assert!(shop.rows("SELECT review_id FROM reviews").await.is_empty());

    // Inactivity: created before 2023 and nothing since.
    let page = connector
        .inactive(at("2022-12-31T00:00:00Z"), None)
        .await
        .unwrap();
    let mut emails: Vec<&str> = page.accounts.iter().map(|a| a.email.as_str()).collect();
    emails.sort();
    assert_eq!(emails, ["anna@example.nl", "bram@example.nl"]);
    let anna = page
        .accounts
        .iter()
        .find(|a| a.email == "anna@example.nl")
        .unwrap();
    // "Keep my account" records activity: Anna is no longer listed.
    connector
        .record_activity(
            &AccountRef {
                id: anna.account.clone(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let page = connector
        .inactive(at("2022-12-31T00:00:00Z"), None)
        .await
        .unwrap();
    let emails: Vec<&str> = page.accounts.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(emails, ["bram@example.nl"]);
    // The schedule's dry run sees the three accounts idle for over a year.
    let lines = privacy_portal::workflow::anonymise::run(app.state(), chrono::Utc::now(), true)
        .await
        .unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.action == "warn"));
    app.stop().await;
    shop.close().await;
}

async fn export(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    // More reviews than one export page holds: every one exactly once.
    let values: Vec<String> = (0..1100)
        .map(|n| {
            format!(
                "({}, 1, 'Tea, green', 3, 'Review {n}', '2024-02-01 10:00:00')",
                10_000 + n
            )
        })
        .collect();
    shop.exec(&format!("INSERT INTO reviews VALUES {}", values.join(", ")))
        .await;
    let app = shop.app().await;
    let email = "anna@example.nl";

    // Straight from the connector: every category, types right.
    let conn = app.state().connector.clone();
    let acc = conn
        .find_account(&privacy_portal::domain::Email::parse("Anna@Example.nl").unwrap())
        .await
        .unwrap()
        .expect("found case-insensitively");
    let mut by_cat: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = conn.export_records(&acc, cursor.as_deref()).await.unwrap();
        for (c, v) in page.records {
            by_cat.entry(c).or_default().push(v);
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let profile = &by_cat["profile"][0];
    assert_eq!(profile["first_name"], "Anna", "{kind:?} {profile}");
    assert_eq!(profile["customer_id"], 1);
    assert_eq!(profile["is_vip"], true);
    assert_eq!(profile["birth_date"], "1985-04-12");
    assert_eq!(profile["created_at"], "2021-03-01T10:15:00");
    assert_eq!(profile["avatar"], "iVBORw0K", "binary as base64");
    assert_eq!(by_cat["addresses"].len(), 1);
    assert_eq!(by_cat["addresses"][0]["postal_code"], "1012 AB");
    let orders = &by_cat["orders"];
    assert_eq!(orders.len(), 2);
    assert_eq!(
        orders[0]["total"], "49.95",
        "exact decimals: {:?}",
        orders[0]
    );
    assert_eq!(orders[1]["total"], "100.00");
    assert_eq!(orders[0]["order_date"], "2023-05-02");
    assert_eq!(orders[0]["billing_address"], "Damrak 12, Amsterdam");
    assert_eq!(by_cat["order_lines"].len(), 3);
    assert_eq!(by_cat["order_lines"][0]["quantity"], 1);
    let payments = &by_cat["payments"];
    assert_eq!(payments.len(), 2);
    assert_eq!(payments[0]["iban"], Value::Null);
    assert_eq!(payments[1]["iban"], "NL91ABNA0417164300");
    assert_eq!(payments[1]["collected_at"], "2024-01-20T06:00:00");
    assert_eq!(by_cat["newsletter"][0]["subscribed"], true);
    let reviews = &by_cat["reviews"];
    assert_eq!(reviews.len(), 1101);
    let ids: std::collections::BTreeSet<i64> = reviews
        .iter()
        .map(|r| r["review_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1101, "every review once");
    // Nobody else's rows.
    assert!(orders.iter().all(|o| o["customer_id"] == 1));

    // Through the portal: the archive holds the same categories.
    let (id, token) = app.verified("export", email, "en").await;
    let (status, body) = submit(&app, &id, &token, json!({})).await;
    assert_eq!(status, 202, "{body}");
    wait_status(&app, &id, &token, "completed").await;
    let res = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}/archive")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let files = unzip(&res.bytes().await.unwrap());
    let data: Value = serde_json::from_str(&files["data.json"]).unwrap();
    assert_eq!(data["profile"]["last_name"], "de Vries", "{data}");
    for cat in [
        "addresses",
        "orders",
        "order_lines",
        "payments",
        "newsletter",
        "reviews",
    ] {
        assert!(
            !data[cat].as_array().unwrap_or(&vec![]).is_empty(),
            "{cat} in the archive"
        );
    }
    app.stop().await;
    shop.close().await;
}

async fn erasure(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    let app = shop.app().await;
    let before = shop.dump().await;
    let email = "anna@example.nl";
    let (id, token) = app.verified("delete", email, "en").await;
    // The knowledge check goes through the view; a wrong number is refused.
    let (status, body) = submit(
        &app,
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
        &app,
        &id,
        &token,
        json!({"postcode": "1012ab", "house_number": " 12 ", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_status(&app, &id, &token, "completed").await;

    let after = shop.dump().await;
    // The account row stays as an erased stub.
    let anna = &after["customers"][0];
    let hash = anna["email"].as_str().unwrap();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{anna:?}"
    );
    assert_eq!(anna["first_name"], "erased");
    assert_eq!(anna["last_name"], "erased");
    for col in ["phone", "birth_date", "avatar", "address_id"] {
        assert_eq!(anna[col], Value::Null, "{col}");
    }
    assert_eq!(anna["created_at"], before["customers"][0]["created_at"]);
    // Deleted tables hold nothing of hers.
    assert!(after["addresses"].iter().all(|a| a["address_id"] != 1));
    assert!(after["newsletter"].iter().all(|n| n["customer_id"] != 1));
    assert!(after["reviews"].iter().all(|r| r["customer_id"] != 1));
    // Bookkeeping rows stay, their personal columns erased.
    let orders: Vec<_> = after["orders"]
        .iter()
        .filter(|o| o["customer_id"] == 1)
        .collect();
    assert_eq!(orders.len(), 2);
    for o in &orders {
        assert_eq!(o["billing_name"], "erased");
        assert_eq!(o["billing_address"], Value::Null);
        assert_eq!(o["billing_postal_code"], Value::Null);
    }
    assert_eq!(orders[0]["total"], before["orders"][0]["total"]);
    assert_eq!(after["order_lines"], before["order_lines"]);
    let payments: Vec<_> = after["payments"]
        .iter()
        .filter(|p| p["order_id"] == 101 || p["order_id"] == 102)
        .collect();
    assert_eq!(payments.len(), 2);
    assert!(payments.iter().all(|p| p["iban"] == Value::Null));
    assert_eq!(payments[1]["amount"], before["payments"][1]["amount"]);
    // Everyone else untouched.
    let others = |d: &BTreeMap<String, Vec<serde_json::Map<String, Value>>>| {
        let mut d = d.clone();
        d.get_mut("customers")
            .unwrap()
            .retain(|c| c["customer_id"] != 1);
        d.get_mut("addresses")
            .unwrap()
            .retain(|a| a["address_id"] != 1);
        d.get_mut("orders")
            .unwrap()
            .retain(|o| o["customer_id"] != 1);
        d.get_mut("payments")
            .unwrap()
            .retain(|p| p["order_id"] != 101 && p["order_id"] != 102);
        d.get_mut("newsletter")
            .unwrap()
            .retain(|n| n["customer_id"] != 1);
        d.get_mut("reviews")
            .unwrap()
            .retain(|r| r["customer_id"] != 1);
        d
    };
    assert_eq!(others(&after), others(&before));

    // The receipt says what changed: deleted categories that had rows,
    // kept ones with their counts.
    let case = staff_case(&app, &id).await;
    let receipt = &case["steps"][0]["result"];
    assert_eq!(
        receipt["deleted"],
        json!(["profile", "addresses", "newsletter", "reviews"]),
        "{case}"
    );
    assert_eq!(
        receipt["retained"],
        json!([
            {"category": "orders", "count": 2, "reason": "Bookkeeping law: 7 years"},
            {"category": "payments", "count": 2, "reason": "Bookkeeping law: 7 years"}
        ])
    );
    let proof = app.mail.wait_for(email, 2).await;
    let proof = &proof.last().unwrap().text;
    assert!(proof.to_lowercase().contains("reviews"), "{proof}");
    // The address is no longer found: erased stays erased.
    let found = app
        .state()
        .connector
        .find_account(&privacy_portal::domain::Email::parse(email).unwrap())
        .await
        .unwrap();
    assert!(found.is_none());
    // A repeat changes nothing (the hash is not hashed again).
    let again = app
        .state()
        .connector
        .erase(&AccountRef { id: "1".into() }, &id)
        .await
        .unwrap();
    assert!(matches!(
        again,
        privacy_portal::connector::EraseOutcome::Done(_)
    ));
    assert_eq!(shop.dump().await, after);
    app.stop().await;
    shop.close().await;
}

async fn blocked_erasure(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    let app = shop.app().await;
    let before = shop.dump().await;
    let (id, token) = app.verified("delete", "bram@example.nl", "en").await;
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "3511 LX", "house_number": "4A", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "escalated", "{body}");
    let case = staff_case(&app, &id).await.to_string();
    assert!(case.contains("recent_direct_debit"), "{case}");
    // Collected ten days ago: erasure possible 46 days from now.
    let days: Vec<String> = [45, 46, 47]
        .iter()
        .map(|d| (chrono::Utc::now().date_naive() + chrono::Days::new(*d)).to_string())
        .collect();
    assert!(
        days.iter().any(|d| case.contains(d.as_str())),
        "{days:?} in {case}"
    );
    assert_eq!(shop.dump().await, before, "nothing erased");
    app.stop().await;
    shop.close().await;
}

/// Starts a change for `old`, gives `new` and proves it with the mailed code.
async fn change_email(app: &TestApp, old: &str, new: &str) -> Value {
    let (id, token) = app.verified("change_email", old, "en").await;
    let (status, body) = submit(app, &id, &token, json!({"new_email": new})).await;
    assert_eq!(status, 200, "{body}");
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
    res.json().await.unwrap()
}

async fn email_change(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    let app = shop.app().await;
    let body = change_email(&app, "emma@example.com", "emma.clarke@example.org").await;
    assert_eq!(body["status"], "completed", "{body}");
    let rows = shop
        .rows("SELECT email FROM customers WHERE customer_id = 3")
        .await;
    assert_eq!(rows[0]["email"], "emma.clarke@example.org");

    // Taken: another row holds the address, whatever its case.
    shop.exec("UPDATE customers SET email = 'Anna@Example.NL' WHERE customer_id = 1")
        .await;
    let body = change_email(&app, "eva@example.nl", "anna@example.nl").await;
    assert_eq!(body["status"], "escalated", "{body}");
    assert_eq!(body["reasons"], json!(["email_in_use"]));
    let rows = shop
        .rows("SELECT email FROM customers WHERE customer_id = 4")
        .await;
    assert_eq!(rows[0]["email"], "eva@example.nl", "nothing moved");
    app.stop().await;
    shop.close().await;
}

async fn objection(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    let app = shop.app().await;
    let email = "anna@example.nl";
    let (id, token) = app.verified("object", email, "en").await;
    let (status, body) = submit(&app, &id, &token, json!({"purposes": ["newsletter"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    let rows = shop
        .rows("SELECT customer_id, subscribed FROM newsletter ORDER BY customer_id")
        .await;
    assert_eq!(rows[0]["subscribed"], false, "{rows:?}");
    assert_eq!(rows[1]["subscribed"], true, "others still subscribed");
    let acc = AccountRef { id: "1".into() };
    let consents = app.state().connector.consents(&acc).await.unwrap();
    assert_eq!(consents.get("newsletter"), Some(&false));
    app.stop().await;
    shop.close().await;
}

async fn unknown_column(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    let mapping = shop
        .mapping()
        .replace("phone = \"null\"", "phone_number = \"null\"");
    let company = shop.company(&mapping);
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(common::fresh_database(&tmp).await, 0, 0);
    settings.company = company;
    let err = match privacy_portal::build_state(settings).await {
        Ok(_) => panic!("the start must refuse"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("customers.phone_number"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    shop.close().await;
}

/// The database refuses one statement of the erasure: nothing of it
/// stays, and the case names the table.
async fn failed_erasure_rolls_back(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    match kind {
        Kind::Sqlite => {
            shop.exec(
                "CREATE TRIGGER payments_locked BEFORE UPDATE OF iban ON payments \
                 BEGIN SELECT RAISE(ABORT, 'payments are locked'); END",
            )
            .await
        }
        Kind::Postgres => {
            shop.exec(
                "CREATE FUNCTION payments_locked() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'payments are locked'; END $$",
            )
            .await;
            shop.exec(
                "CREATE TRIGGER payments_locked BEFORE UPDATE OF iban ON payments \
                 FOR EACH ROW EXECUTE FUNCTION payments_locked()",
            )
            .await
        }
        Kind::MariaDb => {
            shop.exec(
                "CREATE TRIGGER payments_locked BEFORE UPDATE ON payments FOR EACH ROW \
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'payments are locked'",
            )
            .await
        }
    }
    let app = shop.app().await;
    let before = shop.dump().await;
    let (id, token) = app.verified("delete", "anna@example.nl", "en").await;
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "1012 AB", "house_number": "12", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let case = eventually("the step failed", || async {
        let case = staff_case(&app, &id).await;
        let failed = case["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["system"] == "shop" && s["status"] == "failed");
        if failed {
            Ok(case)
        } else {
            Err(case)
        }
    })
    .await;
    let shop_step = case["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "shop")
        .unwrap();
    let error = shop_step["error"].as_str().unwrap_or_default();
    assert!(error.contains("payments (iban)"), "{shop_step}");
    assert!(error.contains("payments are locked"), "{shop_step}");
    assert_eq!(shop.dump().await, before, "rolled back whole");
    app.stop().await;
    shop.close().await;
}

async fn check_and_preview(kind: Kind) {
    let Some(shop) = shop(kind).await else { return };
    let app = shop.app().await;
    let lines = privacy_portal::cli::connectors_check(app.state()).await;
    assert!(lines.iter().all(|(_, ok)| *ok), "{lines:?}");
    assert!(lines[0].0.contains("shop (sql"), "{lines:?}");
    // newsletter.customer_id is its primary key; every link column of the
    // example has an index: no warning.
    assert!(
        !lines.iter().any(|(l, _)| l.starts_with("warn")),
        "{lines:?}"
    );
    // InnoDB indexes every foreign key column itself: MariaDB cannot lose
    // the index.
    if !matches!(kind, Kind::MariaDb) {
        shop.exec("DROP INDEX reviews_customer").await;
        let app2 = shop.app().await;
        let lines = privacy_portal::cli::connectors_check(app2.state()).await;
        assert!(
            lines
                .iter()
                .any(|(l, _)| l.starts_with("warn") && l.contains("reviews.customer_id")),
            "{lines:?}"
        );
        app2.stop().await;
    }

    let before = shop.dump().await;
    let out = privacy_portal::workflow::connectors::preview(app.state(), "anna@example.nl")
        .await
        .unwrap()
        .join("\n");
    assert!(out.contains("orders 2 row(s): kept"), "{out}");
    assert!(out.contains("reviews 1 row(s): deleted"), "{out}");
    assert!(out.contains("addresses 1 row(s): deleted"), "{out}");
    assert!(
        out.contains("customers 1 row(s): personal columns erased"),
        "{out}"
    );
    assert!(out.contains("order_lines 3 row(s): unchanged"), "{out}");
    assert_eq!(shop.dump().await, before, "a preview changes nothing");
    app.stop().await;
    shop.close().await;
}
