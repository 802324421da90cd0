//! `kind = "http"`: the company's API, spoken to with the protocol of
//! CONTRACT.md ("HTTP protocol, version 1", docs/connector-protocol.md).
//! Every call is signed the Standard Webhooks way so the company can refuse
//! anyone else; the same `webhook-id` is sent on every retry of one step so
//! the company can recognise a repeat.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde_json::{json, Value};

use super::{
    AccountRef, Connector, EmailChange, EraseOutcome, ErasureReceipt, KnowledgeClaim, RecordPage,
    Retained,
};
use crate::domain::{blockers::Blocker, Email};

/// Decodes a signing secret: `whsec_` + base64 (the Standard Webhooks
/// form), or the raw text of at least 16 characters.
pub fn parse_secret(v: &str) -> Result<Vec<u8>, String> {
    let v = v.trim();
    let bytes = match v.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "whsec_ secret is not base64".to_string())?,
        None => v.as_bytes().to_vec(),
    };
    if bytes.len() < 16 {
        return Err("the secret is shorter than 16 bytes".into());
    }
    Ok(bytes)
}

/// `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Why a call did not give an answer. Only `Unavailable` is worth retrying
/// on its own; the others need a person (or mean "not supported").
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("the system does not support `{0}` (404)")]
    Unsupported(String),
    #[error("the system refused the signature (401): check the shared secret and the clock")]
    Unauthorized,
    #[error("the system is unavailable: {0}")]
    Unavailable(String),
    #[error("the system refused the call ({status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("the system's answer is not what the protocol says: {0}")]
    BadAnswer(String),
}

impl CallError {
    /// The kind of failure without the company's own words, for log lines
    /// (an error body may quote the customer's data).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Unsupported(_) => "unsupported",
            CallError::Unauthorized => "unauthorized",
            CallError::Unavailable(_) => "unavailable",
            CallError::Refused { .. } => "refused",
            CallError::BadAnswer(_) => "bad_answer",
        }
    }

    pub fn retryable(&self) -> bool {
        matches!(self, CallError::Unavailable(_))
    }
}

/// Who a call is about: the primary's own account id, or the email a
/// secondary system keys its data by.
#[derive(Debug, Clone)]
pub enum Subject {
    Account(String),
    Email(String),
}

impl Subject {
    fn put(&self, body: &mut Value) {
        match self {
            Subject::Account(a) => body["account"] = json!(a),
            Subject::Email(e) => body["email"] = json!(e),
        }
    }
}

pub struct HttpSystem {
    pub id: String,
    base: String,
    secret: SecretBox<Vec<u8>>,
    client: reqwest::Client,
    tz: chrono_tz::Tz,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl HttpSystem {
    pub fn new(
        id: &str,
        url: &str,
        secret: Vec<u8>,
        timeout: Duration,
        tz: chrono_tz::Tz,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("privacy-portal/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpSystem {
            id: id.to_string(),
            base: url.trim_end_matches('/').to_string(),
            secret: SecretBox::new(Box::new(secret)),
            client,
            tz,
            metrics: None,
        })
    }

    /// Counts every call by operation and outcome, with its duration.
    pub fn with_metrics(mut self, m: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(m);
        self
    }

    /// One signed call, no retry, counted.
    pub async fn call_once(
        &self,
        op: &str,
        webhook_id: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let started = std::time::Instant::now();
        let r = self.call_unmetered(op, webhook_id, body).await;
        if let Some(m) = &self.metrics {
            let outcome = match &r {
                Ok(_) => "ok",
                Err(CallError::Unavailable(_)) => "unavailable",
                Err(CallError::Unauthorized) => "unauthorized",
                Err(CallError::Unsupported(_)) => "unsupported",
                Err(CallError::Refused { .. }) => "refused",
                Err(CallError::BadAnswer(_)) => "bad_answer",
            };
            m.connector_call(&self.id, op, outcome, started.elapsed().as_secs_f64());
        }
        r
    }

    /// One signed call, no retry. 2xx answers come back with their status
    /// (an erasure answers 202 while it runs).
    async fn call_unmetered(
        &self,
        op: &str,
        webhook_id: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::BadAnswer(e.to_string()))?;
        let ts = Utc::now().timestamp();
        let sig = sign(self.secret.expose_secret(), webhook_id, ts, &bytes);
        let resp = self
            .client
            .post(format!("{}/{op}", self.base))
            .header("content-type", "application/json")
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                CallError::Unavailable(what.into())
            })?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => {
                let v = resp
                    .json::<Value>()
                    .await
                    .map_err(|_| CallError::BadAnswer(format!("{op}: body is not JSON")))?;
                Ok((status, v))
            }
            401 => Err(CallError::Unauthorized),
            404 => Err(CallError::Unsupported(op.to_string())),
            408 | 429 | 500..=599 => Err(CallError::Unavailable(format!("HTTP {status}"))),
            _ => {
                // The company's error text may be long or carry data; keep
                // a short, printable head for staff.
                let text = resp.text().await.unwrap_or_default();
                let detail: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
                Err(CallError::Refused { status, detail })
            }
        }
    }

    /// A call made while a person waits (a page or a mail worker): a few
    /// quick retries for a blip, then the error. Longer outages are the
    /// step runner's business.
    pub async fn call(
        &self,
        op: &str,
        webhook_id: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let mut wait = Duration::from_millis(200);
        for attempt in 0.. {
            match self.call_once(op, webhook_id, body).await {
                Err(e) if e.retryable() && attempt < 2 => {
                    tokio::time::sleep(wait).await;
                    wait *= 3;
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }

    fn fresh_id(op: &str) -> String {
        format!("{op}_{}", uuid::Uuid::now_v7().simple())
    }

    pub async fn ping(&self) -> Result<(), CallError> {
        let (_, v) = self
            .call_once("ping", &Self::fresh_id("ping"), &json!({}))
            .await?;
        if v.get("ok") == Some(&json!(true)) {
            Ok(())
        } else {
            Err(CallError::BadAnswer(
                "ping did not answer {\"ok\":true}".into(),
            ))
        }
    }

    pub async fn lookup(&self, email: &str) -> Result<Option<String>, CallError> {
        let (_, v) = self
            .call(
                "lookup",
                &Self::fresh_id("lookup"),
                &json!({"email": email}),
            )
            .await?;
        match v.get("account") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Null) | None => Ok(None),
            _ => Err(CallError::BadAnswer(
                "lookup: account is not a string".into(),
            )),
        }
    }

    pub async fn export_page(
        &self,
        subject: &Subject,
        cursor: Option<&str>,
    ) -> Result<RecordPage, CallError> {
        let mut body = json!({"cursor": cursor});
        subject.put(&mut body);
        let (_, v) = self
            .call("export", &Self::fresh_id("export"), &body)
            .await?;
        parse_records(v)
    }

    /// Starts (or, with the same `request_id`, looks at) an erasure.
    pub async fn erase(
        &self,
        subject: &Subject,
        request_id: &str,
        webhook_id: &str,
        poll: bool,
    ) -> Result<EraseOutcome, CallError> {
        let (op, body) = if poll {
            ("erase-status", json!({"request_id": request_id}))
        } else {
            let mut b = json!({"request_id": request_id});
            subject.put(&mut b);
            ("erase", b)
        };
        match self.call_once(op, webhook_id, &body).await {
            Ok((status, v)) => parse_erasure(status, &v),
            // The system forgot the erasure it was running (a restore, a
            // new deployment): ask again; `request_id` keeps it to one run.
            Err(CallError::Unsupported(_)) if poll => {
                Box::pin(self.erase(subject, request_id, webhook_id, false)).await
            }
            Err(e) => Err(e),
        }
    }

    pub async fn change_email(
        &self,
        subject: &Subject,
        new_email: &str,
        request_id: &str,
        webhook_id: &str,
    ) -> Result<bool, CallError> {
        let mut body = json!({"new_email": new_email, "request_id": request_id});
        subject.put(&mut body);
        let (_, v) = self.call("change-email", webhook_id, &body).await?;
        match v.get("result").and_then(Value::as_str) {
            Some("changed") => Ok(true),
            Some("taken") => Ok(false),
            _ => Err(CallError::BadAnswer(
                "change-email: result is neither changed nor taken".into(),
            )),
        }
    }

    pub async fn consents(
        &self,
        subject: &Subject,
    ) -> Result<std::collections::BTreeMap<String, bool>, CallError> {
        let mut body = json!({});
        subject.put(&mut body);
        let (_, v) = self
            .call("consents", &Self::fresh_id("consents"), &body)
            .await?;
        let map = v
            .get("consents")
            .and_then(Value::as_object)
            .ok_or_else(|| CallError::BadAnswer("consents: no consents object".into()))?;
        Ok(map
            .iter()
            .filter_map(|(k, v)| v.as_bool().map(|b| (k.clone(), b)))
            .collect())
    }

    pub async fn stop(
        &self,
        subject: &Subject,
        keys: &[String],
        request_id: &str,
        webhook_id: &str,
    ) -> Result<(), CallError> {
        let mut body = json!({"keys": keys, "request_id": request_id});
        subject.put(&mut body);
        self.call("stop", webhook_id, &body).await?;
        Ok(())
    }

    /// Retention: the system deletes a category's rows older than `before`.
    pub async fn purge_category(
        &self,
        category: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<u64>, CallError> {
        let body = json!({"category": category,
                          "before": before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
        match self.call("purge", &Self::fresh_id("purge"), &body).await {
            Ok((_, v)) => Ok(Some(v.get("deleted").and_then(Value::as_u64).unwrap_or(0))),
            Err(CallError::Unsupported(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn blockers(&self, account: &str) -> Result<Vec<Blocker>, CallError> {
        let (_, v) = self
            .call(
                "blockers",
                &Self::fresh_id("blockers"),
                &json!({"account": account}),
            )
            .await?;
        let list = v
            .get("blockers")
            .and_then(Value::as_array)
            .ok_or_else(|| CallError::BadAnswer("blockers: no blockers list".into()))?;
        Ok(blockers_from(list, self.tz))
    }
}

/// The company's blockers in the portal's terms. Several open orders are
/// one blocker with a count, as the built-in store reports them.
fn blockers_from(list: &[Value], tz: chrono_tz::Tz) -> Vec<Blocker> {
    let mut out = Vec::new();
    let mut open = 0;
    for b in list {
        let until = b
            .get("until")
            .and_then(Value::as_str)
            .and_then(|u| DateTime::parse_from_rfc3339(u).ok());
        let detail = b
            .get("detail")
            .and_then(Value::as_str)
            .map(|d| d.chars().take(200).collect::<String>());
        match b.get("reason").and_then(Value::as_str) {
            Some("open_order") => open += 1,
            Some("outstanding_balance") => out.push(Blocker::OutstandingBalance {
                cents: detail
                    .as_deref()
                    .and_then(|d| d.trim().parse::<i64>().ok())
                    .unwrap_or(0),
            }),
            Some("recent_direct_debit") => match until {
                Some(u) => out.push(Blocker::RecentDirectDebit {
                    possible_from: u.with_timezone(&tz).date_naive(),
                }),
                None => out.push(Blocker::Other { detail }),
            },
            _ => out.push(Blocker::Other { detail }),
        }
    }
    if open > 0 {
        out.insert(0, Blocker::OpenOrder { orders: open });
    }
    out
}

fn parse_records(v: Value) -> Result<RecordPage, CallError> {
    let Value::Object(mut m) = v else {
        return Err(CallError::BadAnswer("export: not an object".into()));
    };
    let next = match m.remove("next_cursor") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        _ => {
            return Err(CallError::BadAnswer(
                "export: next_cursor is not a string".into(),
            ))
        }
    };
    let Some(Value::Array(list)) = m.remove("records") else {
        return Err(CallError::BadAnswer("export: no records list".into()));
    };
    let mut records = Vec::with_capacity(list.len());
    for r in list {
        let Value::Object(mut r) = r else {
            return Err(CallError::BadAnswer(
                "export: a record is not an object".into(),
            ));
        };
        let Some(Value::String(category)) = r.remove("category") else {
            return Err(CallError::BadAnswer(
                "export: a record has no category".into(),
            ));
        };
        let ok = !category.is_empty()
            && category.len() <= 64
            && category
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(CallError::BadAnswer(
                "export: a category name is not a-z, 0-9, _ or -".into(),
            ));
        }
        records.push((category, r.remove("data").unwrap_or(Value::Null)));
    }
    if next.is_some() && records.is_empty() {
        return Err(CallError::BadAnswer(
            "export: an empty page with a next_cursor would never end".into(),
        ));
    }
    Ok(RecordPage { records, next })
}

fn parse_erasure(status: u16, v: &Value) -> Result<EraseOutcome, CallError> {
    match v.get("status").and_then(Value::as_str) {
        Some("pending") => Ok(EraseOutcome::Pending),
        Some("done") if status != 202 => {
            let deleted = v
                .get("deleted")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let retained = v
                .get("retained")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|r| {
                            Some(Retained {
                                category: r.get("category")?.as_str()?.to_string(),
                                count: r.get("count").and_then(Value::as_i64).unwrap_or(0),
                                reason: r
                                    .get("reason")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(EraseOutcome::Done(ErasureReceipt { deleted, retained }))
        }
        _ => Err(CallError::BadAnswer(
            "erase: status is neither done nor pending".into(),
        )),
    }
}

fn step_id(request_id: &str, op: &str) -> String {
    format!("{request_id}.{op}")
}

/// The primary role: the company's API owns the login account.
#[async_trait]
impl Connector for HttpSystem {
    async fn find_account(&self, email: &Email) -> anyhow::Result<Option<AccountRef>> {
        Ok(self
            .lookup(email.as_str())
            .await?
            .map(|id| AccountRef { id }))
    }

    async fn check_knowledge(
        &self,
        acc: &AccountRef,
        claim: &KnowledgeClaim<'_>,
    ) -> anyhow::Result<bool> {
        let (_, v) = self
            .call(
                "knowledge",
                &Self::fresh_id("knowledge"),
                &json!({"account": acc.id, "postcode": claim.postcode, "house_number": claim.house_number}),
            )
            .await?;
        v.get("match")
            .and_then(Value::as_bool)
            .ok_or_else(|| CallError::BadAnswer("knowledge: match is not a boolean".into()).into())
    }

    async fn deletion_blockers(
        &self,
        acc: &AccountRef,
        _now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Blocker>> {
        Ok(self.blockers(&acc.id).await?)
    }

    async fn erase(&self, acc: &AccountRef, request_id: &str) -> anyhow::Result<EraseOutcome> {
        Ok(HttpSystem::erase(
            self,
            &Subject::Account(acc.id.clone()),
            request_id,
            &step_id(request_id, "erase"),
            false,
        )
        .await?)
    }

    async fn erase_status(
        &self,
        acc: &AccountRef,
        request_id: &str,
    ) -> anyhow::Result<EraseOutcome> {
        Ok(HttpSystem::erase(
            self,
            &Subject::Account(acc.id.clone()),
            request_id,
            &step_id(request_id, "erase"),
            true,
        )
        .await?)
    }

    async fn change_email(
        &self,
        acc: &AccountRef,
        new: &Email,
        request_id: &str,
    ) -> anyhow::Result<EmailChange> {
        let changed = HttpSystem::change_email(
            self,
            &Subject::Account(acc.id.clone()),
            new.as_str(),
            request_id,
            &step_id(request_id, "change-email"),
        )
        .await?;
        if changed {
            return Ok(EmailChange::Changed);
        }
        // The protocol answers only "taken"; the collision flow needs the
        // other account to check what the customer knows about it.
        match self.lookup(new.as_str()).await? {
            Some(id) => Ok(EmailChange::Taken(AccountRef { id })),
            None => anyhow::bail!("change-email said taken, but lookup finds no account"),
        }
    }

    async fn export_records(
        &self,
        acc: &AccountRef,
        cursor: Option<&str>,
    ) -> anyhow::Result<RecordPage> {
        Ok(self
            .export_page(&Subject::Account(acc.id.clone()), cursor)
            .await?)
    }

    async fn consents(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<std::collections::BTreeMap<String, bool>> {
        Ok(HttpSystem::consents(self, &Subject::Account(acc.id.clone())).await?)
    }

    async fn inactive(
        &self,
        before: DateTime<Utc>,
        cursor: Option<&str>,
    ) -> anyhow::Result<super::InactivePage> {
        let (_, v) = self
            .call(
                "inactive",
                &Self::fresh_id("inactive"),
                &json!({"before": before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "cursor": cursor}),
            )
            .await?;
        let bad = |what: &str| CallError::BadAnswer(format!("inactive: {what}"));
        let list = v
            .get("accounts")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no accounts list"))?;
        let mut accounts = Vec::with_capacity(list.len());
        for a in list {
            let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
            let last = s("last_activity")
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .ok_or_else(|| bad("last_activity is not RFC 3339"))?;
            accounts.push(super::InactiveAccount {
                account: s("account").ok_or_else(|| bad("an account without id"))?,
                email: s("email").ok_or_else(|| bad("an account without email"))?,
                locale: s("locale"),
                last_activity: last.with_timezone(&Utc),
            });
        }
        let next = v
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(super::InactivePage { accounts, next })
    }

    async fn purge(&self, category: &str, before: DateTime<Utc>) -> anyhow::Result<Option<u64>> {
        Ok(self.purge_category(category, before).await?)
    }

    async fn record_activity(&self, acc: &AccountRef, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.call(
            "touch",
            &Self::fresh_id("touch"),
            &json!({"account": acc.id, "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
        )
        .await?;
        Ok(())
    }

    async fn apply_objections(
        &self,
        acc: &AccountRef,
        keys: &[String],
        request_id: &str,
    ) -> anyhow::Result<()> {
        Ok(self
            .stop(
                &Subject::Account(acc.id.clone()),
                keys,
                request_id,
                &step_id(request_id, "stop"),
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(parse_secret("tooshort").is_err());
        assert!(parse_secret("whsec_!!").is_err());
        assert!(parse_secret("a-long-enough-raw-secret").is_ok());
    }

    #[test]
    fn open_orders_become_one_blocker_with_a_count() {
        let list = vec![
            json!({"reason":"open_order","detail":"O-1"}),
            json!({"reason":"open_order","detail":"O-2"}),
            json!({"reason":"recent_direct_debit","until":"2026-05-05T00:00:00+02:00"}),
            json!({"reason":"other","detail":"chargeback under review"}),
        ];
        let b = blockers_from(&list, chrono_tz::Europe::Amsterdam);
        assert_eq!(b[0], Blocker::OpenOrder { orders: 2 });
        assert_eq!(
            b[1],
            Blocker::RecentDirectDebit {
                possible_from: chrono::NaiveDate::from_ymd_opt(2026, 5, 5).unwrap()
            }
        );
        assert!(matches!(b[2], Blocker::Other { .. }));
    }

    #[test]
    fn an_endless_export_is_refused() {
        let v = json!({"records": [], "next_cursor": "x"});
        assert!(parse_records(v).is_err());
        let v = json!({"records": [{"category":"orders","data":{"id":1}}], "next_cursor": null});
        let p = parse_records(v).unwrap();
        assert_eq!(p.records.len(), 1);
        assert!(p.next.is_none());
    }
}
