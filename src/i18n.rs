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
        s = s.replace(&format!("%{{{k}}}"), v);
    }
    s
}

/// "5 april 2026" / "5 april 2026" / "5 April 2026".
pub fn long_date(locale: Locale, d: NaiveDate) -> String {
    let month = t(locale, &format!("months.m{}", d.month()));
    format!("{} {} {}", d.day(), month, d.year())
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
    let mut s = t(lang, key);
    for (k, v) in args {
        if k == "key" || k == "lang" {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        s = s.replace(&format!("%{{{k}}}"), &v);
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
    fn templates_compile() {
        templates().unwrap();
    }
}
