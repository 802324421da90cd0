//! The privacy notice (Art. 13) and the guidance pages, in one language,
//! built from the company configuration. The portal page renders it; the
//! export's Art. 15 cover can use the same view.

use serde::Serialize;

use crate::{
    config::Company,
    domain::{authority, Locale},
    i18n::t,
};

/// Where a customer may complain (Art. 77), in their language: the
/// company's lead authority and, for a customer of another member state,
/// their own. Every page, mail and report names authorities through this.
#[derive(Debug, Clone, Serialize)]
pub struct ComplaintView {
    pub authority: String,
    pub complaint_url: &'static str,
    /// "If you live in Sweden, you can also complain to IMY:".
    pub also: Option<String>,
    pub also_url: Option<&'static str>,
}

pub fn complaint_view(c: &Company, locale: Locale) -> ComplaintView {
    let a = authority::complaint(c.country, locale);
    let also = a.residence.map(|r| {
        crate::i18n::t_args(
            locale,
            "authority.also",
            &[
                ("country", &t(locale, r.country_key)),
                ("authority", &t(locale, r.name_key)),
            ],
        )
    });
    ComplaintView {
        authority: t(locale, a.lead.name_key),
        complaint_url: a.lead.complaint_url,
        also,
        also_url: a.residence.map(|r| r.complaint_url),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PurposeView {
    pub id: String,
    pub name: String,
    pub description: String,
    /// `consent`, `contract`, … (config `legal_basis`).
    pub basis_key: &'static str,
    /// The basis in words, in the page's language.
    pub basis: String,
    /// "6(1)(a)" … "6(1)(f)".
    pub article: &'static str,
    pub interest: Option<String>,
    /// Names of the data categories used.
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryView {
    pub id: String,
    pub name: String,
    pub retention: String,
    pub enforced: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipientView {
    pub name: String,
    pub role: String,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectionView {
    pub id: String,
    pub title: String,
    pub description: String,
    /// `consent` | `direct_marketing` | `legitimate_interest`
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicLink {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoticeView {
    pub company: String,
    pub address: Vec<String>,
    pub privacy_email: String,
    pub website: Option<String>,
    pub dpo_name: String,
    pub dpo_email: String,
    pub dpo_contact: Option<String>,
    pub purposes: Vec<PurposeView>,
    pub categories: Vec<CategoryView>,
    pub recipients: Vec<RecipientView>,
    pub source: String,
    pub automated_decisions: String,
    pub transfers: Option<String>,
    /// Whether giving the data is required, and the consequences (Art. 13(2)(e)).
    pub provision: Option<String>,
    pub authority: String,
    pub complaint_url: &'static str,
    pub complaint: ComplaintView,
    pub objection_purposes: Vec<ObjectionView>,
    pub guidance: Vec<TopicLink>,
}

pub fn view(c: &Company, locale: Locale) -> NoticeView {
    let n = &c.privacy_notice;
    let category_name = |id: &str| {
        n.categories
            .iter()
            .find(|cat| cat.id == id)
            .map(|cat| cat.name.get(locale).to_string())
            .unwrap_or_default()
    };
    let complaint = complaint_view(c, locale);
    NoticeView {
        company: c.name.clone(),
        address: c
            .address
            .iter()
            .map(|a| crate::i18n::place(locale, a))
            .collect(),
        privacy_email: c.privacy_email.clone(),
        website: c.website.clone(),
        dpo_name: c.dpo.name.clone(),
        dpo_email: c.dpo.email.clone(),
        dpo_contact: c.dpo.contact.clone(),
        purposes: n
            .purposes
            .iter()
            .map(|p| PurposeView {
                id: p.id.clone(),
                name: p.name.get(locale).to_string(),
                description: p.description.get(locale).to_string(),
                basis_key: p.legal_basis.as_str(),
                basis: t(
                    locale,
                    &format!("privacy.basis_names.{}", p.legal_basis.as_str()),
                ),
                article: p.legal_basis.article(),
                interest: p
                    .legitimate_interest
                    .as_ref()
                    .map(|i| i.get(locale).to_string()),
                categories: p.categories.iter().map(|id| category_name(id)).collect(),
            })
            .collect(),
        categories: n
            .categories
            .iter()
            .map(|cat| CategoryView {
                id: cat.id.clone(),
                name: cat.name.get(locale).to_string(),
                retention: cat.retention.get(locale).to_string(),
                // The period the portal enforces, from the same line of the
                // company file: the notice cannot promise another.
                enforced: cat
                    .retain
                    .as_deref()
                    .and_then(crate::config::Period::parse)
                    .map(|p| {
                        crate::i18n::t_args(
                            locale,
                            "retention.enforced",
                            &[("period", &p.text(locale))],
                        )
                    }),
            })
            .collect(),
        recipients: n
            .recipients
            .iter()
            .map(|r| RecipientView {
                name: r.name.clone(),
                role: r.role.get(locale).to_string(),
                location: r.location.as_deref().map(|x| crate::i18n::place(locale, x)),
            })
            .collect(),
        source: n.source.get(locale).to_string(),
        automated_decisions: n.automated_decisions.get(locale).to_string(),
        transfers: n.transfers.as_ref().map(|x| x.get(locale).to_string()),
        provision: n.provision.as_ref().map(|x| x.get(locale).to_string()),
        authority: complaint.authority.clone(),
        complaint_url: complaint.complaint_url,
        complaint,
        objection_purposes: c
            .objection_purposes
            .iter()
            .map(|p| ObjectionView {
                id: p.id.clone(),
                title: p.title.get(locale).to_string(),
                description: p.description.get(locale).to_string(),
                kind: p.kind.as_str(),
            })
            .collect(),
        guidance: guidance_links(c, locale),
    }
}

pub fn guidance_links(c: &Company, locale: Locale) -> Vec<TopicLink> {
    c.guidance
        .iter()
        .map(|g| TopicLink {
            id: g.id.clone(),
            title: g.title.get(locale).to_string(),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct GuidanceView {
    pub id: String,
    pub title: String,
    pub intro: Option<String>,
    pub steps: Vec<String>,
}

/// One guidance page, or None for a topic the company did not configure.
pub fn guidance(c: &Company, locale: Locale, id: &str) -> Option<GuidanceView> {
    let g = c.guidance_topic(id)?;
    Some(GuidanceView {
        id: g.id.clone(),
        title: g.title.get(locale).to_string(),
        intro: g.intro.as_ref().map(|i| i.get(locale).to_string()),
        steps: g.steps.iter().map(|s| s.get(locale).to_string()).collect(),
    })
}
