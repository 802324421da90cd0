//! The company's customer data, behind a trait: the built-in store or the
//! company's own systems (`[[connectors]]`). Workflows only ever talk to
//! this trait and to [`Systems`].

pub mod builtin;
pub mod config;
pub mod http;
pub mod sql;
pub mod systems;

pub use systems::{Secondary, SecondaryKind, Systems};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{blockers::Blocker, Email};

/// An account as the portal may know it before showing anything: an opaque
/// reference, never personal data.
#[derive(Debug, Clone)]
pub struct AccountRef {
    pub id: String,
}

/// What the customer states to prove they know the account.
pub struct KnowledgeClaim<'a> {
    pub postcode: &'a str,
    pub house_number: &'a str,
}

/// What an erasure removed and what the law made us keep (Art. 17(3)(b)).
#[derive(Debug, Clone, Serialize, Default, serde::Deserialize)]
pub struct ErasureReceipt {
    /// Categories removed: a locale key under `delete.category.*` when the
    /// portal knows the category, the system's own name otherwise.
    pub deleted: Vec<String>,
    pub retained: Vec<Retained>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Retained {
    pub category: String,
    pub count: i64,
    /// A code (`bookkeeping_7_years`) the portal translates, or the
    /// system's own words.
    pub reason: String,
}

/// An erasure either finished or runs on at the company (202 `pending`).
#[derive(Debug, Clone)]
pub enum EraseOutcome {
    Done(ErasureReceipt),
    Pending,
}

/// An account without activity since `last_activity` (scheduled
/// anonymisation). The address and language are for the warning mail only.
#[derive(Debug, Clone)]
pub struct InactiveAccount {
    pub account: String,
    pub email: String,
    pub locale: Option<String>,
    pub last_activity: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct InactivePage {
    pub accounts: Vec<InactiveAccount>,
    pub next: Option<String>,
}

/// One page of an export: `(category, data)` in the system's order.
#[derive(Debug, Default)]
pub struct RecordPage {
    pub records: Vec<(String, serde_json::Value)>,
    pub next: Option<String>,
}

/// The outcome of moving an account to a new login address.
#[derive(Debug, Clone)]
pub enum EmailChange {
    Changed,
    /// The address already belongs to another account (one address, one account).
    Taken(AccountRef),
}

#[async_trait]
pub trait Connector: Send + Sync {
    async fn find_account(&self, email: &Email) -> anyhow::Result<Option<AccountRef>>;
    /// Only a yes or no: the stored values never come back.
    async fn check_knowledge(
        &self,
        acc: &AccountRef,
        claim: &KnowledgeClaim<'_>,
    ) -> anyhow::Result<bool>;
    async fn deletion_blockers(
        &self,
        acc: &AccountRef,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Blocker>>;
    /// `request_id` is the idempotency key: a repeat with the same id
    /// never erases twice.
    async fn erase(&self, acc: &AccountRef, request_id: &str) -> anyhow::Result<EraseOutcome>;
    /// Looks at an erasure that answered `Pending`.
    async fn erase_status(
        &self,
        acc: &AccountRef,
        request_id: &str,
    ) -> anyhow::Result<EraseOutcome> {
        self.erase(acc, request_id).await
    }
    async fn change_email(
        &self,
        acc: &AccountRef,
        new: &Email,
        request_id: &str,
    ) -> anyhow::Result<EmailChange>;
    /// One page of everything held, `profile` first; pass `next` back until
    /// it is `None`.
    async fn export_records(
        &self,
        acc: &AccountRef,
        cursor: Option<&str>,
    ) -> anyhow::Result<RecordPage>;
    /// The built-in store's faster export path (pages per category).
    fn as_builtin(&self) -> Option<&builtin::BuiltinStore> {
        None
    }
    /// The account's consents and objections by key (`newsletter` → true).
    /// Shown only to a verified customer.
    async fn consents(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<std::collections::BTreeMap<String, bool>>;
    /// Accounts with no activity before `before`, paged (scheduled
    /// anonymisation). A system that cannot say answers an error.
    async fn inactive(
        &self,
        _before: DateTime<Utc>,
        _cursor: Option<&str>,
    ) -> anyhow::Result<InactivePage> {
        anyhow::bail!("this system cannot list inactive accounts")
    }
    /// Records a sign of life ("keep my account").
    async fn record_activity(&self, _acc: &AccountRef, _at: DateTime<Utc>) -> anyhow::Result<()> {
        anyhow::bail!("this system cannot record activity")
    }
    /// Deletes a data category's rows older than `before` (retention per
    /// category); `None` when the system does not keep that category.
    async fn purge(&self, _category: &str, _before: DateTime<Utc>) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }
    /// Stops the processing behind these consent keys (sets them to false).
    /// Idempotent: keys already stopped stay stopped.
    async fn apply_objections(
        &self,
        acc: &AccountRef,
        keys: &[String],
        request_id: &str,
    ) -> anyhow::Result<()>;
}
