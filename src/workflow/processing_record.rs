//! The record of processing activities (Art. 30(1)) — the DPO's document —
//! rendered from the same company file as the privacy notice and the
//! export's cover, so the three cannot disagree.

use crate::{
    config::Company,
    domain::Locale,
    i18n::t,
    workflow::notice::{self, NoticeView},
};

/// One row per purpose: what Art. 30(1)(b)–(f) asks for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Activity {
    pub purpose: String,
    pub description: String,
    pub legal_basis: String,
    pub interest: Option<String>,
    pub subjects: String,
    pub categories: Vec<String>,
    pub recipients: Vec<String>,
    pub transfers: String,
    pub retention: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    pub notice: NoticeView,
    pub activities: Vec<Activity>,
    pub security: String,
}

pub fn build(c: &Company, locale: Locale) -> Record {
    let n = notice::view(c, locale);
    let recipients: Vec<String> = n
        .recipients
        .iter()
        .map(|r| match &r.location {
            Some(l) => format!("{} ({}; {l})", r.name, r.role.trim_end_matches('.')),
            None => format!("{} ({})", r.name, r.role.trim_end_matches('.')),
        })
        .collect();
    let transfers = n
        .transfers
        .clone()
        .unwrap_or_else(|| t(locale, "staff.record.no_transfers"));
    let activities = c
        .privacy_notice
        .purposes
        .iter()
        .zip(&n.purposes)
        .map(|(p, v)| {
            let retention = p
                .categories
                .iter()
                .filter_map(|id| n.categories.iter().find(|c| &c.id == id))
                .map(|c| {
                    let mut line = format!("{}: {}", c.name, c.retention);
                    if let Some(e) = &c.enforced {
                        line = format!("{line} {e}");
                    }
                    line
                })
                .collect();
            Activity {
                purpose: v.name.clone(),
                description: v.description.clone(),
                legal_basis: format!("{} (art. {})", v.basis, v.article),
                interest: v.interest.clone(),
                subjects: t(locale, "staff.record.subjects_customers"),
                categories: v.categories.clone(),
                recipients: recipients.clone(),
                transfers: transfers.clone(),
                retention,
            }
        })
        .collect();
    Record {
        notice: n,
        activities,
        security: t(locale, "staff.record.security_measures"),
    }
}

/// The record as CSV (one row per purpose), `;`-separated for nl and sv so
/// it opens in columns in their spreadsheet programs.
pub fn csv(record: &Record, locale: Locale) -> String {
    let sep = if locale == Locale::En { "," } else { ";" };
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let header = [
        "col_purpose",
        "col_description",
        "col_basis",
        "col_interest",
        "col_subjects",
        "col_categories",
        "col_recipients",
        "col_transfers",
        "col_retention",
    ]
    .iter()
    .map(|k| q(&t(locale, &format!("staff.record.{k}"))))
    .collect::<Vec<_>>()
    .join(sep);
    let mut out = String::from("\u{feff}");
    out.push_str(&header);
    out.push_str("\r\n");
    for a in &record.activities {
        let cells = [
            a.purpose.clone(),
            a.description.clone(),
            a.legal_basis.clone(),
            a.interest.clone().unwrap_or_default(),
            a.subjects.clone(),
            a.categories.join("; "),
            a.recipients.join("; "),
            a.transfers.clone(),
            a.retention.join(" | "),
        ];
        out.push_str(&cells.iter().map(|c| q(c)).collect::<Vec<_>>().join(sep));
        out.push_str("\r\n");
    }
    out
}
