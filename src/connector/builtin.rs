use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AccountRef, Connector, EmailChange, EraseOutcome, ErasureReceipt, KnowledgeClaim, RecordPage,
    Retained,
};
use crate::{
    domain::{blockers, Email},
    store::{self, customers, Db},
};

pub struct BuiltinStore {
    db: Db,
    tz: chrono_tz::Tz,
}

impl BuiltinStore {
    pub fn new(db: Db, tz: chrono_tz::Tz) -> Self {
        BuiltinStore { db, tz }
    }
}

#[async_trait]
impl Connector for BuiltinStore {
    async fn find_account(&self, email: &Email) -> anyhow::Result<Option<AccountRef>> {
        Ok(customers::find_by_email(&self.db, email)
            .await?
            .map(|c| AccountRef { id: c.id }))
    }

    async fn check_knowledge(
        &self,
        acc: &AccountRef,
        claim: &KnowledgeClaim<'_>,
    ) -> anyhow::Result<bool> {
        Ok(
            customers::knowledge_matches(&self.db, &acc.id, claim.postcode, claim.house_number)
                .await?,
        )
    }

    async fn deletion_blockers(
        &self,
        acc: &AccountRef,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<blockers::Blocker>> {
        let facts = customers::deletion_facts(&self.db, &acc.id).await?;
        Ok(blockers::deletion_blockers(&facts, now, self.tz))
    }

    async fn erase(&self, acc: &AccountRef, _request_id: &str) -> anyhow::Result<EraseOutcome> {
        Ok(EraseOutcome::Done(self.erase_now(acc).await?))
    }

    async fn change_email(
        &self,
        acc: &AccountRef,
        new: &Email,
        _request_id: &str,
    ) -> anyhow::Result<EmailChange> {
        self.change_email_now(acc, new).await
    }

    fn as_builtin(&self) -> Option<&BuiltinStore> {
        Some(self)
    }

    async fn inactive(
        &self,
        before: DateTime<Utc>,
        cursor: Option<&str>,
    ) -> anyhow::Result<super::InactivePage> {
        const PAGE: i64 = 500;
        let rows = customers::activity_page(&self.db, cursor.unwrap_or(""), PAGE).await?;
        let next = (rows.len() as i64 == PAGE)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let parse = |s: &Option<String>| {
            s.as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let accounts = rows
            .into_iter()
            .filter_map(|r| {
                let last = [
                    parse(&r.created_at),
                    parse(&r.last_order),
                    r.active_at.and_then(|t| DateTime::from_timestamp(t, 0)),
                ]
                .into_iter()
                .flatten()
                .max()?;
                (last < before).then_some(super::InactiveAccount {
                    account: r.id,
                    email: r.email,
                    locale: r.locale,
                    last_activity: last,
                })
            })
            .collect();
        Ok(super::InactivePage { accounts, next })
    }

    async fn purge(&self, category: &str, before: DateTime<Utc>) -> anyhow::Result<Option<u64>> {
        let mut tx = self.db.begin().await?;
        let n = customers::purge_older(
            &mut tx,
            category,
            &before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn record_activity(&self, acc: &AccountRef, at: DateTime<Utc>) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        customers::record_activity(&mut tx, &acc.id, at.timestamp()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn export_records(
        &self,
        acc: &AccountRef,
        cursor: Option<&str>,
    ) -> anyhow::Result<RecordPage> {
        self.records_page(acc, cursor).await
    }
    async fn consents(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<std::collections::BTreeMap<String, bool>> {
        Ok(customers::consents(&self.db, &acc.id).await?)
    }

    async fn apply_objections(
        &self,
        acc: &AccountRef,
        keys: &[String],
        _request_id: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        customers::withdraw_consents(&mut tx, &acc.id, keys, store::now()).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl BuiltinStore {
    async fn erase_now(&self, acc: &AccountRef) -> anyhow::Result<ErasureReceipt> {
        let mut tx = self.db.begin().await?;
        let counts = customers::erase(&mut tx, &acc.id, store::now()).await?;
        tx.commit().await?;
        let mut retained = vec![];
        if counts.orders_retained > 0 {
            retained.push(Retained {
                category: "orders".into(),
                count: counts.orders_retained,
                reason: customers::RETENTION_REASON.into(),
            });
        }
        if counts.payments_retained > 0 {
            retained.push(Retained {
                category: "payments".into(),
                count: counts.payments_retained,
                reason: customers::RETENTION_REASON.into(),
            });
        }
        // Only what the account actually held: a customer without bank
        // details must not be told they were deleted.
        let deleted = [
            ("account", true),
            ("contact_details", counts.had_contact_details),
            ("address", counts.had_address),
            ("bank_details", counts.had_bank_details),
            ("contact_history", counts.contacts_deleted > 0),
            ("consents", counts.had_consents),
            ("ip_log", counts.ip_log_deleted > 0),
        ]
        .into_iter()
        .filter(|(_, held)| *held)
        .map(|(category, _)| category.to_string())
        .collect();
        Ok(ErasureReceipt { deleted, retained })
    }

    async fn change_email_now(&self, acc: &AccountRef, new: &Email) -> anyhow::Result<EmailChange> {
        let mut tx = self.db.begin().await?;
        let outcome = customers::change_email(&mut tx, &acc.id, new, store::now()).await?;
        tx.commit().await?;
        Ok(match outcome {
            None => EmailChange::Changed,
            Some(other) => EmailChange::Taken(AccountRef { id: other }),
        })
    }

    pub async fn export_profile(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        customers::export_profile(&self.db, &acc.id).await
    }

    pub async fn export_page(
        &self,
        acc: &AccountRef,
        category: &str,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        customers::export_page(&self.db, &acc.id, category, offset, limit).await
    }

    /// The generic, cursor-paged export (`profile`, then each category of
    /// `crate::export::CATEGORIES`); the archive uses the faster per-category
    /// pages, this serves `connectors preview` and the protocol's shape.
    /// Cursor: `{category index}:{offset}`.
    async fn records_page(
        &self,
        acc: &AccountRef,
        cursor: Option<&str>,
    ) -> anyhow::Result<RecordPage> {
        const PAGE: i64 = 1000;
        let (mut cat, mut offset) = match cursor {
            None => {
                let profile = self.export_profile(acc).await?;
                return Ok(RecordPage {
                    records: vec![("profile".into(), serde_json::Value::Object(profile))],
                    next: Some("0:0".into()),
                });
            }
            Some(c) => {
                let (a, b) = c
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("bad cursor"))?;
                (a.parse::<usize>()?, b.parse::<i64>()?)
            }
        };
        while let Some((name, _)) = crate::export::CATEGORIES.get(cat) {
            let rows = self.export_page(acc, name, offset, PAGE).await?;
            if rows.is_empty() {
                cat += 1;
                offset = 0;
                continue;
            }
            let next = if (rows.len() as i64) < PAGE {
                format!("{}:0", cat + 1)
            } else {
                format!("{cat}:{}", offset + PAGE)
            };
            return Ok(RecordPage {
                records: rows.into_iter().map(|r| (name.to_string(), r)).collect(),
                next: Some(next),
            });
        }
        Ok(RecordPage::default())
    }
}
