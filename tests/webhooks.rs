//! Events out: a receiver that is down for a while hears every event once
//! it is back, signed, without personal data.

mod common;

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc, Mutex,
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::{eventually, TestApp};
use serde_json::{json, Value};

/// (webhook-id, webhook-timestamp, webhook-signature, body) of each event.
type Received = Arc<Mutex<Vec<(String, String, String, String)>>>;

#[derive(Clone, Default)]
struct Receiver {
    got: Received,
    down: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

async fn hook(req: HttpRequest, body: web::Bytes, r: web::Data<Receiver>) -> HttpResponse {
    if r.down.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::ServiceUnavailable().finish();
    }
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    r.got.lock().unwrap().push((
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        String::from_utf8(body.to_vec()).unwrap(),
    ));
    HttpResponse::NoContent().finish()
}

fn start_receiver(r: Receiver) -> String {
    let listener = common::free_listener();
    let port = listener.local_addr().unwrap().port();
    let data = web::Data::new(r);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(hook))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/hook")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_a_while_hears_every_event_once_back_signed_and_without_personal_data()
{
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = start_receiver(receiver.clone());
    let env = format!("HOOK_SECRET_{}", uuid::Uuid::new_v4().simple());
    let secret = "a-receiver-secret-of-enough-length";
    std::env::set_var(&env, secret);
    let file = format!(
        "{}\n[[webhooks]]\nurl = \"{url}\"\nsecret_env = \"{env}\"\n",
        privacy_portal::config::DEMO_COMPANY_TOML
    );
    let company = privacy_portal::config::parse_company(&file, "test").unwrap();
    let app = TestApp::spawn_with(move |s| s.company = company).await;

    // A deletion blocked by an open order: received, verified, escalated.
    let email = "bram@example.nl";
    let (id, token) = app.verified("delete", email, "nl").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(&token)
        .json(&json!({"postcode": "3511 LX", "house_number": "4a", "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Past its deadline: request.overdue, once.
    sqlx::query("UPDATE requests SET due_at = $1 WHERE id = $2")
        .bind(privacy_portal::store::now() - 60)
        .bind(&id)
        .execute(app.state().db.write())
        .await
        .unwrap();

    eventually("retries while the receiver is down", || async {
        let n = receiver.refused.load(Ordering::SeqCst);
        if n >= 3 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;
    assert!(receiver.got.lock().unwrap().is_empty());
    receiver.down.store(false, Ordering::SeqCst);

    let want = [
        "request.received",
        "request.verified",
        "request.escalated",
        "request.overdue",
    ];
    let got = eventually("every event delivered", || async {
        let got = receiver.got.lock().unwrap().clone();
        let types: Vec<String> = got
            .iter()
            .map(|(_, _, _, b)| serde_json::from_str::<Value>(b).unwrap()["type"].to_string())
            .collect();
        if want
            .iter()
            .all(|w| types.iter().any(|t| t == &format!("\"{w}\"")))
        {
            Ok(got)
        } else {
            Err(types)
        }
    })
    .await;

    let mut seen = std::collections::BTreeMap::new();
    for (wid, ts, sig, body) in &got {
        // The signature verifies with the shared secret.
        let expected = privacy_portal::connector::http::sign(
            secret.as_bytes(),
            wid,
            ts.parse().unwrap(),
            body.as_bytes(),
        );
        assert_eq!(sig, &expected);
        // No address, no name.
        assert!(!body.contains(email), "{body}");
        assert!(!body.contains("Bram"), "{body}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["data"]["id"], id.as_str());
        assert_eq!(v["data"]["kind"], "delete");
        assert!(v["data"]["due_date"].is_string());
        // A duplicate only ever with the same webhook-id.
        if let Some(prev) = seen.insert(wid.clone(), body.clone()) {
            assert_eq!(&prev, body);
        }
    }
    let types: Vec<String> = seen
        .values()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for w in want {
        assert_eq!(
            types.iter().filter(|t| *t == w).count(),
            1,
            "{w} once: {types:?}"
        );
    }
    let escalated = seen
        .values()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .find(|v| v["type"] == "request.escalated")
        .unwrap();
    assert_eq!(escalated["data"]["status"], "escalated");
    assert_eq!(escalated["data"]["reasons"], json!(["open_order"]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_event_or_a_missing_secret_is_refused_at_start() {
    let file = format!(
        "{}\n[[webhooks]]\nurl = \"https://hooks.example/x\"\nsecret_env = \"NO_SUCH_SECRET_VAR_{}\"\nevents = [\"request.exploded\"]\n",
        privacy_portal::config::DEMO_COMPANY_TOML,
        uuid::Uuid::new_v4().simple()
    );
    let err = privacy_portal::config::parse_company(&file, "company.toml")
        .unwrap_err()
        .0;
    assert!(err.contains("is not set"), "{err}");
    assert!(err.contains("unknown event `request.exploded`"), "{err}");
}
