use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AccountRef, Connector, EmailChange, ErasureReceipt, KnowledgeClaim, Retained};
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

    async fn erase(&self, acc: &AccountRef) -> anyhow::Result<ErasureReceipt> {
        let mut tx = self.db.begin().await?;
        let counts = customers::erase(&mut tx, &acc.id, store::now()).await?;
        tx.commit().await?;
        let mut retained = vec![];
        if counts.orders_retained > 0 {
            retained.push(Retained {
                category: "orders",
                count: counts.orders_retained,
                reason: customers::RETENTION_REASON,
            });
        }
        if counts.payments_retained > 0 {
            retained.push(Retained {
                category: "payments",
                count: counts.payments_retained,
                reason: customers::RETENTION_REASON,
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
        .filter_map(|(category, held)| held.then_some(category))
        .collect();
        Ok(ErasureReceipt { deleted, retained })
    }

    async fn change_email(&self, acc: &AccountRef, new: &Email) -> anyhow::Result<EmailChange> {
        let mut tx = self.db.begin().await?;
        let outcome = customers::change_email(&mut tx, &acc.id, new, store::now()).await?;
        tx.commit().await?;
        Ok(match outcome {
            None => EmailChange::Changed,
            Some(other) => EmailChange::Taken(AccountRef { id: other }),
        })
    }

    async fn consents(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<std::collections::BTreeMap<String, bool>> {
        Ok(customers::consents(&self.db, &acc.id).await?)
    }

    async fn apply_objections(&self, acc: &AccountRef, keys: &[String]) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        customers::withdraw_consents(&mut tx, &acc.id, keys, store::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn export_profile(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        customers::export_profile(&self.db, &acc.id).await
    }

    async fn export_page(
        &self,
        acc: &AccountRef,
        category: &str,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        customers::export_page(&self.db, &acc.id, category, offset, limit).await
    }
}
