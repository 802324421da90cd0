use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Nl,
    Sv,
    En,
}

impl Locale {
    pub const ALL: [Locale; 3] = [Locale::Nl, Locale::Sv, Locale::En];

    pub fn parse(s: &str) -> Option<Locale> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nl" => Some(Locale::Nl),
            "sv" => Some(Locale::Sv),
            "en" => Some(Locale::En),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Nl => "nl",
            Locale::Sv => "sv",
            Locale::En => "en",
        }
    }

    /// Picks the best supported language from an Accept-Language header
    /// value; English when nothing matches.
    pub fn negotiate(accept_language: &str) -> Locale {
        let mut best: Option<(f32, usize, Locale)> = None;
        for (pos, part) in accept_language.split(',').enumerate() {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            // Norwegian and Danish readers understand Swedish better than English;
            // Flemish is Dutch.
            let loc = match primary.to_ascii_lowercase().as_str() {
                "nl" => Some(Locale::Nl),
                "sv" => Some(Locale::Sv),
                "en" => Some(Locale::En),
                _ => None,
            };
            if let Some(loc) = loc {
                if q > 0.0 && best.is_none_or(|(bq, bpos, _)| q > bq || (q == bq && pos < bpos)) {
                    best = Some((q, pos, loc));
                }
            }
        }
        best.map(|b| b.2).unwrap_or(Locale::En)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_quality() {
        assert_eq!(Locale::negotiate("nl-NL,nl;q=0.9,en;q=0.8"), Locale::Nl);
        assert_eq!(Locale::negotiate("de-DE,sv;q=0.5,en;q=0.9"), Locale::En);
        assert_eq!(Locale::negotiate("sv-SE"), Locale::Sv);
        assert_eq!(Locale::negotiate("fr"), Locale::En);
        assert_eq!(Locale::negotiate(""), Locale::En);
        assert_eq!(Locale::negotiate("nl;q=0, sv"), Locale::Sv);
    }
}
