//! Translations (rust-i18n, `locales/*.yml`) and the embedded templates.
//!
//! rust-i18n's process-wide locale is never set: every lookup names its
//! language, so concurrent requests in different languages cannot mix.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use include_dir::{include_dir, Dir};
use tera::{Tera, Value};

use crate::domain::Locale;

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

pub fn t(locale: Locale, key: &str) -> String {
    rust_i18n::t!(key, locale = locale.as_str()).into_owned()
}

/// `%{name}` placeholders filled from `args`.
pub fn t_args(locale: Locale, key: &str, args: &[(&str, &str)]) -> String {
    let mut s = t(locale, key);
    for (k, v) in args {
        s = fill(&s, k, v);
    }
    s
}

/// A text that depends on a number: the key holds `one` and `other` (nl,
/// sv and en all have just these two plural forms), `%{count}` is the number.
pub fn t_count(locale: Locale, key: &str, count: i64, args: &[(&str, &str)]) -> String {
    let form = if count == 1 { "one" } else { "other" };
    let mut s = t_args(locale, &format!("{key}.{form}"), args);
    s = fill(&s, "count", &count.to_string());
    s
}

/// Puts `value` in for `%{name}`; a value that ends a sentence itself
/// ("Kaasboer B.V.") does not get a second full stop.
fn fill(text: &str, name: &str, value: &str) -> String {
    let slot = format!("%{{{name}}}");
    if value.ends_with('.') {
        text.replace(&format!("{slot}."), value)
            .replace(&slot, value)
    } else {
        text.replace(&slot, value)
    }
}

/// "5 april 2026" / "5 april 2026" / "5 April 2026".
pub fn long_date(locale: Locale, d: NaiveDate) -> String {
    let month = t(locale, &format!("months.m{}", d.month()));
    format!("{} {} {}", d.day(), month, d.year())
}

/// "14:35" at `ts` (Unix seconds) in `tz`.
pub fn clock(ts: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%H:%M")
        .to_string()
}

/// "5 april 2026 om 14:35" / "5 april 2026 kl. 14:35" / "5 April 2026, 14:35"
/// at `ts` (Unix seconds) in `tz`.
pub fn long_datetime(locale: Locale, ts: i64, tz: chrono_tz::Tz) -> String {
    let local = chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .with_timezone(&tz);
    t_args(
        locale,
        "export.values.datetime",
        &[
            ("date", &long_date(locale, local.date_naive())),
            ("time", &local.format("%H:%M").to_string()),
        ],
    )
}

/// The countries a company file may name in an address line or a
/// recipient's location, by ISO code; `countries.{code}` holds each name.
const COUNTRIES: [&str; 12] = [
    "NL", "SE", "BE", "DE", "DK", "FI", "NO", "FR", "IE", "LU", "GB", "US",
];

/// A line of company data in the reader's language when it is a country
/// the portal knows, in any portal language or as its code ("Nederland",
/// "Sweden", "USA", "SE"); any other line as written.
pub fn place(locale: Locale, line: &str) -> String {
    let wanted = line.trim().trim_start_matches("the ").to_lowercase();
    let aliases = |code: &str| -> &'static [&'static str] {
        match code {
            "US" => &[
                "usa",
                "u.s.a.",
                "u.s.",
                "us",
                "vs",
                "united states of america",
            ],
            "GB" => &["uk", "u.k.", "united kingdom"],
            _ => &[],
        }
    };
    for code in COUNTRIES {
        let mut names: Vec<String> = Locale::ALL
            .iter()
            .map(|l| t(*l, &format!("countries.{code}")).to_lowercase())
            .collect();
        names.push(code.to_lowercase());
        if names.contains(&wanted) || aliases(code).contains(&wanted.as_str()) {
            return t(locale, &format!("countries.{code}"));
        }
    }
    line.to_string()
}

pub fn has_key(locale: Locale, key: &str) -> bool {
    let v = t(locale, key);
    !v.is_empty() && v != key && !v.ends_with(&format!(".{key}"))
}

fn tera_t(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let key = args
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| tera::Error::msg("t() needs key=\"…\""))?;
    let lang = args
        .get("lang")
        .and_then(Value::as_str)
        .and_then(Locale::parse)
        .ok_or_else(|| tera::Error::msg(format!("t(key=\"{key}\") needs lang=nl|sv|en")))?;
    // `count=n` picks the plural form of a key that has `one` and `other`.
    let mut s = match args.get("count").and_then(Value::as_i64) {
        Some(n) => t(
            lang,
            &format!("{key}.{}", if n == 1 { "one" } else { "other" }),
        ),
        None => t(lang, key),
    };
    for (k, v) in args {
        if k == "key" || k == "lang" {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        s = fill(&s, k, &v);
    }
    Ok(Value::String(s))
}

pub fn templates() -> anyhow::Result<Tera> {
    let mut tera = Tera::default();
    let mut files = Vec::new();
    collect(&TEMPLATES, &mut files);
    tera.add_raw_templates(files)?;
    tera.register_function("t", tera_t);
    Ok(tera)
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<(String, &'static str)>) {
    for f in dir.files() {
        if let Some(text) = f.contents_utf8() {
            out.push((f.path().to_string_lossy().into_owned(), text));
        }
    }
    for d in dir.dirs() {
        collect(d, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_its_own_text() {
        let en = t(Locale::En, "landing.title");
        assert_ne!(en, t(Locale::Nl, "landing.title"));
        assert_ne!(en, t(Locale::Sv, "landing.title"));
        assert!(has_key(Locale::Sv, "landing.title"));
    }

    #[test]
    fn dates_read_naturally() {
        let d = NaiveDate::from_ymd_opt(2026, 4, 5).unwrap();
        assert_eq!(long_date(Locale::Nl, d), "5 april 2026");
        assert_eq!(long_date(Locale::En, d), "5 April 2026");
    }

    #[test]
    fn times_read_naturally() {
        // 2026-04-05 12:35 UTC is 14:35 in Amsterdam (summer time).
        let ts = 1_775_392_500;
        let tz = chrono_tz::Europe::Amsterdam;
        assert_eq!(clock(ts, tz), "14:35");
        assert_eq!(long_datetime(Locale::Nl, ts, tz), "5 april 2026 om 14:35");
        assert_eq!(long_datetime(Locale::Sv, ts, tz), "5 april 2026 kl. 14:35");
    }

    #[test]
    fn countries_are_named_in_the_readers_language() {
        assert_eq!(place(Locale::Sv, "Nederland"), "Nederländerna");
        assert_eq!(place(Locale::Nl, "USA"), "Verenigde Staten");
        assert_eq!(place(Locale::En, "Sverige"), "Sweden");
        assert_eq!(place(Locale::En, "the Netherlands"), "Netherlands");
        assert_eq!(place(Locale::Nl, "2801 AA Gouda"), "2801 AA Gouda");
    }

    #[test]
    fn counts_pick_their_plural_form() {
        assert!(t_count(Locale::En, "errors.invalid_code", 1, &[]).contains("1 more try."));
        assert!(t_count(Locale::En, "errors.invalid_code", 3, &[]).contains("3 more tries."));
        assert!(t_count(Locale::En, "errors.rate_limited", 1, &[]).contains("1 minute."));
        assert!(t_count(Locale::Sv, "errors.rate_limited", 2, &[]).contains("2 minuter"));
        assert!(t_count(Locale::Nl, "staff.queue.days_left", 1, &[]).contains("1 dag"));
    }

    #[test]
    fn a_name_ending_in_a_full_stop_gets_no_second_one() {
        assert_eq!(
            fill("by %{company}.", "company", "Kaasboer B.V."),
            "by Kaasboer B.V."
        );
        assert_eq!(
            fill("by %{company}, now", "company", "Kaasboer B.V."),
            "by Kaasboer B.V., now"
        );
        assert_eq!(
            fill("by %{company}.", "company", "Kaasboer"),
            "by Kaasboer."
        );
    }

    #[test]
    fn templates_compile() {
        templates().unwrap();
    }
}
