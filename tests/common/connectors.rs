//! A company with its own systems behind connectors, over real HTTP: the
//! reference company API (`reference-company/`) as the primary "shop" and as
//! a secondary "newsletter" tool, plus a "courier" told by mail. Shared by
//! `tests/connectors.rs` and the staff browser test.

use reference_company as refco;
use serde_json::{json, Value};

use super::{eventually, TestApp};

pub struct Company {
    pub app: TestApp,
    pub shop: refco::Running,
    pub news: refco::Running,
    _dir: tempfile::TempDir,
}

#[derive(Default, Clone, Copy)]
pub struct Options {
    pub async_erase: bool,
    /// The newsletter tool is configured with a secret it does not share.
    pub wrong_news_secret: bool,
}

fn secret() -> String {
    format!("whsec_{}", {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(rand_bytes())
    })
}

fn rand_bytes() -> [u8; 24] {
    let mut b = [0u8; 24];
    for (i, x) in uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .take(24)
        .enumerate()
    {
        b[i] = *x;
    }
    b
}

pub async fn company(opts: Options) -> Company {
    let dir = tempfile::tempdir().unwrap();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (shop_env, news_env) = (format!("SHOP_SECRET_{tag}"), format!("NEWS_SECRET_{tag}"));
    let (shop_secret, news_secret) = (secret(), secret());
    // Each test has its own variable names, so tests in parallel never
    // read each other's secrets.
    std::env::set_var(&shop_env, &shop_secret);
    std::env::set_var(
        &news_env,
        if opts.wrong_news_secret {
            secret()
        } else {
            news_secret.clone()
        },
    );

    let shop_db = dir.path().join("shop.db");
    let mut cfg = refco::Config::new(
        shop_db.clone(),
        refco::signature::decode_secret(&shop_secret).unwrap(),
    );
    cfg.async_erase = opts.async_erase;
    let seed = privacy_portal::demo::customers()
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    refco::import_jsonl(&shop_db, &seed).await.unwrap();
    let shop = refco::start(cfg, "127.0.0.1:0").await.unwrap();

    let news_db = dir.path().join("news.db");
    refco::import_jsonl(
        &news_db,
        &[
            json!({"email": "anna@example.nl", "consents": {"newsletter": true}}),
            json!({"email": "emma@example.com", "consents": {"newsletter": true}}),
        ]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n"),
    )
    .await
    .unwrap();
    let news = refco::start(
        refco::Config::new(
            news_db,
            refco::signature::decode_secret(&news_secret).unwrap(),
        ),
        "127.0.0.1:0",
    )
    .await
    .unwrap();

    let systems = format!(
        r#"
[[connectors]]
id = "shop"
name = {{ nl = "Webwinkel", sv = "Webbutik", en = "Web shop" }}
kind = "http"
primary = true
url = "{shop}"
secret_env = "{shop_env}"
timeout_seconds = 5

[[connectors]]
id = "newsletter"
name = {{ nl = "Nieuwsbrief", sv = "Nyhetsbrev", en = "Newsletter" }}
kind = "http"
url = "{news}"
secret_env = "{news_env}"
consent_keys = ["newsletter"]

[[connectors]]
id = "courier"
name = {{ nl = "Bezorgdienst", sv = "Budfirma", en = "Courier" }}
kind = "email"
to = "privacy@courier.example"
language = "en"
"#,
        shop = shop.url(),
        news = news.url(),
    );
    let file = format!("{}\n{systems}", privacy_portal::config::DEMO_COMPANY_TOML);
    let company = privacy_portal::config::parse_company(&file, "test").unwrap();
    let app = TestApp::spawn_with(move |s| s.company = company).await;
    Company {
        app,
        shop,
        news,
        _dir: dir,
    }
}

pub async fn submit(app: &TestApp, id: &str, token: &str, body: Value) -> (u16, Value) {
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

pub async fn status_of(app: &TestApp, id: &str, token: &str) -> Value {
    app.client
        .get(app.url(&format!("/api/v1/requests/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn staff_case(app: &TestApp, staff: &str, id: &str) -> Value {
    app.client
        .get(app.url(&format!("/api/v1/staff/cases/{id}")))
        .bearer_auth(staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub fn step<'a>(case: &'a Value, system: &str) -> &'a Value {
    case["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == system)
        .unwrap_or_else(|| panic!("no step for {system}: {case}"))
}

pub async fn wait_status(app: &TestApp, id: &str, token: &str, want: &str) -> Value {
    eventually(&format!("request {want}"), || async {
        let v = status_of(app, id, token).await;
        if v["status"] == want {
            Ok(v)
        } else {
            Err(v)
        }
    })
    .await
}
