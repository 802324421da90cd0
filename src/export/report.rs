//! The human-readable report as a small document model — headings,
//! paragraphs, lists and tables of rich text — built once from the company
//! configuration, the profile and the rows, then rendered to `report.html`
//! here and to `report.pdf` in [`super::pdf`]. The translations are looked up
//! only here, so the two reports always say the same thing.

use std::io::Write;

use serde_json::Value;

use super::{cell, each_row, escape, Meta, CATEGORIES};
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
pub fn cover(meta: &Meta<'_>, profile: &serde_json::Map<String, Value>) -> Vec<Block> {
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
            lines.push(Span::Text(a.clone()));
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
                    .map(|x| format!(" ({x})"))
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
            .map(|(k, v)| vec![text(k), text(cell(v))])
            .collect(),
        empty: None,
    }));
    doc
}

/// One row of a category: its columns, then the fields not listed.
fn row_cells(columns: &[&str], row: &Value) -> Vec<Rich> {
    let mut cells: Vec<Rich> = columns
        .iter()
        .map(|c| text(row.get(*c).map(cell).unwrap_or_default()))
        .collect();
    let extra: Vec<String> = row
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !columns.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}: {}", cell(v)))
                .collect()
        })
        .unwrap_or_default();
    cells.push(text(extra.join("; ")));
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
    let mut doc = cover(meta, profile);
    let title = t(l, "export.report.title");
    write!(
        w,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:Arial,Helvetica,sans-serif;color:#1a1a1a;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}th,td{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}}\
         th{{background:#f0f2f4}}h2{{margin-top:2rem;border-bottom:2px solid #0b5cad}}@media print{{h2{{break-after:avoid}}}}</style></head><body>",
        l.as_str(),
        escape(&title)
    )?;
    for block in &doc {
        html_block(w, block)?;
    }

    for (cat, columns) in CATEGORIES {
        let heading = t(l, &format!("export.report.{cat}"));
        let mut header: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        header.push(t(l, "export.report.other_fields"));
        write!(w, "<h2>{}</h2>", escape(&heading))?;
        html_table_start(w, &header)?;
        let mut rows = Vec::new();
        let mut count = 0usize;
        each_row(src, cat, |row| {
            let cells = row_cells(columns, row);
            html_row(w, &cells)?;
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
        let columns = super::columns_of(original, &cat)?;
        let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
        let heading = crate::workflow::delete::category_label(l, &cat);
        let mut header: Vec<String> = columns.clone();
        header.push(t(l, "export.report.other_fields"));
        write!(w, "<h2>{}</h2>", escape(&heading))?;
        html_table_start(w, &header)?;
        let mut rows = Vec::new();
        let mut count = 0usize;
        original.for_each_row(&cat, &mut |row| {
            let cells = row_cells(&refs, row);
            html_row(w, &cells)?;
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
                html_row(w, row)?;
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
    w.write_all(b"<table><tr>")?;
    for h in header {
        write!(w, "<th>{}</th>", escape(h))?;
    }
    w.write_all(b"</tr>")
}

fn html_row(w: &mut impl Write, cells: &[Rich]) -> std::io::Result<()> {
    w.write_all(b"<tr>")?;
    for c in cells {
        w.write_all(b"<td>")?;
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
