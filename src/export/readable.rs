//! Stored keys and raw values made readable for the customer (Art. 12(1):
//! "concise, intelligible"): labels in their language, amounts in their
//! currency and locale, dates in local long form in the company's time
//! zone, statuses and consents in words. Only the reports and the CSV
//! headers use this; `data.json` keeps the stable English keys and raw
//! values.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::report::{Rich, Span};
use crate::{
    config::Company,
    domain::{deadline::Country, Locale},
    i18n::{has_key, long_date, t, t_args},
};

/// How values are written for one export.
#[derive(Clone)]
pub struct Fmt<'a> {
    pub locale: Locale,
    pub company: &'a Company,
    /// The currency of the customer's orders when they all share one: a
    /// payment or balance without its own currency is in it (a Swedish
    /// customer's Swish payment is in kronor, whatever the company's
    /// country).
    pub customer_currency: Option<String>,
}

impl<'a> Fmt<'a> {
    pub fn new(locale: Locale, company: &'a Company) -> Self {
        Fmt {
            locale,
            company,
            customer_currency: None,
        }
    }

    /// [`Fmt::new`], with the currency the customer's orders share.
    pub fn for_customer(
        locale: Locale,
        company: &'a Company,
        src: &dyn super::Source,
    ) -> anyhow::Result<Self> {
        let mut seen: Option<String> = None;
        let mut mixed = false;
        src.for_each_row("orders", &mut |row| {
            if let Some(c) = row.get("currency").and_then(Value::as_str) {
                let c = c.to_ascii_uppercase();
                match &seen {
                    None => seen = Some(c),
                    Some(s) if *s != c => mixed = true,
                    _ => {}
                }
            }
            Ok(())
        })?;
        Ok(Fmt {
            locale,
            company,
            customer_currency: if mixed { None } else { seen },
        })
    }

    /// The label of a field the portal knows; an unknown field keeps its
    /// own name, so nothing is hidden behind a guess.
    pub fn label(&self, field: &str) -> String {
        let key = format!("export.fields.{field}");
        if has_key(self.locale, &key) {
            t(self.locale, &key)
        } else {
            field.to_string()
        }
    }

    /// The label of a category's column: some names mean something else
    /// per category (an order's `id` is its order number).
    pub fn column(&self, category: &str, field: &str) -> String {
        let key = format!("export.columns.{category}.{field}");
        if has_key(self.locale, &key) {
            t(self.locale, &key)
        } else {
            self.label(field)
        }
    }

    /// A field's value in words; `row` gives the currency of `*_cents`.
    pub fn value(&self, field: &str, v: &Value, row: Option<&Value>) -> Rich {
        let l = self.locale;
        match v {
            Value::Null => Vec::new(),
            Value::Bool(b) => text(yes_no(l, *b)),
            Value::Number(n) if field.ends_with("_cents") => match n.as_i64() {
                Some(c) => text(money(l, c, &self.currency(row))),
                None => text(n.to_string()),
            },
            Value::Number(n) => text(n.to_string()),
            Value::String(s) => text(self.string(field, s)),
            Value::Object(o) if field == "consents" => self.consents(o),
            Value::Object(_) | Value::Array(_) => nested(self, v, 0),
        }
    }

    fn string(&self, field: &str, s: &str) -> String {
        let l = self.locale;
        if let Some(kind) = match field {
            "status" => Some("status"),
            "method" => Some("method"),
            "channel" => Some("channel"),
            _ => None,
        } {
            let key = format!("export.values.{kind}.{s}");
            if has_key(l, &key) {
                return t(l, &key);
            }
            return s.to_string();
        }
        if field == "locale" {
            if let Some(loc) = Locale::parse(s) {
                return t(loc, "lang.name");
            }
        }
        self.when(s).unwrap_or_else(|| s.to_string())
    }

    /// An RFC 3339 instant as "4 september 2026 om 14:25" in the
    /// company's time zone; a plain date as "4 september 2026".
    pub fn when(&self, s: &str) -> Option<String> {
        let l = self.locale;
        if let Ok(at) = DateTime::parse_from_rfc3339(s) {
            let local = at
                .with_timezone(&Utc)
                .with_timezone(&self.company.country.timezone());
            return Some(t_args(
                l,
                "export.values.datetime",
                &[
                    ("date", &long_date(l, local.date_naive())),
                    ("time", &local.format("%H:%M").to_string()),
                ],
            ));
        }
        if s.len() == 10 {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Some(long_date(l, d));
            }
        }
        None
    }

    /// The row's `currency`; else the one the customer's orders share;
    /// else the company's.
    pub fn currency(&self, row: Option<&Value>) -> String {
        row.and_then(|r| r.get("currency"))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_ascii_uppercase)
            .or_else(|| self.customer_currency.clone())
            .unwrap_or_else(|| home_currency(self.company.country).to_string())
    }

    /// Consents as purposes with yes or no, by the names the customer
    /// knows from the objection page.
    fn consents(&self, o: &serde_json::Map<String, Value>) -> Rich {
        let mut out = Vec::new();
        for (i, (k, v)) in o.iter().enumerate() {
            if i > 0 {
                out.push(Span::Break);
            }
            let answer = match v {
                Value::Bool(b) => yes_no(self.locale, *b),
                other => super::cell(other),
            };
            out.push(Span::Text(format!("{}: {answer}", self.purpose(k))));
        }
        out
    }

    /// The name of a consent key: the objection purpose that switches it
    /// off, else a translated name, else the key.
    pub fn purpose(&self, key: &str) -> String {
        if let Some(p) = self
            .company
            .objection_purposes
            .iter()
            .find(|p| p.consent_key == key || p.id == key)
        {
            return p.title.get(self.locale).to_string();
        }
        let k = format!("export.values.consent.{key}");
        if has_key(self.locale, &k) {
            t(self.locale, &k)
        } else {
            key.to_string()
        }
    }
}

fn text(s: impl Into<String>) -> Rich {
    vec![Span::Text(s.into())]
}

fn yes_no(l: Locale, b: bool) -> String {
    t(
        l,
        if b {
            "export.values.yes"
        } else {
            "export.values.no"
        },
    )
}

pub fn home_currency(country: Country) -> &'static str {
    match country {
        Country::NL => "EUR",
        Country::SE => "SEK",
    }
}

/// Digits grouped by thousands with `sep`.
fn group(digits: &str, sep: char) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(d);
    }
    out
}

/// An amount in cents as the customer's locale writes it:
/// "€ 1.234,50" (nl), "1 234,50 kr" (sv), "€1,234.50" (en).
pub fn money(l: Locale, cents: i64, currency: &str) -> String {
    let neg = cents < 0;
    let abs = cents.unsigned_abs();
    let (int, frac) = (abs / 100, abs % 100);
    let (group_sep, dec) = match l {
        Locale::En => (',', '.'),
        Locale::Nl => ('.', ','),
        Locale::Sv => ('\u{a0}', ','),
    };
    let number = format!("{}{dec}{frac:02}", group(&int.to_string(), group_sep));
    let sign = if neg { "-" } else { "" };
    let nb = '\u{a0}';
    match (l, currency) {
        (Locale::Sv, "SEK") => format!("{sign}{number}{nb}kr"),
        (Locale::Sv, "EUR") => format!("{sign}{number}{nb}€"),
        (Locale::Sv, c) => format!("{sign}{number}{nb}{c}"),
        (Locale::Nl, "EUR") => format!("€{nb}{sign}{number}"),
        (Locale::Nl, c) => format!("{c}{nb}{sign}{number}"),
        (Locale::En, "EUR") => format!("{sign}€{number}"),
        (Locale::En, "GBP") => format!("{sign}£{number}"),
        (Locale::En, "USD") => format!("{sign}${number}"),
        (Locale::En, c) => format!("{sign}{c}{nb}{number}"),
    }
}

/// An amount in cents as a number a spreadsheet in the customer's region
/// reads: "1234,50" (nl, sv), "1234.50" (en).
pub fn decimal(l: Locale, cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let dec = if matches!(l, Locale::En) { '.' } else { ',' };
    format!("{sign}{}{dec}{:02}", abs / 100, abs % 100)
}

/// Objects and lists as indented lines of "name: value", not JSON.
fn nested(f: &Fmt<'_>, v: &Value, depth: usize) -> Rich {
    let mut lines: Vec<String> = Vec::new();
    lines_of(f, v, depth, &mut lines);
    let mut out = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if i > 0 {
            out.push(Span::Break);
        }
        out.push(Span::Text(line));
    }
    out
}

fn lines_of(f: &Fmt<'_>, v: &Value, depth: usize, out: &mut Vec<String>) {
    // No-break spaces: the indent survives HTML whitespace folding and
    // the PDF's line wrapping.
    let indent = "\u{a0}\u{a0}\u{a0}\u{a0}".repeat(depth);
    let scalar = |k: &str, v: &Value| -> Option<String> {
        match v {
            Value::Object(_) | Value::Array(_) => None,
            _ => Some(
                f.value(k, v, None)
                    .into_iter()
                    .filter_map(|s| match s {
                        Span::Text(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    };
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match scalar(k, x) {
                    Some(s) => out.push(format!("{indent}{}: {s}", f.label(k))),
                    None => {
                        out.push(format!("{indent}{}:", f.label(k)));
                        lines_of(f, x, depth + 1, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            for x in items {
                match scalar("", x) {
                    Some(s) => out.push(format!("{indent}– {s}")),
                    None => {
                        out.push(format!("{indent}–"));
                        lines_of(f, x, depth + 1, out);
                    }
                }
            }
        }
        other => out.push(format!("{indent}{}", super::cell(other))),
    }
}

/// The plain text of a rich value, for CSV cells and tests.
pub fn plain(rich: &Rich) -> String {
    let mut s = String::new();
    for span in rich {
        match span {
            Span::Text(t) | Span::Strong(t) | Span::Link(t) => s.push_str(t),
            Span::Break => s.push('\n'),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn company(country: &str) -> Company {
        let toml = crate::config::DEMO_COMPANY_TOML.replacen(
            "country = \"NL\"",
            &format!("country = \"{country}\""),
            1,
        );
        crate::config::parse_company(&toml, "demo").unwrap()
    }

    #[test]
    fn amounts_are_written_the_local_way() {
        assert_eq!(money(Locale::Sv, 59900, "SEK"), "599,00\u{a0}kr");
        assert_eq!(money(Locale::Nl, 59900, "EUR"), "€\u{a0}599,00");
        assert_eq!(money(Locale::En, 59900, "EUR"), "€599.00");
        assert_eq!(money(Locale::Nl, 123456789, "EUR"), "€\u{a0}1.234.567,89");
        assert_eq!(money(Locale::Sv, 123456, "SEK"), "1\u{a0}234,56\u{a0}kr");
        assert_eq!(money(Locale::En, -1250, "EUR"), "-€12.50");
        assert_eq!(money(Locale::En, 5, "SEK"), "SEK\u{a0}0.05");
        assert_eq!(decimal(Locale::Nl, -1250), "-12,50");
        assert_eq!(decimal(Locale::En, 59900), "599.00");
    }

    #[test]
    fn fields_get_labels_and_values_words() {
        let c = company("SE");
        let f = Fmt::new(Locale::Sv, &c);
        assert_ne!(f.label("balance_cents"), "balance_cents");
        assert_eq!(
            f.label("loyalty_tier"),
            "loyalty_tier",
            "unknown keeps its name"
        );
        assert_eq!(
            plain(&f.value("balance_cents", &json!(59900), None)),
            "599,00\u{a0}kr",
            "the company's currency when the row has none"
        );
        let order = json!({"total_cents": 4599, "currency": "EUR"});
        assert_eq!(
            plain(&f.value("total_cents", &json!(4599), Some(&order))),
            "45,99\u{a0}€"
        );
        // 12:25 UTC is 14:25 in Stockholm in September.
        let when = plain(&f.value("placed_at", &json!("2026-09-04T12:25:09Z"), None));
        assert!(
            when.contains("4 september 2026") && when.contains("14:25"),
            "{when}"
        );
        assert_ne!(
            plain(&f.value("status", &json!("delivered"), None)),
            "delivered"
        );
        let nested = plain(&f.value("extra", &json!({"a": {"b": 1}, "c": [true]}), None));
        assert!(!nested.contains('{'), "{nested}");
        assert!(nested.contains("\u{a0}\u{a0}\u{a0}\u{a0}b: 1"), "{nested}");
    }
}
