//! The SQL connector on a schema it did not design: a subset of Sakila
//! (tests/data/sakila, from github.com/jOOQ/sakila, BSD-2-Clause) on
//! MariaDB when PORTAL_TEST_MARIADB_URL is set; each test gets its own
//! database, dropped at the end. Without the variable the tests pass
//! without running.

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use common::{eventually, TestApp};
use privacy_portal::connector::sql::db::{self, Backend, Pool, Q};
use serde_json::{json, Value};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sakila");

type Rows = Vec<serde_json::Map<String, Value>>;

struct Sakila {
    url: String,
    pool: Pool,
    backend: Backend,
    base: String,
    name: String,
}

fn file(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).unwrap()
}

async fn admin(base: &str, sql: &str) {
    let (_, pool) = db::connect(base).await.expect("admin connection");
    pool.run_script(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

async fn sakila() -> Option<Sakila> {
    let base = std::env::var("PORTAL_TEST_MARIADB_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let name = format!("portal_sakila_{}", uuid::Uuid::new_v4().simple());
    admin(&base, &format!("CREATE DATABASE `{name}`")).await;
    let mut u = url::Url::parse(&base).unwrap();
    u.set_path(&format!("/{name}"));
    let url = u.to_string();
    let (backend, pool) = db::connect(&url).await.expect("sakila database");
    for f in ["schema.sql", "data.sql", "portal-mariadb.sql"] {
        pool.run_script(&file(f))
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    Some(Sakila {
        url,
        pool,
        backend,
        base,
        name,
    })
}

impl Sakila {
    async fn rows(&self, sql: &str) -> Rows {
        let mut q = Q::new(self.backend);
        q.push(sql);
        self.pool
            .fetch(&q)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn dump(&self) -> BTreeMap<&'static str, Rows> {
        let mut out = BTreeMap::new();
        for (t, k) in [
            ("customer", "customer_id"),
            ("address", "address_id"),
            ("rental", "rental_id"),
            ("payment", "payment_id"),
            ("inventory", "inventory_id"),
            ("staff", "staff_id"),
            ("store", "store_id"),
        ] {
            out.insert(
                t,
                self.rows(&format!("SELECT * FROM {t} ORDER BY {k}")).await,
            );
        }
        out
    }

    async fn app(&self) -> TestApp {
        let var = format!(
            "SAKILA_DATABASE_URL_{}",
            uuid::Uuid::new_v4().simple().to_string().to_uppercase()
        );
        std::env::set_var(&var, &self.url);
        let mapping =
            file("connectors.toml").replace("\"SAKILA_DATABASE_URL\"", &format!("\"{var}\""));
        let toml = format!("{}\n{mapping}", privacy_portal::config::DEMO_COMPANY_TOML);
        let company = privacy_portal::config::parse_company(&toml, "test").unwrap();
        TestApp::spawn_with(move |s| s.company = company).await
    }

    async fn close(self) {
        self.pool.close().await;
        admin(
            &self.base,
            &format!("DROP DATABASE IF EXISTS `{}`", self.name),
        )
        .await;
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

const MARY: &str = "mary.smith@sakilacustomer.org";

#[tokio::test(flavor = "multi_thread")]
async fn export() {
    let Some(db) = sakila().await else { return };
    let app = db.app().await;

    // Sakila stores the address in capitals: found whatever the case.
    let conn = app.state().connector.clone();
    let acc = conn
        .find_account(&privacy_portal::domain::Email::parse(MARY).unwrap())
        .await
        .unwrap()
        .expect("found case-insensitively");
    assert_eq!(acc.id, "1");
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
    assert_eq!(profile["first_name"], "MARY", "{profile}");
    assert_eq!(profile["email"], "MARY.SMITH@sakilacustomer.org");
    assert_eq!(profile["create_date"], "2006-02-14T00:00:00");
    let addr = &by_cat["addresses"];
    assert_eq!(addr.len(), 1);
    assert_eq!(addr[0]["address"], "1913 Hanoi Way");
    assert_eq!(addr[0]["postal_code"], "35200");
    let rentals = &by_cat["rentals"];
    assert_eq!(rentals.len(), 32);
    assert!(rentals.iter().all(|r| r["customer_id"] == 1));
    let payments = &by_cat["payments"];
    assert_eq!(payments.len(), 32);
    assert!(payments.iter().all(|p| p["customer_id"] == 1));
    // DECIMAL(5,2) stays exact, as text.
    assert!(
        payments.iter().all(|p| p["amount"]
            .as_str()
            .is_some_and(|a| a.len() >= 4 && a.as_bytes()[a.len() - 3] == b'.')),
        "{:?}",
        payments[0]
    );
    let total: f64 = payments
        .iter()
        .map(|p| p["amount"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(format!("{total:.2}"), "118.68");

    // Through the portal: the archive holds every category.
    let (id, token) = app.verified("export", MARY, "en").await;
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
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
    let mut json_text = String::new();
    zip.by_name("data.json")
        .unwrap()
        .read_to_string(&mut json_text)
        .unwrap();
    let data: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(data["profile"]["last_name"], "SMITH", "{data}");
    assert_eq!(data["rentals"].as_array().map(Vec::len), Some(32));
    assert_eq!(data["payments"].as_array().map(Vec::len), Some(32));
    assert_eq!(data["addresses"].as_array().map(Vec::len), Some(1));
    app.stop().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn erasure() {
    let Some(db) = sakila().await else { return };
    let app = db.app().await;
    let before = db.dump().await;
    let (id, token) = app.verified("delete", MARY, "en").await;
    // The house number is the address line's number: 1913 Hanoi Way.
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "35200", "house_number": "1921", "confirm": true}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("details_mismatch")),
        "{body}"
    );
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "35200", "house_number": "1913", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_status(&app, &id, &token, "completed").await;

    let after = db.dump().await;
    let mary = &after["customer"][0];
    assert_eq!(mary["customer_id"], 1);
    assert_eq!(mary["first_name"], "erased", "{mary:?}");
    assert_eq!(mary["last_name"], "erased");
    assert_eq!(mary["email"], Value::Null);
    assert!(mary["active"] == 0 || mary["active"] == false, "{mary:?}");
    assert_eq!(mary["address_id"], 5, "the stub keeps its address row");
    assert_eq!(mary["create_date"], before["customer"][0]["create_date"]);
    let addr = after["address"]
        .iter()
        .find(|a| a["address_id"] == 5)
        .unwrap();
    assert_eq!(addr["address"], "erased", "{addr:?}");
    assert_eq!(addr["district"], "erased");
    assert_eq!(addr["phone"], "erased");
    assert_eq!(addr["postal_code"], Value::Null);
    assert_eq!(addr["address2"], Value::Null);
    // Rentals and payments stay as they were.
    for t in ["rental", "payment", "inventory", "staff", "store"] {
        assert_eq!(after[t], before[t], "{t}");
    }
    assert_eq!(
        after["payment"]
            .iter()
            .filter(|p| p["customer_id"] == 1)
            .count(),
        32
    );
    // Everyone else untouched.
    assert_eq!(after["customer"][1..], before["customer"][1..]);
    let others = |rows: &Rows| -> Rows {
        rows.iter()
            .filter(|a| a["address_id"] != 5)
            .cloned()
            .collect()
    };
    assert_eq!(others(&after["address"]), others(&before["address"]));

    let case = staff_case(&app, &id).await;
    let receipt = &case["steps"][0]["result"];
    assert_eq!(
        receipt["deleted"],
        json!(["profile", "addresses"]),
        "{case}"
    );
    assert_eq!(
        receipt["retained"],
        json!([
            {"category": "rentals", "count": 32, "reason": "Stock records: 2 years"},
            {"category": "payments", "count": 32, "reason": "Bookkeeping law: 7 years"}
        ])
    );
    // No email left: not found again.
    let found = app
        .state()
        .connector
        .find_account(&privacy_portal::domain::Email::parse(MARY).unwrap())
        .await
        .unwrap();
    assert!(found.is_none());
    app.stop().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreturned_rental_blocks() {
    let Some(db) = sakila().await else { return };
    let app = db.app().await;
    let before = db.dump().await;
    // Kenneth Gooden (1542 Lubumbashi Boulevard, 62472) never brought
    // rental 14426 back.
    let (id, token) = app
        .verified("delete", "kenneth.gooden@sakilacustomer.org", "en")
        .await;
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"postcode": "62472", "house_number": "1542", "confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "escalated", "{body}");
    let case = staff_case(&app, &id).await.to_string();
    assert!(case.contains("open_order"), "{case}");
    assert_eq!(db.dump().await, before, "nothing erased");
    app.stop().await;
    db.close().await;
}
