//! The export archive (Art. 15, Art. 20): `data.json` with everything held,
//! one CSV per category, and two human-readable reports in the request's
//! language, both opening with the Art. 15(1) information from the company
//! configuration: `report.html` (printable, self-contained, every row) and
//! `report.pdf` (A4, DejaVu Sans embedded; the first
//! [`report::PDF_ROWS`] rows per category, then a line saying that all of
//! them are in the CSV and `data.json`). Both are rendered from one document
//! model ([`report`]), so they cannot drift apart.
//!
//! Rows are fetched page by page and written straight into an encrypted zip,
//! so memory stays flat however long the order history is; only the PDF,
//! bounded by its row cap, is built in memory before it goes into the zip.

pub mod chunks;
pub mod crypt;
pub mod pdf;
pub mod readable;
pub mod report;

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{config::Company, domain::Locale, i18n::t};

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

    /// Categories a company system returned that the portal has no
    /// columns for; exported with the fields they have.
    fn extra_categories(&self) -> Vec<String> {
        Vec::new()
    }

    /// Every row of a category, in order.
    fn for_each_row(
        &self,
        category: &str,
        f: &mut dyn FnMut(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut offset = 0;
        loop {
            let rows = self.page(category, offset, PAGE)?;
            for r in &rows {
                f(r)?;
            }
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
            offset += PAGE;
        }
    }
}

/// The rows as data.json received them, kept as deflated JSON lines so the
/// CSV and report passes need not read the source again: reading (the
/// connector's pages, sqlx's per-row hand-off, building each `Value`) was
/// two thirds of the archive's time, and 100 000 orders take ~1 MiB here.
struct Replay {
    profile: serde_json::Map<String, Value>,
    rows: Vec<(&'static str, Vec<u8>)>,
}

impl Source for Replay {
    fn profile(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        Ok(self.profile.clone())
    }

    fn page(&self, _: &str, _: i64, _: i64) -> anyhow::Result<Vec<Value>> {
        anyhow::bail!("a replay is read whole, with for_each_row")
    }

    fn for_each_row(
        &self,
        category: &str,
        f: &mut dyn FnMut(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use std::io::BufRead;
        let Some((_, buf)) = self.rows.iter().find(|(c, _)| *c == category) else {
            return Ok(());
        };
        let mut lines = std::io::BufReader::new(flate2::read::DeflateDecoder::new(&buf[..]));
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                return Ok(());
            }
            f(&serde_json::from_str(&line)?)?;
        }
    }
}

pub struct Meta<'a> {
    pub locale: Locale,
    pub company: &'a Company,
    pub reference: &'a str,
    pub generated_at: DateTime<Utc>,
    /// The company's other systems, each in its own folder of the archive
    /// and listed in the report with what it returned.
    pub others: &'a [OtherSystem],
}

/// What one of the company's other systems returned for the customer.
pub struct OtherSystem {
    pub id: String,
    pub name: String,
    pub data: Spooled,
    /// The system does not offer exports (it answered 404): said in the
    /// report, not hidden.
    pub unsupported: bool,
}

/// Records as a system returned them (any category, in its order), kept
/// deflated so that a long history costs a few bytes a row in memory.
#[derive(Default)]
pub struct Spool {
    profile: serde_json::Map<String, Value>,
    cats: Vec<(String, flate2::write::DeflateEncoder<Vec<u8>>, usize)>,
}

impl Spool {
    pub fn push(&mut self, category: &str, data: Value) -> anyhow::Result<()> {
        if category == "profile" {
            if let Value::Object(m) = data {
                self.profile.extend(m);
            }
            return Ok(());
        }
        let i = match self.cats.iter().position(|(c, _, _)| c == category) {
            Some(i) => i,
            None => {
                self.cats.push((
                    category.to_string(),
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast()),
                    0,
                ));
                self.cats.len() - 1
            }
        };
        let Some((_, enc, n)) = self.cats.get_mut(i) else {
            anyhow::bail!("spool category vanished");
        };
        serde_json::to_writer(&mut *enc, &data)?;
        enc.write_all(b"\n")?;
        *n += 1;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<Spooled> {
        let mut cats = Vec::with_capacity(self.cats.len());
        for (c, enc, n) in self.cats {
            cats.push((c, enc.finish()?, n));
        }
        Ok(Spooled {
            profile: self.profile,
            cats,
        })
    }
}

pub struct Spooled {
    pub profile: serde_json::Map<String, Value>,
    cats: Vec<(String, Vec<u8>, usize)>,
}

impl Spooled {
    /// `(category, rows)` in the order the system returned them.
    pub fn counts(&self) -> Vec<(String, usize)> {
        self.cats.iter().map(|(c, _, n)| (c.clone(), *n)).collect()
    }
}

impl Source for Spooled {
    fn profile(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        Ok(self.profile.clone())
    }

    fn page(&self, _: &str, _: i64, _: i64) -> anyhow::Result<Vec<Value>> {
        anyhow::bail!("a spool is read whole, with for_each_row")
    }

    fn extra_categories(&self) -> Vec<String> {
        self.cats
            .iter()
            .map(|(c, _, _)| c.clone())
            .filter(|c| !CATEGORIES.iter().any(|(k, _)| k == c))
            .collect()
    }

    fn for_each_row(
        &self,
        category: &str,
        f: &mut dyn FnMut(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use std::io::BufRead;
        let Some((_, buf, _)) = self.cats.iter().find(|(c, _, _)| c == category) else {
            return Ok(());
        };
        let mut lines = std::io::BufReader::new(flate2::read::DeflateDecoder::new(&buf[..]));
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                return Ok(());
            }
            f(&serde_json::from_str(&line)?)?;
        }
    }
}

/// The columns of a category the portal does not know: the fields of its
/// first rows, in their order.
fn columns_of(src: &dyn Source, category: &str) -> anyhow::Result<Vec<String>> {
    let mut cols: Vec<String> = Vec::new();
    let mut seen = 0;
    let stop = "enough";
    let r = src.for_each_row(category, &mut |row| {
        if let Some(o) = row.as_object() {
            for k in o.keys() {
                if !cols.contains(k) && cols.len() < 12 {
                    cols.push(k.clone());
                }
            }
        }
        seen += 1;
        if seen >= 50 {
            anyhow::bail!(stop);
        }
        Ok(())
    });
    match r {
        Err(e) if e.to_string() == stop => {}
        other => other?,
    }
    Ok(cols)
}

/// How a spreadsheet in the customer's region reads a CSV: Dutch and
/// Swedish Excel split on `;` and take `,` as the decimal sign.
struct Csv<'a> {
    f: readable::Fmt<'a>,
    sep: u8,
    decimal: char,
}

impl<'a> Csv<'a> {
    fn new(f: readable::Fmt<'a>) -> Self {
        match f.locale {
            Locale::En => Csv {
                f,
                sep: b',',
                decimal: '.',
            },
            Locale::Nl | Locale::Sv => Csv {
                f,
                sep: b';',
                decimal: ',',
            },
        }
    }

    fn line(&self, w: &mut impl Write, cells: &[&str]) -> std::io::Result<()> {
        csv_line_with(w, cells, self.sep, self.decimal)
    }

    /// A value as a spreadsheet cell: amounts as local decimals (the
    /// currency is in its own column or the company's), the rest as stored.
    fn cell(&self, field: &str, v: &Value) -> String {
        match v {
            Value::Number(n) if field.ends_with("_cents") => match n.as_i64() {
                Some(c) => readable::decimal(self.f.locale, c),
                None => n.to_string(),
            },
            other => cell(other),
        }
    }

    fn header(&self, category: &str, field: &str) -> String {
        self.f.column(category, field)
    }
}

/// One CSV of a category with the given columns; fields beyond them go to
/// the last column as JSON.
fn write_csv<W: Write>(
    w: &mut W,
    csv: &Csv<'_>,
    src: &dyn Source,
    category: &str,
    columns: &[&str],
) -> anyhow::Result<()> {
    w.write_all(BOM)?;
    let mut header: Vec<String> = columns.iter().map(|c| csv.header(category, c)).collect();
    header.push(t(csv.f.locale, "export.csv.other_fields"));
    let refs: Vec<&str> = header.iter().map(String::as_str).collect();
    csv.line(w, &refs)?;
    src.for_each_row(category, &mut |row| {
        let mut cells: Vec<String> = columns
            .iter()
            .map(|c| row.get(*c).map(|v| csv.cell(c, v)).unwrap_or_default())
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
        csv.line(w, &refs)?;
        Ok(())
    })
}

/// `profile.csv`: one line per field, labelled in the customer's language.
fn write_profile_csv<W: Write>(
    w: &mut W,
    csv: &Csv<'_>,
    profile: &serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let l = csv.f.locale;
    w.write_all(BOM)?;
    csv.line(w, &[&t(l, "export.csv.field"), &t(l, "export.csv.value")])?;
    for (k, v) in profile {
        csv.line(w, &[&csv.header("profile", k), &csv.cell(k, v)])?;
    }
    Ok(())
}

/// A system's folder: `data.json` with everything it returned and a CSV per
/// category.
fn write_system<W: Write + std::io::Seek>(
    zip: &mut zip::ZipWriter<W>,
    opts: zip::write::SimpleFileOptions,
    csv: &Csv<'_>,
    sys: &OtherSystem,
) -> anyhow::Result<()> {
    let id = &sys.id;
    zip.start_file(format!("{id}/data.json"), opts)?;
    write!(
        zip,
        "{{\"system\":{},\"name\":{},\"profile\":",
        serde_json::to_string(id)?,
        serde_json::to_string(&sys.name)?
    )?;
    serde_json::to_writer(&mut *zip, &sys.data.profile)?;
    for (cat, _) in sys.data.counts() {
        write!(zip, ",{}:[", serde_json::to_string(&cat)?)?;
        let mut first = true;
        sys.data.for_each_row(&cat, &mut |row| {
            if !first {
                zip.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(&mut *zip, row)?;
            Ok(())
        })?;
        zip.write_all(b"]")?;
    }
    zip.write_all(b"}")?;
    if !sys.data.profile.is_empty() {
        zip.start_file(format!("{id}/profile.csv"), opts)?;
        write_profile_csv(zip, csv, &sys.data.profile)?;
    }
    for (cat, _) in sys.data.counts() {
        let cols = match CATEGORIES.iter().find(|(c, _)| *c == cat) {
            Some((_, cols)) => cols.iter().map(|c| c.to_string()).collect(),
            None => columns_of(&sys.data, &cat)?,
        };
        let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
        zip.start_file(format!("{id}/{cat}.csv"), opts)?;
        write_csv(zip, csv, &sys.data, &cat, &refs)?;
    }
    Ok(())
}

fn each_row(
    src: &dyn Source,
    category: &str,
    mut f: impl FnMut(&Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    src.for_each_row(category, &mut f)
}

/// Writes the zip into `out` (an encrypting writer in production).
pub fn build<W: Write>(out: W, src: &dyn Source, meta: &Meta<'_>) -> anyhow::Result<W> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let profile = src.profile()?;
    let mut replay = Replay {
        profile: profile.clone(),
        rows: Vec::new(),
    };

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
        let mut json = Vec::new();
        for (cat, _) in CATEGORIES {
            write!(w, ",\"{cat}\":[")?;
            let mut first = true;
            let mut keep =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            each_row(src, cat, |row| {
                if !first {
                    w.write_all(b",")?;
                }
                first = false;
                json.clear();
                serde_json::to_writer(&mut json, row)?;
                w.write_all(&json)?;
                json.push(b'\n');
                keep.write_all(&json)?;
                Ok(())
            })?;
            w.write_all(b"]")?;
            replay.rows.push((cat, keep.finish()?));
        }
        for cat in src.extra_categories() {
            write!(w, ",{}:[", serde_json::to_string(&cat)?)?;
            let mut first = true;
            src.for_each_row(&cat, &mut |row| {
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
    let original = src;
    let src: &dyn Source = &replay;

    let csv = Csv::new(readable::Fmt::new(meta.locale, meta.company));
    zip.start_file("profile.csv", opts)?;
    write_profile_csv(&mut zip, &csv, &profile)?;
    for (cat, columns) in CATEGORIES {
        zip.start_file(format!("{cat}.csv"), opts)?;
        write_csv(&mut zip, &csv, src, cat, columns)?;
    }
    let extras = original.extra_categories();
    for cat in &extras {
        let cols = columns_of(original, cat)?;
        let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
        zip.start_file(format!("{cat}.csv"), opts)?;
        write_csv(&mut zip, &csv, original, cat, &refs)?;
    }
    for sys in meta.others {
        write_system(&mut zip, opts, &csv, sys)?;
    }

    zip.start_file("report.html", opts)?;
    let doc = report::write_html(&mut zip, src, original, meta, &profile)?;
    // Built in memory: bounded by report::PDF_ROWS rows per category.
    let pdf = pdf::render(&doc, meta)?;
    drop(doc);
    zip.start_file("report.pdf", opts)?;
    zip.write_all(&pdf)?;
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
/// leading apostrophe (OWASP CSV injection). Spreadsheets skip leading
/// spaces (also no-break and other Unicode spaces) and read the fullwidth
/// signs as ASCII ones, so those count as formula starters too. A plain
/// number (`-12.50`) stays a number.
#[cfg(test)]
fn neutralise(s: &str) -> String {
    neutralise_with(s, '.')
}

/// [`neutralise`] for a region whose decimal sign is `decimal`: there
/// `-12,50` is the plain number.
fn neutralise_with(s: &str, decimal: char) -> String {
    if is_plain_number(s, decimal) {
        return s.to_string();
    }
    let head = s.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '\u{feff}' | '\u{200b}' | '\u{2060}')
    });
    let starter = s.starts_with(['\t', '\r', '\n'])
        || head.starts_with([
            '=', '+', '-', '@', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
        ]);
    if starter {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// `-12`, `-12.50`, `3.5` (or `-12,50` where the decimal sign is a comma):
/// what a spreadsheet reads as a number and nothing else.
fn is_plain_number(s: &str, decimal: char) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once(decimal).unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
fn csv_line(w: &mut impl Write, cells: &[&str]) -> std::io::Result<()> {
    csv_line_with(w, cells, b',', '.')
}

fn csv_line_with(
    w: &mut impl Write,
    cells: &[&str],
    sep: u8,
    decimal: char,
) -> std::io::Result<()> {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            w.write_all(&[sep])?;
        }
        let quoted = format!("\"{}\"", neutralise_with(c, decimal).replace('"', "\"\""));
        w.write_all(quoted.as_bytes())?;
    }
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
        assert_eq!(neutralise("Anna-Lena"), "Anna-Lena");
        let mut out = Vec::new();
        csv_line(&mut out, &["a\"b", "@SUM(A1)"]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\"\"b\",\"'@SUM(A1)\"\r\n"
        );
    }

    #[test]
    fn formula_starters_after_spaces_and_fullwidth_signs_are_made_inert() {
        for hostile in [
            " =1+1",
            "\u{a0}=HYPERLINK(\"http://x\")",
            "\u{3000}@SUM(A1)",
            "\u{2007}+1",
            "\u{feff}=1",
            "\u{ff1d}1+1",
            "\u{ff0b}1",
            "\u{ff0d}1",
            "\u{ff20}SUM(A1)",
            " \u{ff1d}1",
            "-1+1",
            "-A1",
            "-",
            "\ttext",
        ] {
            assert_eq!(neutralise(hostile), format!("'{hostile}"), "{hostile:?}");
        }
    }

    #[test]
    fn negative_numbers_stay_numbers() {
        for n in ["-12.50", "-12", "-0.5", "12.50", "7"] {
            assert_eq!(neutralise(n), n);
        }
        for not_plain in ["-12.", "-.5", "-1e5", "-12,50"] {
            assert_eq!(neutralise(not_plain), format!("'{not_plain}"));
        }
    }

    /// A customer with `orders` orders and nothing else.
    struct Orders(usize);

    impl Source for Orders {
        fn profile(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
            Ok(
                serde_json::json!({"name": "Åsa Öberg", "email": "asa@example.se"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            )
        }
        fn page(&self, category: &str, offset: i64, limit: i64) -> anyhow::Result<Vec<Value>> {
            if category != "orders" {
                return Ok(Vec::new());
            }
            let end = (offset + limit).min(self.0 as i64);
            Ok((offset..end)
                .map(|i| {
                    serde_json::json!({"id": format!("O-{i:05}"), "placed_at": "2024-05-01T09:00:00Z",
                        "status": "delivered", "total_cents": 1000 + i, "currency": "SEK"})
                })
                .collect())
        }
    }

    fn tables(doc: &[report::Block]) -> Vec<&report::Table> {
        doc.iter()
            .filter_map(|b| match b {
                report::Block::Table(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_pdf_lists_at_most_200_rows_per_category_and_says_where_the_rest_are() {
        let company =
            crate::config::parse_company(crate::config::DEMO_COMPANY_TOML, "demo").unwrap();
        let meta = Meta {
            locale: Locale::Sv,
            company: &company,
            reference: "EXP-TEST",
            generated_at: Utc::now(),
            others: &[],
        };
        let src = Orders(250);
        let profile = src.profile().unwrap();
        let mut html = Vec::new();
        let doc = report::write_html(&mut html, &src, &src, &meta, &profile).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains(">O-00249</td>"), "the HTML has every row");

        let orders = tables(&doc)
            .into_iter()
            .find(|t| t.header.first().map(String::as_str) == Some("Ordernummer"))
            .unwrap();
        assert_eq!(orders.rows.len(), report::PDF_ROWS);
        let note = report::more_rows(Locale::Sv, "orders", 250);
        assert_eq!(
            note,
            "Den här översikten visar de första 200 av dina 250 beställningar. \
             Alla finns i orders.csv och data.json i det här arkivet."
        );
        let notes: Vec<&report::Block> = doc
            .iter()
            .filter(|b| matches!(b, report::Block::Paragraph(p) if p == &vec![report::Span::Text(note.clone())]))
            .collect();
        assert_eq!(notes.len(), 1, "one note, under the orders only");
        assert_eq!(
            report::more_rows(Locale::En, "orders", 100_000),
            "This overview lists the first 200 of your 100,000 orders. \
             All of them are in orders.csv and data.json in this archive."
        );

        let pdf = pdf::render(&doc, &meta).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains("Åsa Öberg"), "{text}");
        assert!(text.contains("O-00199"));
        assert!(!text.contains("O-00200"), "row 201 is not in the PDF");
        assert!(text.contains("orders.csv och data.json"), "{text}");
        assert!(text.contains("Sida 1 av"), "page numbers");

        // Exactly at the cap: everything is listed, no note.
        let src = Orders(report::PDF_ROWS);
        let doc = report::write_html(&mut Vec::new(), &src, &src, &meta, &profile).unwrap();
        assert!(!doc.iter().any(|b| matches!(b, report::Block::Paragraph(p)
            if matches!(p.first(), Some(report::Span::Text(s)) if s.contains("orders.csv")))));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
    }

    /// The CSV and report passes read the rows data.json kept, not the
    /// source: every row must come back exactly, across pages.
    #[test]
    fn every_row_reaches_the_csv_and_the_report_once() {
        let company =
            crate::config::parse_company(crate::config::DEMO_COMPANY_TOML, "demo").unwrap();
        let meta = Meta {
            locale: Locale::Nl,
            company: &company,
            reference: "EXP-TEST",
            generated_at: Utc::now(),
            others: &[],
        };
        let n = PAGE as usize + 1;
        let zip = build(std::io::Cursor::new(Vec::new()), &Orders(n), &meta)
            .unwrap()
            .into_inner();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let mut read = |name: &str| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut archive.by_name(name).unwrap(), &mut s).unwrap();
            s
        };
        let csv = read("orders.csv");
        assert_eq!(csv.lines().count(), n + 1, "header and every order");
        assert!(
            csv.contains("\"O-10000\";\"2024-05-01T09:00:00Z\";\"delivered\";\"110,00\";\"SEK\""),
            "Dutch spreadsheets split on ; and read a decimal comma"
        );
        let html = read("report.html");
        assert_eq!(html.matches("\">O-").count(), n);
        assert!(read("data.json").contains("\"O-10000\""));
    }
}
