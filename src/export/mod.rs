//! The export archive (Art. 15, Art. 20): `data.json` with everything held,
//! one CSV per category, and `report.html` — printable, self-contained —
//! opening with the Art. 15(1) information from the company configuration.
//! Rows are fetched page by page and written straight into an encrypted zip,
//! so memory stays flat however long the order history is.

pub mod crypt;

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    config::Company,
    domain::{authority, Locale},
    i18n::{t, t_args},
};

/// Categories beyond the profile, with the columns of their CSV. Fields not
/// listed (kept from import) go to the last column as JSON.
pub const CATEGORIES: [(&str, &[&str]); 4] = [
    (
        "orders",
        &["id", "placed_at", "status", "total_cents", "currency"],
    ),
    ("payments", &["method", "amount_cents", "collected_at"]),
    ("contacts", &["at", "channel", "summary"]),
    ("ip_log", &["at", "ip"]),
];

const PAGE: i64 = 10_000;

/// Where the rows come from; implemented over the connector.
pub trait Source {
    fn profile(&self) -> anyhow::Result<serde_json::Map<String, Value>>;
    fn page(&self, category: &str, offset: i64, limit: i64) -> anyhow::Result<Vec<Value>>;
}

pub struct Meta<'a> {
    pub locale: Locale,
    pub company: &'a Company,
    pub reference: &'a str,
    pub generated_at: DateTime<Utc>,
}

fn each_row(
    src: &dyn Source,
    category: &str,
    mut f: impl FnMut(&Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut offset = 0;
    loop {
        let rows = src.page(category, offset, PAGE)?;
        for r in &rows {
            f(r)?;
        }
        if (rows.len() as i64) < PAGE {
            return Ok(());
        }
        offset += PAGE;
    }
}

/// Writes the zip into `out` (an encrypting writer in production).
pub fn build<W: Write>(out: W, src: &dyn Source, meta: &Meta<'_>) -> anyhow::Result<W> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let profile = src.profile()?;

    // data.json, written as it is read.
    zip.start_file("data.json", opts)?;
    {
        let w = &mut zip;
        write!(
            w,
            "{{\"generated_at\":{},\"controller\":{},\"reference\":{},\"profile\":",
            serde_json::to_string(&meta.generated_at.to_rfc3339())?,
            serde_json::to_string(&meta.company.name)?,
            serde_json::to_string(meta.reference)?
        )?;
        serde_json::to_writer(&mut *w, &profile)?;
        for (cat, _) in CATEGORIES {
            write!(w, ",\"{cat}\":[")?;
            let mut first = true;
            each_row(src, cat, |row| {
                if !first {
                    w.write_all(b",")?;
                }
                first = false;
                serde_json::to_writer(&mut *w, row)?;
                Ok(())
            })?;
            w.write_all(b"]")?;
        }
        w.write_all(b"}")?;
    }

    zip.start_file("profile.csv", opts)?;
    zip.write_all(BOM)?;
    csv_line(&mut zip, &["field", "value"])?;
    for (k, v) in &profile {
        csv_line(&mut zip, &[k.as_str(), &cell(v)])?;
    }
    for (cat, columns) in CATEGORIES {
        zip.start_file(format!("{cat}.csv"), opts)?;
        zip.write_all(BOM)?;
        let mut header: Vec<&str> = columns.to_vec();
        header.push("other_fields");
        csv_line(&mut zip, &header)?;
        each_row(src, cat, |row| {
            let mut cells: Vec<String> = columns
                .iter()
                .map(|c| row.get(*c).map(cell).unwrap_or_default())
                .collect();
            let extra: serde_json::Map<String, Value> = row
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| !columns.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            cells.push(if extra.is_empty() {
                String::new()
            } else {
                Value::Object(extra).to_string()
            });
            let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
            csv_line(&mut zip, &refs)?;
            Ok(())
        })?;
    }

    zip.start_file("report.html", opts)?;
    report(&mut zip, src, meta, &profile)?;
    Ok(zip.finish()?.into_inner())
}

/// Spreadsheet programs need the BOM to read å, ä, ö, ë as UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A cell a spreadsheet would run as a formula is made inert with a
/// leading apostrophe (OWASP CSV injection).
fn neutralise(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

fn csv_line(w: &mut impl Write, cells: &[&str]) -> std::io::Result<()> {
    let line: Vec<String> = cells
        .iter()
        .map(|c| format!("\"{}\"", neutralise(c).replace('"', "\"\"")))
        .collect();
    w.write_all(line.join(",").as_bytes())?;
    w.write_all(b"\r\n")
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn report(
    w: &mut impl Write,
    src: &dyn Source,
    meta: &Meta<'_>,
    profile: &serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let l = meta.locale;
    let c = meta.company;
    let e = |s: &str| escape(s);
    let title = t(l, "export.report.title");
    write!(
        w,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:Arial,Helvetica,sans-serif;color:#1a1a1a;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}th,td{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}}\
         th{{background:#f0f2f4}}h2{{margin-top:2rem;border-bottom:2px solid #0b5cad}}@media print{{h2{{break-after:avoid}}}}</style></head><body>",
        l.as_str(),
        e(&title)
    )?;
    write!(w, "<h1>{}</h1>", e(&title))?;
    write!(
        w,
        "<p>{}</p>",
        e(&t_args(
            l,
            "export.report.intro",
            &[
                ("company", &c.name),
                (
                    "date",
                    &crate::i18n::long_date(l, meta.generated_at.date_naive())
                ),
                ("reference", meta.reference)
            ]
        ))
    )?;

    // Art. 15(1) information.
    let pn = &c.privacy_notice;
    write!(
        w,
        "<h2>{}</h2><p>{}</p>",
        e(&t(l, "privacy.controller_title")),
        e(&c.name)
    )?;
    if !c.address.is_empty() {
        write!(
            w,
            "<p>{}</p>",
            c.address
                .iter()
                .map(|a| e(a))
                .collect::<Vec<_>>()
                .join("<br>")
        )?;
    }
    write!(
        w,
        "<p>{}</p>",
        e(&t_args(
            l,
            "privacy.contact",
            &[("email", &c.privacy_email)]
        ))
    )?;
    write!(
        w,
        "<p>{}</p>",
        e(&t_args(
            l,
            "privacy.dpo",
            &[("name", &c.dpo.name), ("email", &c.dpo.email)]
        ))
    )?;

    write!(
        w,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        e(&t(l, "privacy.purposes_title")),
        e(&t(l, "export.report.purpose")),
        e(&t(l, "export.report.legal_basis")),
        e(&t(l, "export.report.categories"))
    )?;
    for p in &pn.purposes {
        let cats: Vec<&str> = p
            .categories
            .iter()
            .filter_map(|id| {
                pn.categories
                    .iter()
                    .find(|c| &c.id == id)
                    .map(|c| c.name.get(l))
            })
            .collect();
        let mut basis = t_args(
            l,
            "privacy.basis",
            &[
                (
                    "basis",
                    &t(
                        l,
                        &format!("privacy.basis_names.{}", p.legal_basis.as_str()),
                    ),
                ),
                ("article", p.legal_basis.article()),
            ],
        );
        if let Some(i) = &p.legitimate_interest {
            basis.push(' ');
            basis.push_str(&t_args(l, "privacy.interest", &[("interest", i.get(l))]));
        }
        write!(
            w,
            "<tr><td><strong>{}</strong><br>{}</td><td>{}</td><td>{}</td></tr>",
            e(p.name.get(l)),
            e(p.description.get(l)),
            e(&basis),
            e(&cats.join(", "))
        )?;
    }
    write!(w, "</table>")?;
    write!(
        w,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th></tr>",
        e(&t(l, "privacy.categories_title")),
        e(&t(l, "privacy.category")),
        e(&t(l, "privacy.retention"))
    )?;
    for cat in &pn.categories {
        write!(
            w,
            "<tr><td>{}</td><td>{}</td></tr>",
            e(cat.name.get(l)),
            e(cat.retention.get(l))
        )?;
    }
    write!(
        w,
        "</table><h2>{}</h2><ul>",
        e(&t(l, "privacy.recipients_title"))
    )?;
    for r in &pn.recipients {
        let loc = r
            .location
            .as_deref()
            .map(|x| format!(" ({})", e(x)))
            .unwrap_or_default();
        write!(
            w,
            "<li><strong>{}</strong>{} — {}</li>",
            e(&r.name),
            loc,
            e(r.role.get(l))
        )?;
    }
    write!(w, "</ul>")?;
    if let Some(tr) = &pn.transfers {
        write!(
            w,
            "<h2>{}</h2><p>{}</p>",
            e(&t(l, "privacy.transfers_title")),
            e(tr.get(l))
        )?;
    }
    write!(
        w,
        "<h2>{}</h2><p>{}</p>",
        e(&t(l, "privacy.source_title")),
        e(pn.source.get(l))
    )?;
    write!(
        w,
        "<h2>{}</h2><p>{}</p>",
        e(&t(l, "privacy.automated_title")),
        e(pn.automated_decisions.get(l))
    )?;
    let auth = authority::for_country(c.country);
    write!(w, "<h2>{}</h2><ul>", e(&t(l, "export.report.rights_title")))?;
    for key in [
        "rectification",
        "erasure",
        "restriction",
        "objection",
        "portability",
    ] {
        write!(
            w,
            "<li>{}</li>",
            e(&t(l, &format!("export.report.right_{key}")))
        )?;
    }
    write!(
        w,
        "<li>{} <a href=\"{}\">{}</a></li></ul>",
        e(&t_args(
            l,
            "privacy.complaint",
            &[("authority", &t(l, auth.name_key))]
        )),
        e(auth.complaint_url),
        e(auth.complaint_url)
    )?;

    // The data itself.
    write!(
        w,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th></tr>",
        e(&t(l, "export.report.profile")),
        e(&t(l, "export.report.field")),
        e(&t(l, "export.report.value"))
    )?;
    for (k, v) in profile {
        write!(w, "<tr><td>{}</td><td>{}</td></tr>", e(k), e(&cell(v)))?;
    }
    write!(w, "</table>")?;
    for (cat, columns) in CATEGORIES {
        write!(
            w,
            "<h2>{}</h2><table><tr>",
            e(&t(l, &format!("export.report.{cat}")))
        )?;
        for col in columns {
            write!(w, "<th>{}</th>", e(col))?;
        }
        write!(
            w,
            "<th>{}</th></tr>",
            e(&t(l, "export.report.other_fields"))
        )?;
        let mut any = false;
        each_row(src, cat, |row| {
            any = true;
            write!(w, "<tr>")?;
            for col in columns {
                write!(
                    w,
                    "<td>{}</td>",
                    e(&row.get(*col).map(cell).unwrap_or_default())
                )?;
            }
            let extra: Vec<String> = row
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| !columns.contains(&k.as_str()))
                        .map(|(k, v)| format!("{k}: {}", cell(v)))
                        .collect()
                })
                .unwrap_or_default();
            write!(w, "<td>{}</td></tr>", e(&extra.join("; ")))?;
            Ok(())
        })?;
        if !any {
            write!(
                w,
                "<tr><td colspan=\"{}\">{}</td></tr>",
                columns.len() + 1,
                e(&t(l, "export.report.none"))
            )?;
        }
        write!(w, "</table>")?;
    }
    write!(w, "</body></html>")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_made_inert() {
        assert_eq!(
            neutralise("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(neutralise("+31 6"), "'+31 6");
        assert_eq!(neutralise("Åsa"), "Åsa");
        let mut out = Vec::new();
        csv_line(&mut out, &["a\"b", "@SUM(A1)"]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\"\"b\",\"'@SUM(A1)\"\r\n"
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
    }
}
