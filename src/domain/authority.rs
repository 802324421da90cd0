//! The supervisory authority a customer may complain to (Art. 77). The
//! company's lead authority is picked by the company's country; a customer
//! who lives in another member state may also complain there (their
//! habitual residence), which the portal can only infer from the language
//! they use. Names are translated in `locales/` (`authority.*`).
//!
//! Pages, the export report and mails all ask [`complaint`], so they name
//! the same authorities.

use super::{deadline::Country, Locale};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority {
    pub country: Country,
    /// Locale key of the authority's name.
    pub name_key: &'static str,
    /// Locale key of the country's name ("in the Netherlands").
    pub country_key: &'static str,
    pub complaint_url: &'static str,
}

pub fn for_country(country: Country) -> Authority {
    match country {
        Country::NL => Authority {
            country,
            name_key: "authority.nl",
            country_key: "authority.in_country.nl",
            complaint_url:
                "https://autoriteitpersoonsgegevens.nl/een-tip-of-klacht-indienen-bij-de-ap",
        },
        Country::SE => Authority {
            country,
            name_key: "authority.se",
            country_key: "authority.in_country.se",
            complaint_url: "https://www.imy.se/privatperson/utfora-arenden/lamna-ett-klagomal/",
        },
    }
}

/// Who a customer may complain to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complaint {
    /// The company's lead authority: always named.
    pub lead: Authority,
    /// The authority of the member state the customer's language points
    /// to, when that is another one than the company's.
    pub residence: Option<Authority>,
}

/// The authorities for a customer of a company in `company` who uses
/// `customer`'s language.
pub fn complaint(company: Country, customer: Locale) -> Complaint {
    let home = match customer {
        Locale::Nl => Some(Country::NL),
        Locale::Sv => Some(Country::SE),
        Locale::En => None,
    };
    Complaint {
        lead: for_country(company),
        residence: home.filter(|c| *c != company).map(for_country),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_authority_and_the_customers_own() {
        let c = complaint(Country::NL, Locale::Sv);
        assert_eq!(c.lead.name_key, "authority.nl");
        assert_eq!(c.residence.map(|a| a.name_key), Some("authority.se"));
        let c = complaint(Country::SE, Locale::Nl);
        assert_eq!(c.lead.name_key, "authority.se");
        assert_eq!(c.residence.map(|a| a.name_key), Some("authority.nl"));
        assert_eq!(complaint(Country::NL, Locale::Nl).residence, None);
        assert_eq!(complaint(Country::SE, Locale::En).residence, None);
    }
}
