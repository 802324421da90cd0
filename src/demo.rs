//! Demo company data: customers that between them cover every case of
//! SPEC.md, and a staff member. Loaded only into an empty store.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::{store, AppState};

fn at(days_ago: i64) -> String {
    (Utc::now() - Duration::days(days_ago)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One JSON Lines record per demo customer (the `accounts import` format).
pub fn customers() -> Vec<serde_json::Value> {
    vec![
        // Clean account: nothing blocks deletion.
        json!({"external_id":"C-1001","email":"anna@example.nl","name":"Anna de Vries","locale":"nl",
            "postcode":"1012 AB","house_number":"12","phone":"+31612345678","iban":"NL91ABNA0417164300",
            "created_at":at(900),"balance_cents":0,
            "orders":[{"id":"O-1001","placed_at":at(400),"status":"delivered","total_cents":4599,"currency":"EUR"}],
            "payments":[{"method":"ideal","amount_cents":4599,"collected_at":at(400)}],
            "consents":{"newsletter":true,"reviews":false},
            "contacts":[{"at":at(390),"channel":"phone","summary":"asked about delivery"}],
            "ip_log":[{"at":at(400),"ip":"203.0.113.7"}],
            "loyalty_tier":"gold"}),
        // An order still open.
        json!({"external_id":"C-1002","email":"bram@example.nl","name":"Bram Jansen","locale":"nl",
            "postcode":"3511 LX","house_number":"4a","phone":"+31687654321","created_at":at(300),"balance_cents":0,
            "orders":[{"id":"O-2001","placed_at":at(2),"status":"open","total_cents":2350,"currency":"EUR"}],
            "payments":[{"method":"card","amount_cents":2350,"collected_at":at(2)}],
            "consents":{"newsletter":false,"reviews":true}}),
        // An amount still outstanding.
        json!({"external_id":"C-1003","email":"carla@example.nl","name":"Carla Bakker","locale":"nl",
            "postcode":"2514 EA","house_number":"101","created_at":at(500),"balance_cents":1250,
            "orders":[{"id":"O-3001","placed_at":at(60),"status":"delivered","total_cents":1250,"currency":"EUR"}],
            "payments":[{"method":"invoice","amount_cents":0,"collected_at":at(55)}],
            "consents":{"newsletter":true}}),
        // Direct debit collected three weeks ago: the bank may still reverse it.
        json!({"external_id":"C-1004","email":"daan@example.nl","name":"Daan Visser","locale":"nl",
            "postcode":"9711 LM","house_number":"7","iban":"NL20INGB0001234567","created_at":at(700),"balance_cents":0,
            "orders":[{"id":"O-4001","placed_at":at(23),"status":"delivered","total_cents":8900,"currency":"EUR"}],
            "payments":[{"method":"direct_debit","amount_cents":8900,"collected_at":at(21)}],
            "consents":{"newsletter":true,"reviews":true}}),
        // One person, two accounts: the collision case of change_email.
        json!({"external_id":"C-1005","email":"eva.old@example.nl","name":"Eva Smit","locale":"nl",
            "postcode":"6811 AA","house_number":"3","created_at":at(1200),"balance_cents":0,
            "orders":[{"id":"O-5001","placed_at":at(800),"status":"delivered","total_cents":1999,"currency":"EUR"}],
            "consents":{"newsletter":false}}),
        json!({"external_id":"C-1006","email":"eva@example.nl","name":"Eva Smit","locale":"nl",
            "postcode":"6811 AA","house_number":"3","created_at":at(100),"balance_cents":0,
            "orders":[{"id":"O-6001","placed_at":at(50),"status":"delivered","total_cents":3450,"currency":"EUR"}],
            "consents":{"newsletter":true}}),
        // A Swedish customer.
        json!({"external_id":"C-2001","email":"sven@example.se","name":"Sven Åström","locale":"sv",
            "postcode":"113 51","house_number":"14","phone":"+46701234567","created_at":at(400),"balance_cents":0,
            "orders":[{"id":"O-7001","placed_at":at(90),"status":"delivered","total_cents":59900,"currency":"SEK"}],
            "payments":[{"method":"swish","amount_cents":59900,"collected_at":at(90)}],
            "consents":{"newsletter":true,"reviews":true}}),
        // An English-speaking customer.
        json!({"external_id":"C-3001","email":"emma@example.com","name":"Emma Clarke","locale":"en",
            "postcode":"1071 DJ","house_number":"22","created_at":at(200),"balance_cents":0,
            "orders":[{"id":"O-8001","placed_at":at(30),"status":"cancelled","total_cents":1500,"currency":"EUR"}],
            "payments":[{"method":"klarna","amount_cents":0,"collected_at":at(30)}],
            "consents":{"newsletter":false,"reviews":false}}),
    ]
}

pub const DEMO_STAFF: &str = "admin@kaasboer.example";

/// Loads demo customers into an empty store and returns a fresh staff API token.
pub async fn seed(state: &AppState) -> anyhow::Result<String> {
    if store::customers::count(&state.db).await? == 0 {
        let lines: Vec<String> = customers().iter().map(|c| c.to_string()).collect();
        let report = crate::import::import(state, std::io::Cursor::new(lines.join("\n"))).await?;
        anyhow::ensure!(
            report.errors.is_empty(),
            "demo data did not import: {:?}",
            report.errors
        );
    }
    if store::staff::by_email(&state.db, DEMO_STAFF)
        .await?
        .is_none()
    {
        crate::cli::add_staff(state, DEMO_STAFF, "admin").await?;
    }
    crate::cli::staff_token(state, DEMO_STAFF).await
}
