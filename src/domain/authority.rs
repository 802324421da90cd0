//! The supervisory authority a customer may complain to (Art. 77), picked by
//! the company's country. Names are translated in `locales/` (`authority.*`).

use super::deadline::Country;

pub struct Authority {
    /// Locale key of the authority's name.
    pub name_key: &'static str,
    pub complaint_url: &'static str,
}

pub fn for_country(country: Country) -> Authority {
    match country {
        Country::NL => Authority {
            name_key: "authority.nl",
            complaint_url:
                "https://autoriteitpersoonsgegevens.nl/een-tip-of-klacht-indienen-bij-de-ap",
        },
        Country::SE => Authority {
            name_key: "authority.se",
            complaint_url: "https://www.imy.se/privatperson/utfora-arenden/lamna-ett-klagomal/",
        },
    }
}
