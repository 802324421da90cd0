//! The protocol over real HTTP, signed as the portal signs.

use std::sync::atomic::{AtomicUsize, Ordering};

use reference_company::{signature, Config, Running};
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn recent(days_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn customers() -> String {
    let anna = json!({"external_id":"C-1001","email":"anna@example.nl","name":"Anna de Vries","locale":"nl",
        "postcode":"1012 AB","house_number":"12","phone":"+31612345678","iban":"NL91ABNA0417164300",
        "created_at":"2023-01-10T10:00:00Z","balance_cents":250,"loyalty_tier":"gold",
        "orders":[{"id":"O-1","placed_at":"2024-05-01T09:00:00Z","status":"open","total_cents":4599,"currency":"EUR","gift_wrap":true},
                  {"id":"O-2","placed_at":"2024-04-01T09:00:00Z","status":"delivered","total_cents":1000,"currency":"EUR"}],
        "payments":[{"method":"direct_debit","amount_cents":4599,"collected_at":recent(10)},
                    {"method":"direct_debit","amount_cents":100,"collected_at":recent(100)}],
        "consents":{"newsletter":true,"reviews":false},
        "contacts":[{"at":"2024-05-03T12:00:00Z","channel":"phone","summary":"asked about delivery"}],
        "ip_log":[{"at":"2024-05-01T08:59:00Z","ip":"203.0.113.7"}]});
    let bram = json!({"external_id":"C-1002","email":"Bram@Example.nl","name":"Bram Jansen",
        "postcode":"3511AA","house_number":"5a",
        "orders":[{"id":"O-9","placed_at":"2022-01-01T09:00:00Z","status":"delivered","total_cents":500,"currency":"EUR"}]});
    format!("{anna}\n\n{bram}\n")
}

struct Shop {
    running: Running,
    http: reqwest::Client,
    secret: Vec<u8>,
    n: AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Shop {
    async fn start(import: &str, page_size: usize) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let secret = signature::decode_secret(SECRET).unwrap();
        let mut cfg = Config::new(dir.path().join("shop.sqlite"), secret.clone());
        cfg.page_size = page_size;
        reference_company::import_jsonl(&cfg.db_path, import)
            .await
            .unwrap();
        let running = reference_company::start(cfg, "127.0.0.1:0").await.unwrap();
        Shop {
            running,
            http: reqwest::Client::new(),
            secret,
            n: AtomicUsize::new(0),
            _dir: dir,
        }
    }

    async fn send(&self, op: &str, body: &str, secret: &[u8], timestamp: i64) -> (u16, Value) {
        let id = format!("msg_{}", self.n.fetch_add(1, Ordering::Relaxed));
        let sig = signature::sign(secret, &id, timestamp, body.as_bytes());
        let resp = self
            .http
            .post(format!("{}/{op}", self.running.url()))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, op: &str, body: Value) -> (u16, Value) {
        let now = chrono::Utc::now().timestamp();
        self.send(op, &body.to_string(), &self.secret, now).await
    }

    async fn ok(&self, op: &str, body: Value) -> Value {
        let (status, answer) = self.call(op, body).await;
        assert_eq!(status, 200, "{op}: {answer}");
        answer
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_checked() {
    let shop = Shop::start(&customers(), 1000).await;
    let control = &shop.running.control;
    assert_eq!(shop.ok("ping", json!({})).await, json!({"ok": true}));

    let now = chrono::Utc::now().timestamp();
    let (status, body) = shop.send("ping", "{}", b"wrong secret", now).await;
    assert_eq!((status, body), (401, json!({"error": "bad_signature"})));
    let (status, body) = shop.send("ping", "{}", &shop.secret, now - 301).await;
    assert_eq!((status, body), (401, json!({"error": "stale_timestamp"})));
    let (status, body) = shop.send("ping", "{}", &shop.secret, now + 301).await;
    assert_eq!((status, body), (401, json!({"error": "stale_timestamp"})));

    // Unsigned, and signed over other bytes than were sent.
    let url = format!("{}/ping", shop.running.url());
    let resp = shop.http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let sig = signature::sign(&shop.secret, "m", now, b"{}");
    let resp = shop
        .http
        .post(&url)
        .header("webhook-id", "m")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", sig)
        .body("{ }")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    assert_eq!(control.refused_signatures(), 5);
    assert_eq!(control.calls("ping"), 1);

    // Signed but wrong: unknown operation, malformed body.
    assert_eq!(shop.call("frobnicate", json!({})).await.0, 404);
    let (status, body) = shop.send("lookup", "not json", &shop.secret, now).await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string());
    assert_eq!(shop.call("lookup", json!({"mail": "x"})).await.0, 400);

    control.set_down(true);
    assert_eq!(shop.call("ping", json!({})).await.0, 503);
    control.set_down(false);
    assert_eq!(control.calls_while_down(), 1);
    assert_eq!(shop.call("ping", json!({})).await.0, 200);
    shop.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_knowledge_blockers_consents() {
    let shop = Shop::start(&customers(), 1000).await;
    let found = shop.ok("lookup", json!({"email": "ANNA@example.nl"})).await;
    assert_eq!(found, json!({"account": "C-1001"}));
    let none = shop
        .ok("lookup", json!({"email": "nobody@example.nl"}))
        .await;
    assert_eq!(none, json!({"account": null}));

    for (postcode, house_number, expected) in [
        ("1012ab", "12", true),
        (" 1012 AB ", " 12 ", true),
        ("1012 AB", "12a", false),
        ("1012 AC", "12", false),
    ] {
        let body = json!({"account": "C-1001", "postcode": postcode, "house_number": house_number});
        let answer = shop.ok("knowledge", body).await;
        assert_eq!(
            answer,
            json!({ "match": expected }),
            "{postcode}/{house_number}"
        );
    }
    let body = json!({"account": "C-1002", "postcode": "3511 aa", "house_number": "5A"});
    assert_eq!(shop.ok("knowledge", body).await, json!({"match": true}));

    let blockers = shop.ok("blockers", json!({"account": "C-1001"})).await;
    let blockers = blockers["blockers"].as_array().unwrap();
    let reasons: Vec<_> = blockers
        .iter()
        .map(|b| b["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["open_order", "outstanding_balance", "recent_direct_debit"]
    );
    assert_eq!(blockers[0]["detail"], "O-1");
    assert_eq!(blockers[1]["detail"], "250");
    let until =
        chrono::DateTime::parse_from_rfc3339(blockers[2]["until"].as_str().unwrap()).unwrap();
    let days = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((45..=46).contains(&days), "{days}");
    let none = shop.ok("blockers", json!({"account": "C-1002"})).await;
    assert_eq!(none, json!({"blockers": []}));

    let consents = shop.ok("consents", json!({"account": "C-1001"})).await;
    assert_eq!(
        consents,
        json!({"consents": {"newsletter": true, "reviews": false}})
    );
    shop.running.stop().await;
}

/// A newsletter tool: only addresses and consents, reached by email.
#[tokio::test(flavor = "multi_thread")]
async fn secondary_by_email_stop_and_export() {
    let shop = Shop::start(
        r#"{"email":"anna@example.nl","consents":{"newsletter":true,"product_news":true}}"#,
        1000,
    )
    .await;
    let email = json!({"email": "Anna@Example.nl"});
    let export = shop
        .ok(
            "export",
            json!({"email": "anna@example.nl", "cursor": null}),
        )
        .await;
    assert_eq!(
        export,
        json!({"records": [
            {"category": "profile", "data": {"id": "anna@example.nl", "email": "anna@example.nl", "balance_cents": 0}},
            {"category": "consents", "data": {"newsletter": true, "product_news": true}}],
         "next_cursor": null})
    );
    let body = json!({"email": "anna@example.nl", "keys": ["newsletter"], "request_id": "R-stop"});
    assert_eq!(shop.ok("stop", body.clone()).await, json!({"ok": true}));
    assert_eq!(shop.ok("stop", body).await, json!({"ok": true}));
    assert_eq!(shop.running.control.calls_for("stop", "R-stop"), 2);
    let consents = shop.ok("consents", email).await;
    assert_eq!(
        consents,
        json!({"consents": {"newsletter": false, "product_news": true}})
    );
    let id = shop
        .running
        .control
        .account_by_email("anna@example.nl")
        .await
        .unwrap()
        .unwrap();
    assert!(!shop.running.control.consents(&id).await.unwrap()["newsletter"]);

    // Somebody this system never heard of: nothing held, nothing to do.
    let nobody = json!({"email": "x@example.nl", "keys": ["newsletter"], "request_id": "R-x"});
    assert_eq!(shop.ok("stop", nobody).await, json!({"ok": true}));
    let consents = shop.ok("consents", json!({"email": "x@example.nl"})).await;
    assert_eq!(consents, json!({"consents": {}}));
    shop.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_pages_through_everything_once() {
    let orders: Vec<Value> = (0..250)
        .map(|i| json!({"id": format!("O-{i}"), "status": "delivered", "total_cents": i, "currency": "EUR", "note": i}))
        .collect();
    let big = json!({"external_id": "C-9", "email": "big@example.nl", "name": "Big Buyer",
        "orders": orders, "contacts": [{"at": "2024-01-01T00:00:00Z", "channel": "mail", "summary": "hi"}],
        "consents": {"newsletter": false}});
    let shop = Shop::start(&format!("{}{big}\n", customers()), 100).await;

    let mut cursor = Value::Null;
    let mut records = Vec::new();
    let mut pages = 0;
    loop {
        let page = shop
            .ok("export", json!({"account": "C-9", "cursor": cursor}))
            .await;
        let got = page["records"].as_array().unwrap();
        assert!(got.len() <= 100);
        records.extend(got.iter().cloned());
        pages += 1;
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    // 1 profile + 250 orders + 1 contact + 1 consents = 253: three pages.
    assert_eq!(pages, 3);
    assert_eq!(records.len(), 253);
    assert_eq!(records[0]["category"], "profile");
    assert_eq!(records[0]["data"]["name"], "Big Buyer");
    let orders: Vec<_> = records
        .iter()
        .filter(|r| r["category"] == "orders")
        .collect();
    assert_eq!(orders.len(), 250);
    for (i, order) in orders.iter().enumerate() {
        assert_eq!(order["data"]["id"], format!("O-{i}"));
        assert_eq!(order["data"]["note"], i);
    }
    assert_eq!(records[251]["category"], "contacts");
    assert_eq!(
        records[252],
        json!({"category": "consents", "data": {"newsletter": false}})
    );

    // Unknown fields come back, on the profile and on rows.
    let anna = shop
        .ok("export", json!({"account": "C-1001", "cursor": null}))
        .await;
    assert_eq!(anna["next_cursor"], Value::Null);
    let anna = anna["records"].as_array().unwrap();
    assert_eq!(anna[0]["data"]["loyalty_tier"], "gold");
    assert_eq!(anna[0]["data"]["iban"], "NL91ABNA0417164300");
    assert_eq!(anna[1]["data"]["gift_wrap"], true);
    let cats: Vec<_> = anna
        .iter()
        .map(|r| r["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        cats,
        ["profile", "orders", "orders", "payments", "payments", "contacts", "ip_log", "consents"]
    );

    let bad = shop
        .call("export", json!({"account": "C-9", "cursor": "nonsense"}))
        .await;
    assert_eq!(bad.0, 400);
    let nobody = shop
        .ok("export", json!({"email": "x@example.nl", "cursor": null}))
        .await;
    assert_eq!(nobody, json!({"records": [], "next_cursor": null}));
    shop.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn erase_runs_once_per_request_id() {
    let shop = Shop::start(&customers(), 1000).await;
    let control = &shop.running.control;
    let body = json!({"account": "C-1001", "request_id": "R-1"});
    let first = shop.ok("erase", body.clone()).await;
    assert_eq!(
        first,
        json!({"status": "done",
               "deleted": ["profile", "bank_details", "contacts", "ip_log", "consents"],
               "retained": [{"category": "orders", "count": 2, "reason": "bookkeeping_7_years"},
                            {"category": "payments", "count": 2, "reason": "bookkeeping_7_years"}]})
    );
    assert_eq!(shop.ok("erase", body).await, first);
    assert_eq!(control.erasures_executed("R-1"), 1);
    assert_eq!(control.erase_calls("R-1"), 2);

    assert_eq!(control.customer_email("C-1001").await.unwrap(), None);
    assert!(control.is_erased("C-1001").await.unwrap());
    assert!(control.consents("C-1001").await.unwrap().is_empty());
    let counts = control.counts("C-1001").await.unwrap();
    assert_eq!(
        (
            counts.orders,
            counts.payments,
            counts.contacts,
            counts.ip_log
        ),
        (2, 2, 0, 0)
    );
    let gone = shop.ok("lookup", json!({"email": "anna@example.nl"})).await;
    assert_eq!(gone, json!({"account": null}));
    let body = json!({"account": "C-1001", "postcode": "1012 AB", "house_number": "12"});
    assert_eq!(shop.ok("knowledge", body).await, json!({"match": false}));
    let export = shop
        .ok("export", json!({"account": "C-1001", "cursor": null}))
        .await;
    let profile = &export["records"][0];
    assert_eq!(profile["category"], "profile");
    assert!(profile["data"].get("name").is_none() && profile["data"].get("loyalty_tier").is_none());

    // Only what was held is reported: Bram had no bank details, contacts or consents.
    let bram = shop
        .ok(
            "erase",
            json!({"email": "bram@example.nl", "request_id": "R-2"}),
        )
        .await;
    assert_eq!(
        bram,
        json!({"status": "done", "deleted": ["profile"],
               "retained": [{"category": "orders", "count": 1, "reason": "bookkeeping_7_years"}]})
    );
    let nobody = shop
        .ok(
            "erase",
            json!({"email": "x@example.nl", "request_id": "R-3"}),
        )
        .await;
    assert_eq!(
        nobody,
        json!({"status": "done", "deleted": [], "retained": []})
    );
    assert_eq!(
        shop.call("erase", json!({"account": "C-1001"})).await.0,
        400
    );
    shop.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn async_erase_is_pending_then_done() {
    let shop = Shop::start(&customers(), 1000).await;
    let control = &shop.running.control;
    control.set_async_erase(true);
    let body = json!({"account": "C-1002", "request_id": "R-9"});
    assert_eq!(
        shop.call("erase", body.clone()).await,
        (202, json!({"status": "pending"}))
    );
    assert_eq!(control.erasures_executed("R-9"), 0);
    // A retried erase while pending starts nothing new.
    assert_eq!(
        shop.call("erase", body).await,
        (202, json!({"status": "pending"}))
    );
    let status = json!({"request_id": "R-9"});
    assert_eq!(
        shop.call("erase-status", status.clone()).await,
        (202, json!({"status": "pending"}))
    );
    assert!(control.customer_email("C-1002").await.unwrap().is_some());
    let done = shop.ok("erase-status", status.clone()).await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["deleted"], json!(["profile"]));
    assert_eq!(shop.ok("erase-status", status).await, done);
    assert_eq!(control.erasures_executed("R-9"), 1);
    assert_eq!(control.erase_calls("R-9"), 5);
    assert_eq!(control.customer_email("C-1002").await.unwrap(), None);

    let unknown = shop
        .call("erase-status", json!({"request_id": "R-unknown"}))
        .await;
    assert_eq!(unknown, (404, json!({"error": "unknown_request"})));

    // More polls before it is done, when configured.
    control.set_pending_polls(3);
    let body = json!({"account": "C-1001", "request_id": "R-10"});
    assert_eq!(shop.call("erase", body).await.0, 202);
    for _ in 0..3 {
        assert_eq!(
            shop.call("erase-status", json!({"request_id": "R-10"}))
                .await
                .0,
            202
        );
    }
    assert_eq!(
        shop.ok("erase-status", json!({"request_id": "R-10"})).await["status"],
        "done"
    );
    assert_eq!(control.erasures_executed("R-10"), 1);
    shop.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_email_free_taken_and_idempotent() {
    let shop = Shop::start(&customers(), 1000).await;
    let control = &shop.running.control;
    let taken = json!({"account": "C-1001", "new_email": "bram@EXAMPLE.nl", "request_id": "R-1"});
    assert_eq!(
        shop.ok("change-email", taken).await,
        json!({"result": "taken"})
    );
    assert_eq!(
        control.customer_email("C-1001").await.unwrap().as_deref(),
        Some("anna@example.nl")
    );

    let free = json!({"account": "C-1001", "new_email": "anna@new.example", "request_id": "R-2"});
    assert_eq!(
        shop.ok("change-email", free).await,
        json!({"result": "changed"})
    );
    assert_eq!(
        control.customer_email("C-1001").await.unwrap().as_deref(),
        Some("anna@new.example")
    );
    // The same request_id again: the stored answer, no second change.
    let again = json!({"account": "C-1001", "new_email": "other@new.example", "request_id": "R-2"});
    assert_eq!(
        shop.ok("change-email", again).await,
        json!({"result": "changed"})
    );
    assert_eq!(
        control.customer_email("C-1001").await.unwrap().as_deref(),
        Some("anna@new.example")
    );
    // A secondary system finds the customer by the old address.
    let by_email =
        json!({"email": "Bram@example.nl", "new_email": "bram@new.example", "request_id": "R-3"});
    assert_eq!(
        shop.ok("change-email", by_email).await,
        json!({"result": "changed"})
    );
    assert_eq!(
        control
            .account_by_email("BRAM@new.example")
            .await
            .unwrap()
            .as_deref(),
        Some("C-1002")
    );
    shop.running.stop().await;
}
