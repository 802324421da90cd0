//! Settings from the environment (CONTRACT.md) and the company TOML file,
//! validated once at start. Every error is one line naming the setting.

use std::{path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::deadline::Country;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Demo,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub database_url: String,
    pub bind: String,
    pub base_url: String,
    /// None only in demo mode, where mail goes to the dev mailbox.
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub secret_key: SecretString,
    pub company: Company,
    /// Mutating requests per minute per client address; 0 switches it off
    /// (a benchmark's single load generator).
    pub client_rate_limit_per_minute: u32,
    pub mail_retry_base: Duration,
    /// Caps the mail worker's pause and a code mail's backoff: well under
    /// a code's 15-minute life.
    pub mail_retry_max: Duration,
    pub worker_interval: Duration,
    /// First wait after a company system failed a step; doubles up to
    /// `connector_retry_max`.
    pub connector_retry_base: Duration,
    pub connector_retry_max: Duration,
    /// Whether `serve` runs the inactivity and retention schedules itself
    /// (tests drive them with their own clock instead).
    pub run_schedules: bool,
    /// Send timeout, leases and the retry schedule of other mail.
    pub mail_timing: crate::mail::Timing,
    /// Archives built on disk before migration 0012 (read and deleted
    /// here until they expire); new archives live in the database.
    pub export_dir: PathBuf,
    /// A second listener that serves only `/metrics` (an address scrapers
    /// reach and customers do not).
    pub metrics_bind: Option<String>,
    /// `/metrics` on the public listener needs `Authorization: Bearer` with
    /// this token; without it (and without `metrics_bind`) it answers 404.
    pub metrics_token: Option<SecretString>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` name the
    /// client (`PORTAL_TRUSTED_PROXIES`); from anyone else those headers
    /// are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Settings {
    pub fn secure_cookies(&self) -> bool {
        self.base_url.starts_with("https://")
    }

    /// Hex-decoded master key.
    pub fn master_key(&self) -> Vec<u8> {
        hex::decode(self.secret_key.expose_secret()).expect("validated at start")
    }
}

/// The company running the portal. Issue-specific sections (privacy notice,
/// objection purposes, guidance) extend this schema; see docs/configuration.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyFile {
    pub company: Company,
    /// The company's systems (CONTRACT.md, "Connectors").
    #[serde(default)]
    pub connectors: Vec<crate::connector::config::SystemConfig>,
    /// Events out (CONTRACT.md, "Events out").
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[company.inactivity]` (CONTRACT.md, "Scheduled anonymisation").
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Inactivity {
    /// No order, login or other activity for this long: anonymised.
    pub anonymise_after_months: u32,
    /// The warning mail goes out this many days before.
    #[serde(default = "default_warn_days")]
    pub warn_days_before: u32,
}

fn default_warn_days() -> u32 {
    30
}

/// A receiver of the portal's events (a ticket system, a chat channel).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The environment variable holding the signing secret.
    pub secret_env: String,
    /// Event types to send; all when absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// The event types of CONTRACT.md.
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "request.received",
    "request.verified",
    "request.escalated",
    "request.completed",
    "request.rejected",
    "request.overdue",
    "erasure.step_failed",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Company {
    pub name: String,
    /// Picks the holiday calendar and time zone for legal deadlines.
    pub country: Country,
    pub privacy_email: String,
    /// Sender of every email, e.g. `Shop Privacy <privacy@shop.example>`.
    pub mail_from: String,
    #[serde(default)]
    pub website: Option<String>,
    /// Closed requests and their identity data are purged after this many months.
    #[serde(default = "default_retention")]
    pub retention_months: u32,
    /// Systems outside the portal whose data staff must add to an export or
    /// erase by hand (Art. 15, Art. 19): bookkeeping, mailbox, call recordings…
    #[serde(default)]
    pub other_systems: Vec<OtherSystem>,
    /// Postal address of the company (the controller), shown on the privacy
    /// notice. One line per entry, not translated.
    pub address: Vec<String>,
    /// Data protection officer (Art. 37–39); shown on the privacy notice.
    pub dpo: Dpo,
    /// The Art. 13/14 information: the privacy notice page and the export's
    /// cover both read it.
    pub privacy_notice: PrivacyNotice,
    /// What a customer can object to or withdraw consent for (Art. 7(3), 21).
    #[serde(default)]
    pub objection_purposes: Vec<ObjectionPurpose>,
    /// Step-by-step pages (`/{lang}/help/{id}`) for changes the customer
    /// makes in the company's own app.
    #[serde(default)]
    pub guidance: Vec<GuidanceTopic>,
    /// Texts staff may send in the customer's language.
    #[serde(default)]
    pub reply_templates: Vec<ReplyTemplate>,
    /// Scheduled anonymisation of inactive accounts; off when absent.
    #[serde(default)]
    pub inactivity: Option<Inactivity>,
    /// `[[connectors]]`, a top-level table of the file, kept here so one
    /// value carries the whole company file.
    #[serde(skip)]
    pub connectors: Vec<crate::connector::config::SystemConfig>,
    /// `[[webhooks]]`, a top-level table of the file.
    #[serde(skip)]
    pub webhooks: Vec<WebhookConfig>,
}

impl Company {
    pub fn objection_purpose(&self, id: &str) -> Option<&ObjectionPurpose> {
        self.objection_purposes.iter().find(|p| p.id == id)
    }

    pub fn guidance_topic(&self, id: &str) -> Option<&GuidanceTopic> {
        self.guidance.iter().find(|g| g.id == id)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dpo {
    pub name: String,
    pub email: String,
    /// Optional phone number or postal address, one line.
    #[serde(default)]
    pub contact: Option<String>,
}

/// Art. 13(1)–(2) and Art. 15(1): what is processed, why, on which legal
/// basis, who receives it, how long it is kept and where it comes from.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyNotice {
    /// Data categories, each with its retention period (Art. 13(2)(a)).
    pub categories: Vec<DataCategory>,
    pub purposes: Vec<Purpose>,
    /// Recipients named individually (EDPB: names, not only categories).
    pub recipients: Vec<Recipient>,
    /// Where the data comes from (Art. 14(2)(f), 15(1)(g)).
    pub source: Texts,
    /// Whether automated decisions or profiling with legal or similarly
    /// significant effects are made, and the logic involved (Art. 22).
    pub automated_decisions: Texts,
    /// Transfers outside the EEA and their safeguards (Art. 13(1)(f)); optional.
    #[serde(default)]
    pub transfers: Option<Texts>,
    /// Whether giving the data is required by law or by contract, and what
    /// happens if the customer does not (Art. 13(2)(e)); optional.
    #[serde(default)]
    pub provision: Option<Texts>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataCategory {
    /// Stable identifier, referenced from `purposes[].categories`.
    pub id: String,
    pub name: Texts,
    /// How long this category is kept, and why (Art. 13(2)(a)).
    pub retention: Texts,
    /// The period the portal enforces (`6 months`, `7 years`, `90 days`):
    /// rows of `data` older than this are purged daily in every system.
    #[serde(default)]
    pub retain: Option<String>,
    /// The systems' data categories this covers (`ip_log`, `contacts`).
    #[serde(default)]
    pub data: Vec<String>,
}

/// A retention period as written in the company file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Months(u32),
    Years(u32),
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        let (n, unit) = s.trim().split_once(' ')?;
        let n: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        match unit.trim().trim_end_matches('s') {
            "day" => Some(Period::Days(n)),
            "month" => Some(Period::Months(n)),
            "year" => Some(Period::Years(n)),
            _ => None,
        }
    }

    /// The moment before which data is older than the period.
    pub fn cutoff(self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        match self {
            Period::Days(n) => now - chrono::Duration::days(n.into()),
            Period::Months(n) => now
                .checked_sub_months(chrono::Months::new(n))
                .unwrap_or(now),
            Period::Years(n) => now
                .checked_sub_months(chrono::Months::new(n.saturating_mul(12)))
                .unwrap_or(now),
        }
    }

    /// The period in the reader's words ("6 maanden").
    pub fn text(self, locale: crate::domain::Locale) -> String {
        let (key, n) = match self {
            Period::Days(n) => ("retention.days", n),
            Period::Months(n) => ("retention.months", n),
            Period::Years(n) => ("retention.years", n),
        };
        crate::i18n::t_count(locale, key, n.into(), &[])
    }
}

/// Art. 6(1)(a)–(f).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    #[serde(alias = "a")]
    Consent,
    #[serde(alias = "b")]
    Contract,
    #[serde(alias = "c")]
    LegalObligation,
    #[serde(alias = "d")]
    VitalInterests,
    #[serde(alias = "e")]
    PublicTask,
    #[serde(alias = "f")]
    LegitimateInterests,
}

impl LegalBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterests => "vital_interests",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterests => "legitimate_interests",
        }
    }

    /// "6(1)(a)" … "6(1)(f)".
    pub fn article(self) -> &'static str {
        match self {
            LegalBasis::Consent => "6(1)(a)",
            LegalBasis::Contract => "6(1)(b)",
            LegalBasis::LegalObligation => "6(1)(c)",
            LegalBasis::VitalInterests => "6(1)(d)",
            LegalBasis::PublicTask => "6(1)(e)",
            LegalBasis::LegitimateInterests => "6(1)(f)",
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    pub id: String,
    pub name: Texts,
    pub description: Texts,
    pub legal_basis: LegalBasis,
    /// The interest pursued; required when `legal_basis = "legitimate_interests"`
    /// (Art. 13(1)(d)).
    #[serde(default)]
    pub legitimate_interest: Option<Texts>,
    /// Ids of `categories` used for this purpose.
    #[serde(default)]
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The recipient's own name, e.g. `PostNL B.V.`.
    pub name: String,
    /// What they do with the data.
    pub role: Texts,
    /// Where they process it, e.g. `Nederland` / `EU` / `USA (EU-US Data Privacy Framework)`.
    #[serde(default)]
    pub location: Option<String>,
}

/// How an objection takes effect (SPEC.md, kind object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectionKind {
    /// Withdrawal of consent (Art. 7(3)): at once.
    Consent,
    /// Processing on legitimate interest (Art. 21(1)): staff weigh the
    /// customer's reasons.
    LegitimateInterest,
    /// Direct marketing (Art. 21(2)–(3)): at once, no questions asked.
    DirectMarketing,
}

impl ObjectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectionKind::Consent => "consent",
            ObjectionKind::LegitimateInterest => "legitimate_interest",
            ObjectionKind::DirectMarketing => "direct_marketing",
        }
    }

    /// Takes effect without a human.
    pub fn immediate(self) -> bool {
        !matches!(self, ObjectionKind::LegitimateInterest)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectionPurpose {
    /// Stable identifier, used in `?purpose=` deep links and the API.
    pub id: String,
    pub title: Texts,
    pub description: Texts,
    pub kind: ObjectionKind,
    /// The key in the customer store's consents this purpose switches off
    /// (`consents.newsletter`).
    pub consent_key: String,
    /// What stopping it is called, fitting "You're about to …": "avsluta
    /// nyhetsbrevet". Without it the portal names the title.
    #[serde(default)]
    pub stop: Option<Texts>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GuidanceTopic {
    /// Path segment: `/{lang}/help/{id}`; lowercase letters, digits, `-`.
    pub id: String,
    pub title: Texts,
    #[serde(default)]
    pub intro: Option<Texts>,
    pub steps: Vec<Texts>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyTemplate {
    pub id: String,
    pub title: Texts,
    pub body: Texts,
}

/// A text the customer or staff reads, in every portal language.
/// A missing language reads as empty, so start-up validation can name it
/// (`….sv is missing`) instead of a bare parser error.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    #[serde(default)]
    pub nl: String,
    #[serde(default)]
    pub sv: String,
    #[serde(default)]
    pub en: String,
}

impl Texts {
    pub fn get(&self, locale: crate::domain::Locale) -> &str {
        match locale {
            crate::domain::Locale::Nl => &self.nl,
            crate::domain::Locale::Sv => &self.sv,
            crate::domain::Locale::En => &self.en,
        }
    }

    /// Names the first language without text, for start-up validation.
    pub fn missing(&self) -> Option<&'static str> {
        [("nl", &self.nl), ("sv", &self.sv), ("en", &self.en)]
            .into_iter()
            .find(|(_, t)| t.trim().is_empty())
            .map(|(l, _)| l)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtherSystem {
    /// Stable identifier, e.g. `bookkeeping`.
    pub id: String,
    pub name: Texts,
}

fn default_retention() -> u32 {
    12
}

pub const DEMO_COMPANY_TOML: &str = r#"
[company]
name = "Kaasboer Demo B.V."
country = "NL"
privacy_email = "privacy@kaasboer.example"
mail_from = "Kaasboer Privacy <privacy@kaasboer.example>"
website = "https://kaasboer.example"
retention_months = 12
address = ["Kaasmarkt 1", "2801 AA Gouda", "Nederland"]

[company.dpo]
name = "Mr. J. de Boer"
email = "dpo@kaasboer.example"
contact = "+31 182 000 000"

[[company.other_systems]]
id = "bookkeeping"
name = { nl = "Boekhouding (Exact Online)", sv = "Bokföring (Exact Online)", en = "Bookkeeping (Exact Online)" }

[[company.other_systems]]
id = "mailbox"
name = { nl = "Klantenservice-mailbox", sv = "Kundtjänstens inkorg", en = "Customer service mailbox" }

[[company.other_systems]]
id = "call_recordings"
name = { nl = "Opnames van telefoongesprekken", sv = "Inspelade telefonsamtal", en = "Call recordings" }

# ---------- privacy notice (Art. 13 / Art. 15(1)) ----------

[company.privacy_notice]
source = { nl = "We krijgen je gegevens van jezelf: wanneer je een account aanmaakt, bestelt, betaalt of contact met ons opneemt. Je IP-adres en apparaatgegevens komen van je browser of onze app.", sv = "Vi får dina uppgifter från dig själv: när du skapar ett konto, beställer, betalar eller kontaktar oss. Din IP-adress och dina enhetsuppgifter kommer från din webbläsare eller vår app.", en = "We get your data from you: when you create an account, order, pay or contact us. Your IP address and device details come from your browser or our app." }
automated_decisions = { nl = "We nemen geen besluiten over je die alleen door een computer worden genomen en die rechtsgevolgen of andere grote gevolgen voor je hebben. Voor persoonlijke aanbiedingen kijken we naar wat je eerder kocht; daar kun je altijd bezwaar tegen maken.", sv = "Vi fattar inga beslut om dig som enbart fattas av en dator och som har rättsliga följder eller andra betydande följder för dig. För personliga erbjudanden tittar vi på vad du har köpt tidigare; det kan du alltid invända mot.", en = "We make no decisions about you that are taken by a computer alone and have legal or similarly significant effects on you. For personal offers we look at what you bought before; you can always object to that." }
transfers = { nl = "Onze nieuwsbriefdienst slaat gegevens op in de Verenigde Staten, onder het EU-VS-gegevensprivacykader.", sv = "Vår nyhetsbrevstjänst lagrar uppgifter i USA, enligt ramen för dataskydd mellan EU och USA.", en = "Our newsletter service stores data in the United States, under the EU-US Data Privacy Framework." }
provision = { nl = "Zonder je naam, adres en e-mailadres kunnen we geen bestelling leveren; dat is nodig voor de overeenkomst. Al het andere is vrijwillig.", sv = "Utan ditt namn, din adress och din e-postadress kan vi inte leverera en beställning; det behövs för avtalet. Allt annat är frivilligt.", en = "Without your name, address and email address we cannot deliver an order; they are needed for the contract. Everything else is voluntary." }

[[company.privacy_notice.categories]]
id = "contact"
name = { nl = "Naam, e-mailadres en telefoonnummer", sv = "Namn, e-postadress och telefonnummer", en = "Name, email address and phone number" }
retention = { nl = "Zolang je een account hebt; binnen 30 dagen nadat je het verwijdert zijn ze weg.", sv = "Så länge du har ett konto; de raderas inom 30 dagar efter att du tagit bort det.", en = "As long as you have an account; gone within 30 days after you delete it." }

[[company.privacy_notice.categories]]
id = "address"
name = { nl = "Afleveradres", sv = "Leveransadress", en = "Delivery address" }
retention = { nl = "Zolang je een account hebt.", sv = "Så länge du har ett konto.", en = "As long as you have an account." }

[[company.privacy_notice.categories]]
id = "orders"
name = { nl = "Bestellingen, facturen en betalingen", sv = "Beställningar, fakturor och betalningar", en = "Orders, invoices and payments" }
retention = { nl = "7 jaar, omdat de belastingwet dat verplicht.", sv = "7 år, eftersom bokföringslagen kräver det.", en = "7 years, because tax law requires it." }

[[company.privacy_notice.categories]]
id = "bank"
name = { nl = "Bankrekeningnummer (IBAN) voor automatische incasso", sv = "Bankkontonummer (IBAN) för autogiro", en = "Bank account number (IBAN) for direct debit" }
retention = { nl = "Tot 8 weken na de laatste incasso, daarna alleen op facturen (7 jaar).", sv = "Till 8 veckor efter den senaste dragningen, därefter bara på fakturor (7 år).", en = "Until 8 weeks after the last direct debit, then only on invoices (7 years)." }

[[company.privacy_notice.categories]]
id = "service"
name = { nl = "Contact met de klantenservice, ook opgenomen telefoongesprekken", sv = "Kontakter med kundtjänst, även inspelade telefonsamtal", en = "Contacts with customer service, including recorded phone calls" }
retention = { nl = "1 jaar; gespreksopnames 3 maanden.", sv = "1 år; samtalsinspelningar 3 månader.", en = "1 year; call recordings 3 months." }

[[company.privacy_notice.categories]]
id = "usage"
name = { nl = "IP-adressen en gebruik van de app", sv = "IP-adresser och användning av appen", en = "IP addresses and use of the app" }
retention = { nl = "6 maanden.", sv = "6 månader.", en = "6 months." }

[[company.privacy_notice.purposes]]
id = "orders"
name = { nl = "Je bestellingen leveren en afrekenen", sv = "Leverera och ta betalt för dina beställningar", en = "Delivering and charging for your orders" }
description = { nl = "We hebben je gegevens nodig om je bestelling klaar te maken, te bezorgen en te laten betalen.", sv = "Vi behöver dina uppgifter för att packa, leverera och ta betalt för din beställning.", en = "We need your data to prepare, deliver and charge for your order." }
legal_basis = "contract"
categories = ["contact", "address", "orders", "bank"]

[[company.privacy_notice.purposes]]
id = "bookkeeping"
name = { nl = "Onze boekhouding", sv = "Vår bokföring", en = "Our bookkeeping" }
description = { nl = "De wet verplicht ons facturen en betalingen te bewaren.", sv = "Lagen kräver att vi sparar fakturor och betalningar.", en = "The law requires us to keep invoices and payments." }
legal_basis = "legal_obligation"
categories = ["orders", "bank"]

[[company.privacy_notice.purposes]]
id = "newsletter"
name = { nl = "Nieuwsbrief", sv = "Nyhetsbrev", en = "Newsletter" }
description = { nl = "Als je daarvoor kiest, mailen we je over nieuwe kazen en aanbiedingen.", sv = "Om du vill det mejlar vi dig om nya ostar och erbjudanden.", en = "If you choose to, we email you about new cheeses and offers." }
legal_basis = "consent"
categories = ["contact"]

[[company.privacy_notice.purposes]]
id = "marketing"
name = { nl = "Reviewverzoeken, persoonlijke aanbiedingen en telefonische aanbiedingen", sv = "Förfrågningar om omdömen, personliga erbjudanden och telefonförsäljning", en = "Review requests, personal offers and phone offers" }
description = { nl = "Na een bestelling vragen we je mening, we stemmen aanbiedingen af op wat je kocht, en soms bellen we je met een aanbieding.", sv = "Efter en beställning ber vi om ditt omdöme, vi anpassar erbjudanden efter vad du köpt och ibland ringer vi dig med ett erbjudande.", en = "After an order we ask for your opinion, we match offers to what you bought, and sometimes we call you with an offer." }
legal_basis = "legitimate_interests"
legitimate_interest = { nl = "Klanten houden en onze kazen verkopen. Je kunt hier altijd en zonder reden mee stoppen.", sv = "Att behålla kunder och sälja våra ostar. Du kan när som helst sluta, utan att ange skäl.", en = "Keeping customers and selling our cheeses. You can stop this at any time, without giving a reason." }
categories = ["contact", "orders"]

[[company.privacy_notice.purposes]]
id = "service"
name = { nl = "Klantenservice en opnemen van gesprekken", sv = "Kundtjänst och inspelning av samtal", en = "Customer service and call recording" }
description = { nl = "We beantwoorden je vragen en nemen telefoongesprekken op om onze medewerkers te trainen.", sv = "Vi svarar på dina frågor och spelar in telefonsamtal för att utbilda våra medarbetare.", en = "We answer your questions and record phone calls to train our staff." }
legal_basis = "legitimate_interests"
legitimate_interest = { nl = "Goede service geven en die verbeteren.", sv = "Att ge god service och förbättra den.", en = "Giving good service and improving it." }
categories = ["contact", "service"]

[[company.privacy_notice.purposes]]
id = "analytics"
name = { nl = "Ons assortiment verbeteren", sv = "Förbättra vårt sortiment", en = "Improving our range" }
description = { nl = "We analyseren bestellingen en appgebruik om te zien welke kazen en functies goed werken.", sv = "Vi analyserar beställningar och appanvändning för att se vilka ostar och funktioner som fungerar bra.", en = "We analyse orders and app use to see which cheeses and features work well." }
legal_basis = "legitimate_interests"
legitimate_interest = { nl = "Een assortiment en app bieden die klanten willen.", sv = "Att erbjuda ett sortiment och en app som kunderna vill ha.", en = "Offering a range and an app that customers want." }
categories = ["orders", "usage"]

[[company.privacy_notice.purposes]]
id = "security"
name = { nl = "Fraude voorkomen en beveiliging", sv = "Förhindra bedrägerier och säkerhet", en = "Preventing fraud and keeping things secure" }
description = { nl = "We controleren inlogpogingen en betalingen op misbruik.", sv = "Vi kontrollerar inloggningsförsök och betalningar för att upptäcka missbruk.", en = "We check login attempts and payments for misuse." }
legal_basis = "legitimate_interests"
legitimate_interest = { nl = "Jou en ons beschermen tegen fraude.", sv = "Att skydda dig och oss mot bedrägerier.", en = "Protecting you and us from fraud." }
categories = ["usage", "orders"]

[[company.privacy_notice.recipients]]
name = "PostNL B.V."
role = { nl = "Bezorgt je pakketten.", sv = "Levererar dina paket.", en = "Delivers your parcels." }
location = "Nederland"

[[company.privacy_notice.recipients]]
name = "Mollie B.V."
role = { nl = "Verwerkt je betalingen.", sv = "Hanterar dina betalningar.", en = "Processes your payments." }
location = "Nederland"

[[company.privacy_notice.recipients]]
name = "Exact Online (Exact Group B.V.)"
role = { nl = "Onze boekhoudsoftware.", sv = "Vårt bokföringsprogram.", en = "Our bookkeeping software." }
location = "Nederland"

[[company.privacy_notice.recipients]]
name = "The Rocket Science Group LLC (Mailchimp)"
role = { nl = "Verstuurt onze nieuwsbrief.", sv = "Skickar vårt nyhetsbrev.", en = "Sends our newsletter." }
location = "USA"

# ---------- objection and consent (Art. 7(3), Art. 21) ----------

[[company.objection_purposes]]
id = "newsletter"
kind = "consent"
consent_key = "newsletter"
title = { nl = "Nieuwsbrief", sv = "Nyhetsbrev", en = "Newsletter" }
description = { nl = "Onze e-mails over nieuwe kazen en aanbiedingen.", sv = "Våra mejl om nya ostar och erbjudanden.", en = "Our emails about new cheeses and offers." }
stop = { nl = "je afmelden voor de nieuwsbrief", sv = "avsluta nyhetsbrevet", en = "unsubscribe from the newsletter" }

[[company.objection_purposes]]
id = "reviews"
kind = "direct_marketing"
consent_key = "reviews"
title = { nl = "Reviewverzoeken", sv = "Förfrågningar om omdömen", en = "Review requests" }
description = { nl = "Na een bestelling een e-mail met de vraag wat je ervan vond.", sv = "Ett mejl efter en beställning där vi frågar vad du tyckte.", en = "An email after an order asking what you thought of it." }
stop = { nl = "geen reviewverzoeken meer krijgen", sv = "sluta få förfrågningar om omdömen", en = "stop getting review requests" }

[[company.objection_purposes]]
id = "phone_offers"
kind = "direct_marketing"
consent_key = "phone_offers"
title = { nl = "Telefonische aanbiedingen", sv = "Erbjudanden per telefon", en = "Offers by phone" }
description = { nl = "Af en toe een telefoontje van ons met een aanbieding.", sv = "Ett samtal från oss då och då med ett erbjudande.", en = "An occasional call from us with an offer." }
stop = { nl = "geen aanbiedingen per telefoon meer krijgen", sv = "sluta få erbjudanden per telefon", en = "stop getting offers by phone" }

[[company.objection_purposes]]
id = "profiling"
kind = "direct_marketing"
consent_key = "profiling"
title = { nl = "Persoonlijke aanbiedingen", sv = "Personliga erbjudanden", en = "Personal offers" }
description = { nl = "Aanbiedingen die we afstemmen op wat je eerder kocht.", sv = "Erbjudanden som vi anpassar efter vad du har köpt tidigare.", en = "Offers we match to what you bought before." }
stop = { nl = "geen persoonlijke aanbiedingen meer krijgen", sv = "sluta få personliga erbjudanden", en = "stop getting personal offers" }

[[company.objection_purposes]]
id = "call_recording"
kind = "legitimate_interest"
consent_key = "call_recording"
title = { nl = "Opnemen van telefoongesprekken", sv = "Inspelning av telefonsamtal", en = "Recording of phone calls" }
description = { nl = "We nemen gesprekken met de klantenservice op om medewerkers te trainen.", sv = "Vi spelar in samtal med kundtjänst för att utbilda medarbetare.", en = "We record calls with customer service to train our staff." }
stop = { nl = "bezwaar maken tegen het opnemen van je telefoongesprekken", sv = "invända mot att dina telefonsamtal spelas in", en = "object to the recording of your phone calls" }

[[company.objection_purposes]]
id = "analytics"
kind = "legitimate_interest"
consent_key = "analytics"
title = { nl = "Analyse van je bestellingen", sv = "Analys av dina beställningar", en = "Analysis of your orders" }
description = { nl = "We gebruiken je bestellingen om ons assortiment te verbeteren.", sv = "Vi använder dina beställningar för att förbättra vårt sortiment.", en = "We use your orders to improve our range." }
stop = { nl = "bezwaar maken tegen de analyse van je bestellingen", sv = "invända mot analysen av dina beställningar", en = "object to the analysis of your orders" }

# ---------- guidance pages: /{lang}/help/{id} ----------

[[company.guidance]]
id = "delivery-address"
title = { nl = "Je afleveradres wijzigen", sv = "Ändra din leveransadress", en = "Changing your delivery address" }
intro = { nl = "Dit doe je zelf in de app; het duurt een minuut.", sv = "Det gör du själv i appen; det tar en minut.", en = "You do this yourself in the app; it takes a minute." }
steps = [
  { nl = "Open de Kaasboer-app en log in.", sv = "Öppna Kaasboer-appen och logga in.", en = "Open the Kaasboer app and log in." },
  { nl = "Tik op ‘Account’ en dan op ‘Adressen’.", sv = "Tryck på ”Konto” och sedan på ”Adresser”.", en = "Tap ‘Account’, then ‘Addresses’." },
  { nl = "Kies het adres, pas het aan en tik op ‘Opslaan’.", sv = "Välj adressen, ändra den och tryck på ”Spara”.", en = "Choose the address, change it and tap ‘Save’." },
  { nl = "Bestellingen die al onderweg zijn, gaan nog naar het oude adres.", sv = "Beställningar som redan är på väg går fortfarande till den gamla adressen.", en = "Orders already on their way still go to the old address." },
]

[[company.guidance]]
id = "phone-number"
title = { nl = "Je telefoonnummer wijzigen", sv = "Ändra ditt telefonnummer", en = "Changing your phone number" }
steps = [
  { nl = "Open de Kaasboer-app en log in.", sv = "Öppna Kaasboer-appen och logga in.", en = "Open the Kaasboer app and log in." },
  { nl = "Tik op ‘Account’ en dan op ‘Persoonlijke gegevens’.", sv = "Tryck på ”Konto” och sedan på ”Personuppgifter”.", en = "Tap ‘Account’, then ‘Personal details’." },
  { nl = "Vul je nieuwe nummer in en tik op ‘Opslaan’.", sv = "Fyll i ditt nya nummer och tryck på ”Spara”.", en = "Enter your new number and tap ‘Save’." },
]

[[company.guidance]]
id = "bank-account"
title = { nl = "Je bankrekening wijzigen", sv = "Ändra ditt bankkonto", en = "Changing your bank account" }
intro = { nl = "Voor automatische incasso gebruiken we de rekening die je in de app opgeeft.", sv = "För autogiro använder vi kontot som du anger i appen.", en = "For direct debit we use the account you give in the app." }
steps = [
  { nl = "Open de Kaasboer-app en log in.", sv = "Öppna Kaasboer-appen och logga in.", en = "Open the Kaasboer app and log in." },
  { nl = "Tik op ‘Account’ en dan op ‘Betaalgegevens’.", sv = "Tryck på ”Konto” och sedan på ”Betalningsuppgifter”.", en = "Tap ‘Account’, then ‘Payment details’." },
  { nl = "Kies ‘Andere rekening’ en volg de stappen; je bevestigt met een betaling van € 0,01.", sv = "Välj ”Annat konto” och följ stegen; du bekräftar med en betalning på 0,01 €.", en = "Choose ‘Another account’ and follow the steps; you confirm with a payment of €0.01." },
]

# ---------- reply templates for staff ----------

[[company.reply_templates]]
id = "need_more_information"
title = { nl = "Meer informatie nodig", sv = "Behöver mer information", en = "More information needed" }
body = { nl = "Om je verzoek af te handelen hebben we nog wat informatie van je nodig. Wil je deze e-mail beantwoorden met een korte toelichting?", sv = "För att hantera din begäran behöver vi lite mer information från dig. Vill du svara på det här mejlet med en kort förklaring?", en = "To handle your request we need a little more information from you. Could you reply to this email with a short explanation?" }

[[company.reply_templates]]
id = "objection_accepted"
title = { nl = "Bezwaar gehonoreerd", sv = "Invändning godtagen", en = "Objection accepted" }
body = { nl = "We hebben je bezwaar bekeken en stoppen met het gebruik van je gegevens voor dit doel.", sv = "Vi har gått igenom din invändning och slutar använda dina uppgifter för det här ändamålet.", en = "We have reviewed your objection and stop using your data for this purpose." }

[[company.reply_templates]]
id = "restriction_confirmed"
title = { nl = "Beperking van de verwerking", sv = "Begränsning av behandlingen", en = "Restriction of processing" }
body = { nl = "We hebben het gebruik van je gegevens beperkt zoals je vroeg. We bewaren ze, maar gebruiken ze niet, totdat we je vraag hebben afgehandeld.", sv = "Vi har begränsat användningen av dina uppgifter som du bad om. Vi sparar dem men använder dem inte förrän vi har hanterat din begäran.", en = "We have restricted the use of your data as you asked. We keep it but do not use it until we have dealt with your request." }
"#;

pub fn parse_company(text: &str, origin: &str) -> Result<Company, ConfigError> {
    let file: CompanyFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().replace('\n', " ");
        let key = e
            .span()
            .map(|s| {
                let line = text[..s.start].lines().count().max(1);
                format!(" (line {line})")
            })
            .unwrap_or_default();
        ConfigError(format!("{origin}: {msg}{key}"))
    })?;
    let mut c = file.company;
    c.connectors = file.connectors;
    c.webhooks = file.webhooks;
    if c.name.trim().is_empty() {
        return err(format!("{origin}: company.name is empty"));
    }
    if crate::domain::Email::parse(&c.privacy_email).is_none() {
        return err(format!(
            "{origin}: company.privacy_email is not an email address"
        ));
    }
    if c.mail_from.parse::<lettre::message::Mailbox>().is_err() {
        return err(format!(
            "{origin}: company.mail_from is not a mailbox like `Name <addr@host>`"
        ));
    }
    if c.retention_months == 0 {
        return err(format!(
            "{origin}: company.retention_months must be at least 1"
        ));
    }
    let mut problems = validate(&c);
    let recipients: Vec<String> = c
        .privacy_notice
        .recipients
        .iter()
        .map(|r| r.name.clone())
        .collect();
    problems.extend(crate::connector::config::validate(
        &c.connectors,
        &recipients,
    ));
    for (i, cat) in c.privacy_notice.categories.iter().enumerate() {
        if let Some(r) = &cat.retain {
            if Period::parse(r).is_none() {
                problems.push(format!(
                    "company.privacy_notice.categories[{i}].retain `{r}` is not like `6 months`, `7 years` or `90 days`"
                ));
            }
            if cat.data.is_empty() {
                problems.push(format!(
                    "company.privacy_notice.categories[{i}]: retain needs `data`, the systems' categories it covers"
                ));
            }
        }
    }
    if let Some(i) = c.inactivity {
        if i.anonymise_after_months == 0 {
            problems.push("company.inactivity.anonymise_after_months must be at least 1".into());
        }
        if i.warn_days_before == 0 || i.warn_days_before > i.anonymise_after_months * 28 {
            problems.push(
                "company.inactivity.warn_days_before must be at least 1 and shorter than the inactivity period".into(),
            );
        }
    }
    for (i, w) in c.webhooks.iter().enumerate() {
        match url::Url::parse(&w.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => problems.push(format!("webhooks[{i}].url is not an http(s) URL")),
        }
        match std::env::var(&w.secret_env) {
            Ok(v) if crate::connector::http::parse_secret(&v).is_ok() => {}
            Ok(_) => problems.push(format!(
                "webhooks[{i}]: the secret in {} is not valid (whsec_ + base64, or at least 16 characters)",
                w.secret_env
            )),
            Err(_) => problems.push(format!(
                "webhooks[{i}]: environment variable {} is not set",
                w.secret_env
            )),
        }
        for e in w.events.iter().flatten() {
            if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                problems.push(format!("webhooks[{i}].events: unknown event `{e}`"));
            }
        }
    }
    if !problems.is_empty() {
        return err(format!("{origin}: {}", problems.join("; ")));
    }
    Ok(c)
}

/// Every missing translation or field, as `company.key.lang is missing`.
fn validate(c: &Company) -> Vec<String> {
    let mut out = Vec::new();
    let mut texts = |key: String, t: &Texts| {
        for (lang, text) in [("nl", &t.nl), ("sv", &t.sv), ("en", &t.en)] {
            if text.trim().is_empty() {
                out.push(format!("company.{key}.{lang} is missing"));
            }
        }
    };
    for (i, sys) in c.other_systems.iter().enumerate() {
        texts(format!("other_systems[{i}].name"), &sys.name);
    }
    let n = &c.privacy_notice;
    for (i, cat) in n.categories.iter().enumerate() {
        texts(format!("privacy_notice.categories[{i}].name"), &cat.name);
        texts(
            format!("privacy_notice.categories[{i}].retention"),
            &cat.retention,
        );
    }
    for (i, p) in n.purposes.iter().enumerate() {
        texts(format!("privacy_notice.purposes[{i}].name"), &p.name);
        texts(
            format!("privacy_notice.purposes[{i}].description"),
            &p.description,
        );
        if let Some(li) = &p.legitimate_interest {
            texts(
                format!("privacy_notice.purposes[{i}].legitimate_interest"),
                li,
            );
        }
    }
    for (i, r) in n.recipients.iter().enumerate() {
        texts(format!("privacy_notice.recipients[{i}].role"), &r.role);
    }
    texts("privacy_notice.source".into(), &n.source);
    texts(
        "privacy_notice.automated_decisions".into(),
        &n.automated_decisions,
    );
    if let Some(t) = &n.transfers {
        texts("privacy_notice.transfers".into(), t);
    }
    if let Some(t) = &n.provision {
        texts("privacy_notice.provision".into(), t);
    }
    for (i, p) in c.objection_purposes.iter().enumerate() {
        texts(format!("objection_purposes[{i}].title"), &p.title);
        texts(
            format!("objection_purposes[{i}].description"),
            &p.description,
        );
        if let Some(stop) = &p.stop {
            texts(format!("objection_purposes[{i}].stop"), stop);
        }
    }
    for (i, g) in c.guidance.iter().enumerate() {
        texts(format!("guidance[{i}].title"), &g.title);
        if let Some(intro) = &g.intro {
            texts(format!("guidance[{i}].intro"), intro);
        }
        for (j, step) in g.steps.iter().enumerate() {
            texts(format!("guidance[{i}].steps[{j}]"), step);
        }
    }
    for (i, r) in c.reply_templates.iter().enumerate() {
        texts(format!("reply_templates[{i}].title"), &r.title);
        texts(format!("reply_templates[{i}].body"), &r.body);
    }

    // Fields that are present but empty or inconsistent.
    if c.address.iter().all(|l| l.trim().is_empty()) {
        out.push("company.address is missing".into());
    }
    if c.dpo.name.trim().is_empty() {
        out.push("company.dpo.name is missing".into());
    }
    if crate::domain::Email::parse(&c.dpo.email).is_none() {
        out.push("company.dpo.email is not an email address".into());
    }
    if n.categories.is_empty() {
        out.push("company.privacy_notice.categories is missing".into());
    }
    if n.purposes.is_empty() {
        out.push("company.privacy_notice.purposes is missing".into());
    }
    if n.recipients.is_empty() {
        out.push("company.privacy_notice.recipients is missing".into());
    }
    let ids = |list: &str, items: Vec<&str>, out: &mut Vec<String>| {
        let mut seen = std::collections::BTreeSet::new();
        for (i, id) in items.into_iter().enumerate() {
            if id.trim().is_empty() {
                out.push(format!("company.{list}[{i}].id is missing"));
            } else if !seen.insert(id) {
                out.push(format!("company.{list}[{i}].id `{id}` is used twice"));
            }
        }
    };
    ids(
        "other_systems",
        c.other_systems.iter().map(|x| x.id.as_str()).collect(),
        &mut out,
    );
    ids(
        "privacy_notice.categories",
        n.categories.iter().map(|x| x.id.as_str()).collect(),
        &mut out,
    );
    ids(
        "privacy_notice.purposes",
        n.purposes.iter().map(|x| x.id.as_str()).collect(),
        &mut out,
    );
    ids(
        "objection_purposes",
        c.objection_purposes.iter().map(|x| x.id.as_str()).collect(),
        &mut out,
    );
    ids(
        "guidance",
        c.guidance.iter().map(|x| x.id.as_str()).collect(),
        &mut out,
    );
    ids(
        "reply_templates",
        c.reply_templates.iter().map(|x| x.id.as_str()).collect(),
        &mut out,
    );
    for (i, p) in n.purposes.iter().enumerate() {
        if p.legal_basis == LegalBasis::LegitimateInterests && p.legitimate_interest.is_none() {
            out.push(format!(
                "company.privacy_notice.purposes[{i}].legitimate_interest is missing (required for legal_basis = \"legitimate_interests\")"
            ));
        }
        for cat in &p.categories {
            if !n.categories.iter().any(|c| &c.id == cat) {
                out.push(format!(
                    "company.privacy_notice.purposes[{i}].categories: `{cat}` is not a category id"
                ));
            }
        }
    }
    for (i, r) in n.recipients.iter().enumerate() {
        if r.name.trim().is_empty() {
            out.push(format!(
                "company.privacy_notice.recipients[{i}].name is missing"
            ));
        }
    }
    for (i, p) in c.objection_purposes.iter().enumerate() {
        if p.consent_key.trim().is_empty() {
            out.push(format!(
                "company.objection_purposes[{i}].consent_key is missing"
            ));
        }
    }
    for (i, g) in c.guidance.iter().enumerate() {
        let slug_ok =
            g.id.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !g.id.is_empty() && !slug_ok {
            out.push(format!(
                "company.guidance[{i}].id may hold only a-z, 0-9 and -"
            ));
        }
        if g.steps.is_empty() {
            out.push(format!("company.guidance[{i}].steps is missing"));
        }
    }
    out
}

/// Reads a variable; an empty value counts as unset.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_secret(hex_key: &str) -> Result<(), ConfigError> {
    match hex::decode(hex_key.trim()) {
        Ok(b) if b.len() >= 32 => Ok(()),
        Ok(b) => err(format!(
            "PORTAL_SECRET_KEY must be at least 32 bytes (64 hex characters); got {} bytes",
            b.len()
        )),
        Err(_) => err("PORTAL_SECRET_KEY must be hex-encoded (64+ characters 0-9a-f)"),
    }
}

/// Fewest distinct byte values a key may have: 32 random bytes have about
/// 30, so fewer than 16 means a typed or patterned key, not a random one.
const MIN_DISTINCT_KEY_BYTES: usize = 16;

/// Refuses a key that was typed rather than generated (one byte repeated,
/// a short pattern): every code hash, cookie and link rests on it.
pub fn check_key_strength(key: &[u8]) -> Result<(), ConfigError> {
    let distinct = key.iter().collect::<std::collections::BTreeSet<_>>().len();
    if distinct < MIN_DISTINCT_KEY_BYTES {
        return err(format!(
            "PORTAL_SECRET_KEY has too little entropy ({distinct} different bytes in {}): use 32 random bytes, e.g. `openssl rand -hex 32`",
            key.len()
        ));
    }
    Ok(())
}

pub fn generate_secret_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// `demo` keeps its generated key under ./data so that links in the dev
/// mailbox and sessions survive a restart.
fn demo_secret(data_dir: &std::path::Path) -> Result<String, ConfigError> {
    let path = data_dir.join("secret.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let k = existing.trim().to_string();
        parse_secret(&k)?;
        return Ok(k);
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| ConfigError(format!("cannot create {}: {e}", data_dir.display())))?;
    let k = generate_secret_hex();
    write_private(&path, &k)
        .map_err(|e| ConfigError(format!("cannot write {}: {e}", path.display())))?;
    Ok(k)
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    crate::crypto::create_private(path)?.write_all(content.as_bytes())
}

/// `PORTAL_DATABASE_URL`, alone: `backup` needs nothing else.
pub fn database_url() -> Result<String, ConfigError> {
    let url = var("PORTAL_DATABASE_URL").unwrap_or_else(|| "sqlite://data/portal.db".to_string());
    if !(url.starts_with("sqlite:") || url.starts_with("postgres")) {
        return err("PORTAL_DATABASE_URL must start with sqlite:// or postgres://");
    }
    Ok(url)
}

pub fn load(mode: Mode, bind_override: Option<String>) -> Result<Settings, ConfigError> {
    let database_url = database_url()?;
    let bind = bind_override
        .or_else(|| var("PORTAL_BIND"))
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    if bind.parse::<std::net::SocketAddr>().is_err() {
        return err(format!(
            "PORTAL_BIND is not an address like 127.0.0.1:8080: {bind}"
        ));
    }
    let base_url = var("PORTAL_BASE_URL")
        .unwrap_or_else(|| format!("http://{bind}"))
        .trim_end_matches('/')
        .to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return err("PORTAL_BASE_URL must start with http:// or https://");
    }

    let company = match var("PORTAL_CONFIG") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError(format!("PORTAL_CONFIG {path}: {e}")))?;
            parse_company(&text, &format!("PORTAL_CONFIG {path}"))?
        }
        None => parse_company(DEMO_COMPANY_TOML, "built-in demo company")?,
    };

    let mut company = company;
    connector_shorthand(&mut company)?;
    let smtp_url = var("PORTAL_SMTP_URL");
    if let Some(u) = &smtp_url {
        crate::mail::transport::validate_smtp_url(u)
            .map_err(|e| ConfigError(format!("PORTAL_SMTP_URL: {e}")))?;
    }
    let secret = match (mode, var("PORTAL_SECRET_KEY")) {
        (_, Some(k)) => {
            parse_secret(&k)?;
            k.trim().to_string()
        }
        (Mode::Demo, None) => demo_secret(&PathBuf::from("data"))?,
        (Mode::Serve, None) => {
            return err("PORTAL_SECRET_KEY is not set: give at least 32 random bytes as hex (e.g. `openssl rand -hex 32`)")
        }
    };
    if mode == Mode::Serve && smtp_url.is_none() {
        return err("PORTAL_SMTP_URL is not set: `serve` needs an SMTP server (smtp://host:port or smtps://user:pass@host:port)");
    }
    let mail_from = var("PORTAL_MAIL_FROM").unwrap_or_else(|| company.mail_from.clone());
    if mail_from.parse::<lettre::message::Mailbox>().is_err() {
        return err("PORTAL_MAIL_FROM is not a mailbox like `Name <addr@host>`");
    }
    let metrics_bind = var("PORTAL_METRICS_BIND");
    if let Some(b) = &metrics_bind {
        if b.parse::<std::net::SocketAddr>().is_err() {
            return err(format!(
                "PORTAL_METRICS_BIND is not an address like 127.0.0.1:9090: {b}"
            ));
        }
    }
    let metrics_token = var("PORTAL_METRICS_TOKEN");
    if metrics_token.as_ref().is_some_and(|t| t.trim().len() < 32) {
        return err(
            "PORTAL_METRICS_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)",
        );
    }
    let client_rate_limit_per_minute = match var("PORTAL_CLIENT_RATE_LIMIT") {
        Some(v) => v.parse().map_err(|_| {
            ConfigError("PORTAL_CLIENT_RATE_LIMIT must be a whole number (0 = off)".into())
        })?,
        None => 60,
    };

    let trusted_proxies = match var("PORTAL_TRUSTED_PROXIES") {
        Some(v) => parse_trusted_proxies(&v)?,
        None => Vec::new(),
    };

    Ok(Settings {
        mode,
        database_url,
        bind,
        base_url,
        smtp_url: smtp_url.map(SecretString::from),
        mail_from,
        secret_key: SecretString::from(secret),
        company,
        client_rate_limit_per_minute,
        mail_retry_base: Duration::from_secs(5),
        mail_retry_max: Duration::from_secs(60),
        worker_interval: Duration::from_secs(2),
        connector_retry_base: Duration::from_secs(5),
        connector_retry_max: Duration::from_secs(15 * 60),
        run_schedules: true,
        mail_timing: crate::mail::Timing::default(),
        export_dir: PathBuf::from(
            var("PORTAL_EXPORT_DIR").unwrap_or_else(|| "data/exports".to_string()),
        ),
        metrics_bind,
        metrics_token: metrics_token.map(|t| SecretString::from(t.trim().to_string())),
        trusted_proxies,
    })
}

/// `127.0.0.1/32,10.0.0.0/8,::1`: CIDRs, or single addresses.
/// `PORTAL_CONNECTOR_URL` + `PORTAL_CONNECTOR_SECRET`: one primary `http`
/// system without writing `[[connectors]]` (CONTRACT.md, Environment).
fn connector_shorthand(company: &mut Company) -> Result<(), ConfigError> {
    use crate::connector::config::{Kind, SystemConfig};
    let Some(url) = var("PORTAL_CONNECTOR_URL") else {
        if var("PORTAL_CONNECTOR_SECRET").is_some() {
            return err("PORTAL_CONNECTOR_SECRET is set without PORTAL_CONNECTOR_URL");
        }
        return Ok(());
    };
    if company.connectors.iter().any(|c| c.primary) {
        return err(
            "PORTAL_CONNECTOR_URL is set, but the company file already names a primary system in [[connectors]]; use one or the other",
        );
    }
    let name = |l| crate::i18n::t(l, "connector.company_api");
    let system = SystemConfig {
        id: "company".into(),
        name: Texts {
            nl: name(crate::domain::Locale::Nl),
            sv: name(crate::domain::Locale::Sv),
            en: name(crate::domain::Locale::En),
        },
        kind: Kind::Http,
        primary: true,
        url: Some(url),
        secret_env: Some("PORTAL_CONNECTOR_SECRET".into()),
        timeout_seconds: None,
        consent_keys: Vec::new(),
        to: None,
        language: None,
        recipient: None,
        rest: Default::default(),
    };
    let recipients: Vec<String> = Vec::new();
    let problems = crate::connector::config::validate(std::slice::from_ref(&system), &recipients);
    if !problems.is_empty() {
        return err(format!(
            "PORTAL_CONNECTOR_URL/PORTAL_CONNECTOR_SECRET: {}",
            problems
                .join("; ")
                .replace("connectors[0]", "the connector")
        ));
    }
    company.connectors.insert(0, system);
    Ok(())
}

pub fn parse_trusted_proxies(v: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError(format!(
                        "PORTAL_TRUSTED_PROXIES: `{p}` is not an address or CIDR like 10.0.0.0/8"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key(hex_key: String) -> Vec<u8> {
        hex::decode(hex_key).unwrap()
    }

    #[test]
    fn keys_with_too_few_distinct_bytes_are_refused() {
        let e = check_key_strength(&with_key("ab".repeat(32))).unwrap_err();
        assert!(e.0.contains("1 different bytes in 32"), "{e}");
        let pattern = "00010203040506070809".repeat(4);
        assert!(check_key_strength(&with_key(pattern)).is_err());
        assert!(check_key_strength(&with_key(generate_secret_hex())).is_ok());
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_addresses() {
        let nets = parse_trusted_proxies(" 127.0.0.1/32, 10.0.0.0/8 ,::1").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[1].contains(&"10.2.3.4".parse::<std::net::IpAddr>().unwrap()));
        assert!(nets[2].contains(&"::1".parse::<std::net::IpAddr>().unwrap()));
        let e = parse_trusted_proxies("10.0.0.0/33").unwrap_err();
        assert!(e.0.starts_with("PORTAL_TRUSTED_PROXIES"), "{e}");
    }

    #[test]
    fn demo_company_is_valid() {
        let c = parse_company(DEMO_COMPANY_TOML, "demo").unwrap();
        assert_eq!(c.country, Country::NL);
    }

    #[test]
    fn missing_field_is_named() {
        let e = parse_company("[company]\nname = \"X\"\ncountry = \"NL\"\n", "t.toml").unwrap_err();
        assert!(e.0.contains("privacy_email"), "{e}");
    }

    #[test]
    fn unknown_country_is_refused() {
        let e = parse_company(
            "[company]\nname=\"X\"\ncountry=\"DE\"\nprivacy_email=\"p@x.example\"\nmail_from=\"p@x.example\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.0.contains("t.toml"), "{e}");
    }
}
