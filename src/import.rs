//! `accounts import`: JSON Lines into the built-in customer store.

use std::io::BufRead;

use crate::{
    store::{self, customers},
    AppState,
};

#[derive(Debug, Default)]
pub struct ImportReport {
    pub inserted: usize,
    pub updated: usize,
    /// (line number, reason) — the reason never quotes the line's data.
    pub errors: Vec<(usize, String)>,
    /// Lines of customers erased on request: never brought back.
    pub erased: Vec<usize>,
}

pub async fn import(state: &AppState, reader: impl BufRead) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: customers::ImportRecord = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                // serde's message names the field and column, not the value.
                report
                    .errors
                    .push((n, format!("not a valid customer record ({})", redact(&e))));
                continue;
            }
        };
        let email = match record.validate() {
            Ok(e) => e,
            Err(why) => {
                report.errors.push((n, why));
                continue;
            }
        };
        // Erased stays erased: an export from the company's systems made
        // before the erasure must not restore the customer (Art. 17).
        let erased_hash = crate::workflow::steps::erased_email_hash(state, &email);
        if store::steps::is_erased(&state.db, &erased_hash).await?
            || customers::external_id_erased(&state.db, &record.external_id).await?
        {
            report.erased.push(n);
            continue;
        }
        let mut tx = state.db.begin().await?;
        match customers::upsert(&mut tx, &record, &email, store::now()).await {
            Ok(outcome) => {
                tx.commit().await?;
                match outcome {
                    customers::Upserted::Inserted => report.inserted += 1,
                    customers::Upserted::Updated => report.updated += 1,
                }
            }
            Err(customers::UpsertError::EmailTaken) => {
                report.errors.push((
                    n,
                    "the email address already belongs to another account".into(),
                ));
            }
            Err(customers::UpsertError::Db(e)) => return Err(e.into()),
        }
    }
    Ok(report)
}

fn redact(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax | Category::Eof => "malformed JSON",
        Category::Data => {
            let msg = e.to_string();
            if let Some(field) = msg
                .split('`')
                .nth(1)
                .filter(|_| msg.starts_with("missing field"))
            {
                return format!("missing field `{field}` at column {}", e.column());
            }
            "a field has the wrong type"
        }
        Category::Io => "read error",
    };
    format!("{what} at column {}", e.column())
}
