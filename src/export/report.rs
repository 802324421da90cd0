//! The human-readable report as a small document model — headings,
//! paragraphs, lists and tables of rich text — built once from the company
//! configuration, the profile and the rows, then rendered to `report.html`
//! here and to `report.pdf` in [`super::pdf`]. The translations are looked up
//! only here, so the two reports always say the same thing.

use std::io::Write;

use serde_json::Value;

use super::{each_row, escape, readable::Fmt, Meta, CATEGORIES};
use crate::{
    domain::Locale,
    i18n::{t, t_args},
};

/// Rows per category listed in the PDF; the rest are in the CSV files and
/// `data.json`, and a note says so. Keeps the PDF readable and its
/// memory and time bounded however long the order history is.
pub const PDF_ROWS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    Text(String),
    Strong(String),
    /// A URL, shown as itself.
    Link(String),
    Break,
}

pub type Rich = Vec<Span>;

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Title(String),
    Heading(String),
    Paragraph(Rich),
    List(Vec<Rich>),
    Table(Table),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Rich>>,
    /// Shown across the table when it has no rows.
    pub empty: Option<String>,
}

fn text(s: impl Into<String>) -> Rich {
    vec![Span::Text(s.into())]
}

/// The title, the Art. 15(1) information and the profile.
pub fn cover(meta: &Meta<'_>, f: &Fmt<'_>, profile: &serde_json::Map<String, Value>) -> Vec<Block> {
    let l = meta.locale;
    let c = meta.company;
    let pn = &c.privacy_notice;
    let mut doc = vec![
        Block::Title(t(l, "export.report.title")),
        Block::Paragraph(text(t_args(
            l,
            "export.report.intro",
            &[
                ("company", &c.name),
                (
                    "date",
                    &crate::i18n::long_date(l, meta.generated_at.date_naive()),
                ),
                ("reference", meta.reference),
            ],
        ))),
    ];

    // Art. 15(1) information.
    doc.push(Block::Heading(t(l, "privacy.controller_title")));
    doc.push(Block::Paragraph(text(&c.name)));
    if !c.address.is_empty() {
        let mut lines = Vec::new();
        for (i, a) in c.address.iter().enumerate() {
            if i > 0 {
                lines.push(Span::Break);
            }
            lines.push(Span::Text(crate::i18n::place(l, a)));
        }
        doc.push(Block::Paragraph(lines));
    }
    doc.push(Block::Paragraph(text(t_args(
        l,
        "privacy.contact",
        &[("email", &c.privacy_email)],
    ))));
    doc.push(Block::Paragraph(text(t_args(
        l,
        "privacy.dpo",
        &[("name", &c.dpo.name), ("email", &c.dpo.email)],
    ))));

    doc.push(Block::Heading(t(l, "privacy.purposes_title")));
    let rows = pn
        .purposes
        .iter()
        .map(|p| {
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
            vec![
                vec![
                    Span::Strong(p.name.get(l).to_string()),
                    Span::Break,
                    Span::Text(p.description.get(l).to_string()),
                ],
                text(basis),
                text(cats.join(", ")),
            ]
        })
        .collect();
    doc.push(Block::Table(Table {
        header: vec![
            t(l, "export.report.purpose"),
            t(l, "export.report.legal_basis"),
            t(l, "export.report.categories"),
        ],
        rows,
        empty: None,
    }));

    doc.push(Block::Heading(t(l, "privacy.categories_title")));
    doc.push(Block::Table(Table {
        header: vec![t(l, "privacy.category"), t(l, "privacy.retention")],
        rows: pn
            .categories
            .iter()
            .map(|cat| vec![text(cat.name.get(l)), text(cat.retention.get(l))])
            .collect(),
        empty: None,
    }));

    doc.push(Block::Heading(t(l, "privacy.recipients_title")));
    doc.push(Block::List(
        pn.recipients
            .iter()
            .map(|r| {
                let loc = r
                    .location
                    .as_deref()
                    .map(|x| format!(" ({})", crate::i18n::place(l, x)))
                    .unwrap_or_default();
                vec![
                    Span::Strong(r.name.clone()),
                    Span::Text(format!("{loc} — {}", r.role.get(l))),
                ]
            })
            .collect(),
    ));
    if let Some(tr) = &pn.transfers {
        doc.push(Block::Heading(t(l, "privacy.transfers_title")));
        doc.push(Block::Paragraph(text(tr.get(l))));
    }
    doc.push(Block::Heading(t(l, "privacy.source_title")));
    doc.push(Block::Paragraph(text(pn.source.get(l))));
    doc.push(Block::Heading(t(l, "privacy.automated_title")));
    doc.push(Block::Paragraph(text(pn.automated_decisions.get(l))));

    let complaint = crate::workflow::notice::complaint_view(c, l);
    doc.push(Block::Heading(t(l, "export.report.rights_title")));
    let mut rights: Vec<Rich> = [
        "rectification",
        "erasure",
        "restriction",
        "objection",
        "portability",
    ]
    .iter()
    .map(|key| text(t(l, &format!("export.report.right_{key}"))))
    .collect();
    rights.push(vec![
        Span::Text(format!(
            "{} ",
            t_args(
                l,
                "privacy.complaint",
                &[("authority", &complaint.authority)]
            )
        )),
        Span::Link(complaint.complaint_url.to_string()),
    ]);
    if let (Some(also), Some(url)) = (complaint.also, complaint.also_url) {
        rights.push(vec![
            Span::Text(format!("{also} ")),
            Span::Link(url.to_string()),
        ]);
    }
    doc.push(Block::List(rights));

    // The data itself.
    doc.push(Block::Heading(t(l, "export.report.profile")));
    doc.push(Block::Table(Table {
        header: vec![t(l, "export.report.field"), t(l, "export.report.value")],
        rows: profile
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| vec![text(f.label(k)), f.value(k, v, None)])
            .collect(),
        empty: None,
    }));
    doc
}

/// The columns a category shows in the report: the amounts already say
/// their currency, so a currency column would only repeat it.
fn report_columns<'c>(columns: &[&'c str]) -> Vec<&'c str> {
    let amounts = columns.iter().any(|c| c.ends_with("_cents"));
    columns
        .iter()
        .copied()
        .filter(|c| !(amounts && *c == "currency"))
        .collect()
}

/// One row of a category: its columns, then the fields not listed (as
/// readable lines, not JSON).
fn row_cells(f: &Fmt<'_>, columns: &[&str], row: &Value) -> Vec<Rich> {
    let mut cells: Vec<Rich> = columns
        .iter()
        .map(|c| {
            row.get(*c)
                .map(|v| f.value(c, v, Some(row)))
                .unwrap_or_default()
        })
        .collect();
    let mut extra: Rich = Vec::new();
    if let Some(o) = row.as_object() {
        // The amounts say the currency already.
        let priced = o.keys().any(|k| k.ends_with("_cents"));
        for (k, v) in o {
            if columns.contains(&k.as_str()) || (priced && k == "currency") {
                continue;
            }
            if !extra.is_empty() {
                extra.push(Span::Break);
            }
            let value = f.value(k, v, Some(row));
            if matches!(v, Value::Object(_) | Value::Array(_)) {
                extra.push(Span::Text(format!("{}:", f.label(k))));
                extra.push(Span::Break);
                extra.extend(value);
            } else {
                extra.push(Span::Text(format!("{}: ", f.label(k))));
                extra.extend(value);
            }
        }
    }
    cells.push(extra);
    cells
}

/// "100,000" / "100.000" / "100 000".
fn grouped(l: Locale, n: usize) -> String {
    let sep = match l {
        Locale::En => ',',
        Locale::Nl => '.',
        Locale::Sv => '\u{a0}',
    };
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(d);
    }
    out
}

/// The PDF's line under a category cut at [`PDF_ROWS`].
pub fn more_rows(l: Locale, category: &str, count: usize) -> String {
    t_args(
        l,
        &format!("export.report.more_{category}"),
        &[
            ("shown", &grouped(l, PDF_ROWS)),
            ("count", &grouped(l, count)),
        ],
    )
}

/// Writes `report.html` — the cover and every row of every category, read
/// page by page — and returns the document `report.pdf` is made from: the
/// same cover and tables, cut at [`PDF_ROWS`] rows per category with a note
/// pointing to the complete files.
pub fn write_html(
    w: &mut impl Write,
    src: &dyn super::Source,
    original: &dyn super::Source,
    meta: &Meta<'_>,
    profile: &serde_json::Map<String, Value>,
) -> anyhow::Result<Vec<Block>> {
    let l = meta.locale;
    let f = Fmt::for_customer(l, meta.company, src)?;
    let mut doc = cover(meta, &f, profile);
    let title = t(l, "export.report.title");
    write!(
        w,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title>\
         <style>body{{font-family:Arial,Helvetica,sans-serif;color:#1a1a1a;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5;overflow-wrap:anywhere}}\
         table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}th,td{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}}\
         th{{background:#f0f2f4}}h2{{margin-top:2rem;border-bottom:2px solid #0b5cad}}@media print{{h2{{break-after:avoid}}}}\
         @media (max-width:600px){{body{{margin:1rem auto}}table,tbody,tr,td{{display:block;width:auto}}thead{{display:none}}\
         tr{{border:1px solid #ccc;margin:0 0 .75rem}}td{{border:0;border-top:1px solid #eee}}tr td:first-child{{border-top:0}}\
         td[data-label]::before{{content:attr(data-label);display:block;font-weight:bold;font-size:.85em;color:#444}}}}</style></head><body>",
        l.as_str(),
        escape(&title)
    )?;
    for block in &doc {
        html_block(w, block)?;
    }

    for (cat, columns) in CATEGORIES {
        let heading = t(l, &format!("export.report.{cat}"));
        let columns = report_columns(columns);
        let mut header: Vec<String> = columns.iter().map(|c| f.column(cat, c)).collect();
        header.push(t(l, "export.report.other_fields"));
        write!(w, "<h2>{}</h2>", escape(&heading))?;
        html_table_start(w, &header)?;
        let mut rows = Vec::new();
        let mut count = 0usize;
        each_row(src, cat, |row| {
            let cells = row_cells(&f, &columns, row);
            html_row(w, &header, &cells)?;
            count += 1;
            if rows.len() < PDF_ROWS {
                rows.push(cells);
            }
            Ok(())
        })?;
        let empty = t(l, "export.report.none");
        html_table_end(w, header.len(), (count == 0).then_some(empty.as_str()))?;
        doc.push(Block::Heading(heading));
        doc.push(Block::Table(Table {
            header,
            rows,
            empty: Some(empty),
        }));
        if count > PDF_ROWS {
            doc.push(Block::Paragraph(text(more_rows(l, cat, count))));
        }
    }
    // Categories a company system returned that the portal has no words
    // for: shown with their own field names.
    for cat in original.extra_categories() {
        if cat == "consents" {
            // A company system's consents: purposes with yes or no.
            let heading = f.label("consents");
            let mut items: Vec<Rich> = Vec::new();
            original.for_each_row(&cat, &mut |row| {
                if let Some(o) = row.as_object() {
                    for (k, v) in o {
                        items.push(text(format!(
                            "{}: {}",
                            f.purpose(k),
                            super::readable::plain(&f.value("", v, None))
                        )));
                    }
                }
                Ok(())
            })?;
            let blocks = [Block::Heading(heading), Block::List(items)];
            for b in &blocks {
                html_block(w, b)?;
            }
            doc.extend(blocks);
            continue;
        }
        let columns = super::columns_of(original, &cat)?;
        let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
        let heading = crate::workflow::delete::category_label(l, &cat);
        let mut header: Vec<String> = columns.iter().map(|c| f.column(&cat, c)).collect();
        header.push(t(l, "export.report.other_fields"));
        write!(w, "<h2>{}</h2>", escape(&heading))?;
        html_table_start(w, &header)?;
        let mut rows = Vec::new();
        let mut count = 0usize;
        original.for_each_row(&cat, &mut |row| {
            let cells = row_cells(&f, &refs, row);
            html_row(w, &header, &cells)?;
            count += 1;
            if rows.len() < PDF_ROWS {
                rows.push(cells);
            }
            Ok(())
        })?;
        html_table_end(w, header.len(), None)?;
        doc.push(Block::Heading(heading));
        doc.push(Block::Table(Table {
            header,
            rows,
            empty: None,
        }));
        if count > PDF_ROWS {
            doc.push(Block::Paragraph(text(crate::i18n::t_args(
                l,
                "export.report.more_rows_other",
                &[
                    ("shown", &grouped(l, PDF_ROWS)),
                    ("count", &grouped(l, count)),
                ],
            ))));
        }
    }
    if !meta.others.is_empty() {
        let mut blocks = vec![
            Block::Heading(t(l, "export.report.systems_title")),
            Block::Paragraph(text(t(l, "export.report.systems_intro"))),
        ];
        for sys in meta.others {
            blocks.push(Block::Paragraph(vec![Span::Strong(sys.name.clone())]));
            let counts = sys.data.counts();
            if sys.unsupported {
                blocks.push(Block::Paragraph(text(t(
                    l,
                    "export.report.system_unsupported",
                ))));
            } else if counts.is_empty() && sys.data.profile.is_empty() {
                blocks.push(Block::Paragraph(text(t(l, "export.report.system_none"))));
            } else {
                let mut items: Vec<Rich> = Vec::new();
                if !sys.data.profile.is_empty() {
                    items.push(text(crate::i18n::t_args(
                        l,
                        "export.report.system_rows",
                        &[
                            ("category", &t(l, "export.report.profile")),
                            ("count", &grouped(l, sys.data.profile.len())),
                        ],
                    )));
                }
                for (cat, n) in counts {
                    items.push(text(crate::i18n::t_args(
                        l,
                        "export.report.system_rows",
                        &[
                            (
                                "category",
                                &crate::workflow::delete::category_label(l, &cat),
                            ),
                            ("count", &grouped(l, n)),
                        ],
                    )));
                }
                blocks.push(Block::List(items));
            }
        }
        for b in &blocks {
            html_block(w, b)?;
        }
        doc.extend(blocks);
    }
    write!(w, "</body></html>")?;
    Ok(doc)
}

fn html_rich(w: &mut impl Write, rich: &[Span]) -> std::io::Result<()> {
    for span in rich {
        match span {
            Span::Text(s) => w.write_all(escape(s).as_bytes())?,
            Span::Strong(s) => write!(w, "<strong>{}</strong>", escape(s))?,
            Span::Link(url) => write!(w, "<a href=\"{0}\">{0}</a>", escape(url))?,
            Span::Break => w.write_all(b"<br>")?,
        }
    }
    Ok(())
}

fn html_block(w: &mut impl Write, block: &Block) -> std::io::Result<()> {
    match block {
        Block::Title(s) => write!(w, "<h1>{}</h1>", escape(s)),
        Block::Heading(s) => write!(w, "<h2>{}</h2>", escape(s)),
        Block::Paragraph(rich) => {
            w.write_all(b"<p>")?;
            html_rich(w, rich)?;
            w.write_all(b"</p>")
        }
        Block::List(items) => {
            w.write_all(b"<ul>")?;
            for item in items {
                w.write_all(b"<li>")?;
                html_rich(w, item)?;
                w.write_all(b"</li>")?;
            }
            w.write_all(b"</ul>")
        }
        Block::Table(table) => {
            html_table_start(w, &table.header)?;
            for row in &table.rows {
                html_row(w, &table.header, row)?;
            }
            html_table_end(
                w,
                table.header.len(),
                table.empty.as_deref().filter(|_| table.rows.is_empty()),
            )
        }
    }
}

fn html_table_start(w: &mut impl Write, header: &[String]) -> std::io::Result<()> {
    w.write_all(b"<table><thead><tr>")?;
    for h in header {
        write!(w, "<th>{}</th>", escape(h))?;
    }
    w.write_all(b"</tr></thead>")
}

/// A row; each cell carries its column's name, which the phone layout
/// shows above the value once the table is stacked.
fn html_row(w: &mut impl Write, header: &[String], cells: &[Rich]) -> std::io::Result<()> {
    w.write_all(b"<tr>")?;
    for (i, c) in cells.iter().enumerate() {
        match header.get(i) {
            Some(h) => write!(w, "<td data-label=\"{}\">", escape(h))?,
            None => w.write_all(b"<td>")?,
        }
        html_rich(w, c)?;
        w.write_all(b"</td>")?;
    }
    w.write_all(b"</tr>")
}

fn html_table_end(w: &mut impl Write, columns: usize, empty: Option<&str>) -> std::io::Result<()> {
    if let Some(none) = empty {
        write!(
            w,
            "<tr><td colspan=\"{columns}\">{}</td></tr>",
            escape(none)
        )?;
    }
    w.write_all(b"</table>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_the_local_way() {
        assert_eq!(grouped(Locale::En, 100_000), "100,000");
        assert_eq!(grouped(Locale::Nl, 1_234_567), "1.234.567");
        assert_eq!(grouped(Locale::Sv, 100_000), "100\u{a0}000");
        assert_eq!(grouped(Locale::En, 200), "200");
    }
}
