//! privacy-portal: a self-service GDPR portal.
//!
//! Shape: thin web layer (`web`) → request workflows (`workflow`) →
//! connectors and storage (`connector`, `store`, `mail`). Pure rules live in
//! `domain` and never do I/O.

rust_i18n::i18n!("locales", fallback = "en");

// glibc's malloc spent ~4 % of the two cores in intake on consolidating and
// unlinking chunks (many short-lived strings per request, on several
// threads); mimalloc's per-thread free lists avoid that. Set here rather
// than in main.rs so that the tests and benchmarks, which link this crate,
// run on the allocator the portal runs on.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod cli;
pub mod config;
pub mod connector;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod export;
pub mod i18n;
pub mod import;
pub mod mail;
pub mod metrics;
pub mod store;
pub mod web;
pub mod workflow;

pub use app::{build_state, AppState, Server};
