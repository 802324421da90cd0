//! The register of requests (admin): every request with its kind, dates,
//! outcome and whether it was answered on time — and nothing personal.

use chrono::{DateTime, Utc};

use super::WResult;
use crate::{
    store::{cases, now},
    AppState,
};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub reference: String,
    pub kind: String,
    pub channel: String,
    pub received: String,
    pub due: String,
    pub extension_months: i64,
    pub closed: String,
    pub status: String,
    pub outcome: Option<String>,
    /// within_month, within_extension, late, open, overdue
    pub timeliness: &'static str,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub total: u64,
    pub closed: u64,
    pub within_month: u64,
    pub within_extension: u64,
    pub late: u64,
    pub open: u64,
    pub overdue: u64,
    /// Percent of closed requests answered within one month.
    pub share_within_month: f64,
    /// Percent of closed requests answered within their (extended) deadline.
    pub share_within_deadline: f64,
}

pub struct Register {
    pub rows: Vec<Row>,
    pub summary: Summary,
}

fn day(state: &AppState, t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&state.settings.company.country.timezone())
        .format("%Y-%m-%d")
        .to_string()
}

pub async fn build(state: &AppState) -> WResult<Register> {
    let now = now();
    let mut rows = Vec::new();
    let mut s = Summary::default();
    let mut after = None;
    loop {
        let batch = cases::register(&state.db, after.clone(), 5000).await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.received_at, last.id.clone()));
        for r in batch {
            // The month the customer was told at verification.
            let (_, month_due_at) =
                super::intake::month_due(state, r.received_at + r.paused_seconds, 0);
            let timeliness = match r.closed_at {
                Some(c) if c <= month_due_at => "within_month",
                Some(c) if c <= r.due_at => "within_extension",
                Some(_) => "late",
                None if r.due_at < now => "overdue",
                None => "open",
            };
            s.total += 1;
            match timeliness {
                "within_month" => s.within_month += 1,
                "within_extension" => s.within_extension += 1,
                "late" => s.late += 1,
                "overdue" => s.overdue += 1,
                _ => s.open += 1,
            }
            rows.push(Row {
                reference: super::reference(&r.id),
                kind: r.kind,
                channel: r.channel,
                received: day(state, r.received_at),
                due: r.due_date,
                extension_months: r.extension_months,
                closed: r.closed_at.map(|c| day(state, c)).unwrap_or_default(),
                status: r.status,
                outcome: r.outcome,
                timeliness,
            });
        }
    }
    s.closed = s.within_month + s.within_extension + s.late;
    if s.closed > 0 {
        let pct = |n: u64| (n as f64 * 1000.0 / s.closed as f64).round() / 10.0;
        s.share_within_month = pct(s.within_month);
        s.share_within_deadline = pct(s.within_month + s.within_extension);
    }
    Ok(Register { rows, summary: s })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Register {
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "reference,kind,channel,received,due_date,extension_months,closed,status,outcome,timeliness\n",
        );
        for r in &self.rows {
            let fields = [
                r.reference.clone(),
                r.kind.clone(),
                r.channel.clone(),
                r.received.clone(),
                r.due.clone(),
                r.extension_months.to_string(),
                r.closed.clone(),
                r.status.clone(),
                r.outcome.clone().unwrap_or_default(),
                r.timeliness.to_string(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }
}
