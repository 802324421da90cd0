//! The company's customer data, behind a trait: the built-in store now, the
//! company's HTTP API later. Workflows only ever talk to this trait.

pub mod builtin;

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
#[derive(Debug, Clone, Serialize)]
pub struct ErasureReceipt {
    /// Categories removed, as locale keys under `delete.category.*`.
    pub deleted: Vec<&'static str>,
    pub retained: Vec<Retained>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retained {
    pub category: &'static str,
    pub count: i64,
    pub reason: &'static str,
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
    /// Runs at most once per account; a second call finds nothing to erase.
    async fn erase(&self, acc: &AccountRef) -> anyhow::Result<ErasureReceipt>;
    async fn change_email(&self, acc: &AccountRef, new: &Email) -> anyhow::Result<EmailChange>;
    /// Every field held on the account itself, unknown fields included.
    async fn export_profile(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<serde_json::Map<String, serde_json::Value>>;
    /// One page of a category of `crate::export::CATEGORIES`, in a stable order.
    async fn export_page(
        &self,
        acc: &AccountRef,
        category: &str,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<serde_json::Value>>;
    /// The account's consents and objections by key (`newsletter` → true).
    /// Shown only to a verified customer.
    async fn consents(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<std::collections::BTreeMap<String, bool>>;
    /// Stops the processing behind these consent keys (sets them to false).
    /// Idempotent: keys already stopped stay stopped.
    async fn apply_objections(&self, acc: &AccountRef, keys: &[String]) -> anyhow::Result<()>;
}
