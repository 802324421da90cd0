//! Legal due dates for data-subject requests (GDPR Art. 12(3)).
//!
//! Most tools count "30 days"; the GDPR says *one month*, so this module counts
//! calendar months and then applies the time-limit rules that decide on which
//! day a period really ends.
//!
//! Sources:
//! - GDPR (Regulation (EU) 2016/679) Art. 12(3): one month from receipt,
//!   extendable by two further months.
//! - Regulation (EEC, Euratom) No 1182/71 art. 3(2)(c): a period in months
//!   ends on the same date in the last month, or that month's last day when
//!   there is no such date; art. 3(4): a period ending on a Saturday, Sunday or
//!   public holiday ends on the next working day.
//! - EDPB Guidelines 01/2022 on the right of access §159: the clock may stand
//!   still while the controller waits for the data subject to prove identity.
//! - Netherlands: Algemene termijnenwet art. 3(1) (algemeen erkende feestdagen,
//!   5 May every year) and art. 3(2) (Goede Vrijdag treated alike).
//! - Sweden: lag (1989:253) om allmänna helgdagar, and lag (1930:173) om
//!   beräkning av lagstadgad tid, which also treats midsommarafton, julafton
//!   and nyårsafton as days on which a period cannot end.
//!
//! Not modelled: the extra days the Dutch government may declare equal to
//! holidays by decree (Atw art. 3(3), e.g. the Friday after Ascension). They
//! are published a few years ahead and would need configuration, not code.
//!
//! Everything here is pure: no clock, no I/O. Callers pass "now" in.

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, TimeZone, Utc, Weekday};

/// Countries whose holiday calendar and time zone decide a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Country {
    NL,
    SE,
}

impl Country {
    /// Parses an ISO 3166-1 alpha-2 code, case-insensitively ("NL", "nl", "SE", "se").
    pub fn parse(s: &str) -> Option<Country> {
        if s.eq_ignore_ascii_case("NL") {
            Some(Country::NL)
        } else if s.eq_ignore_ascii_case("SE") {
            Some(Country::SE)
        } else {
            None
        }
    }

    /// The zone whose calendar day counts as the day of receipt and the due day.
    pub fn timezone(self) -> chrono_tz::Tz {
        match self {
            Country::NL => chrono_tz::Europe::Amsterdam,
            Country::SE => chrono_tz::Europe::Stockholm,
        }
    }

    /// The upper-case ISO code, as used in configuration and serialisation.
    pub fn as_str(self) -> &'static str {
        match self {
            Country::NL => "NL",
            Country::SE => "SE",
        }
    }
}

/// Whether `d` is a day on which a legal period cannot end in `country`
/// (official public holidays and the days the law treats alike).
///
/// The Dutch list follows the Algemene termijnenwet from 2014 on (Koningsdag
/// on 27 April, or 26 April when the 27th is a Sunday).
pub fn is_public_holiday(country: Country, d: NaiveDate) -> bool {
    let (year, month, day) = (d.year(), d.month(), d.day());
    let easter = easter_sunday(year);
    // Good Friday, Easter Sunday/Monday, Ascension, Whit Sunday.
    let easter_based = [-2, 0, 1, 39, 49]
        .iter()
        .any(|&offset| d == easter + Duration::days(offset));

    match country {
        Country::NL => {
            let kings_day = if NaiveDate::from_ymd_opt(year, 4, 27)
                .is_some_and(|k| k.weekday() == Weekday::Sun)
            {
                26
            } else {
                27
            };
            easter_based
                || d == easter + Duration::days(50) // Whit Monday
                || matches!((month, day), (1, 1) | (5, 5) | (12, 25) | (12, 26))
                || (month == 4 && day == kings_day)
        }
        Country::SE => {
            let weekday = d.weekday();
            let midsummer_eve = month == 6 && (19..=25).contains(&day) && weekday == Weekday::Fri;
            let midsummer_day = month == 6 && (20..=26).contains(&day) && weekday == Weekday::Sat;
            let all_saints = weekday == Weekday::Sat
                && ((month == 10 && day == 31) || (month == 11 && day <= 6));
            easter_based
                || midsummer_eve
                || midsummer_day
                || all_saints
                || matches!(
                    (month, day),
                    (1, 1) | (1, 6) | (5, 1) | (6, 6) | (12, 24) | (12, 25) | (12, 26) | (12, 31)
                )
        }
    }
}

/// Whether a legal period may end on `d`: not a Saturday, Sunday or public holiday.
pub fn is_working_day(country: Country, d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !is_public_holiday(country, d)
}

/// Easter Sunday in the Gregorian calendar (anonymous Gregorian algorithm,
/// Meeus/Jones/Butcher), which several holidays hang off.
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // The algorithm always yields 22 March ..= 25 April.
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or(NaiveDate::MIN)
}

/// Adds calendar months; when the target month is shorter, the period ends on
/// its last day (Reg. 1182/71 art. 3(2)(c)), e.g. 31 Jan + 1 = 28/29 Feb.
pub fn add_months(d: NaiveDate, months: u32) -> NaiveDate {
    // Only overflows near year 262 143; saturating keeps the function total.
    d.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// Inputs that decide a request's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineInput {
    pub country: Country,
    pub received_at: DateTime<Utc>,
    /// Total time the clock was paused (waiting for the customer to prove
    /// identity — EDPB 01/2022 §159). Negative values count as zero.
    pub paused: Duration,
    /// Extension by up to two further months (Art. 12(3)): 0, 1 or 2.
    /// Larger values are capped at 2, the legal maximum.
    pub extension_months: u32,
}

/// The most Art. 12(3) allows a controller to extend by.
const MAX_EXTENSION_MONTHS: u32 = 2;

/// The legal due date of a request.
///
/// Receipt counts on the calendar day in the country's time zone, because
/// that is the day the customer and the authority see. Any started paused day
/// moves the deadline by a whole day, so a pause never shortens the period.
/// The months are added in one step from receipt (31 Jan + 3 months = 30 Apr,
/// not 28 Apr) and only the final day is rolled to a working day.
pub fn due_date(input: &DeadlineInput) -> NaiveDate {
    let received_day = input
        .received_at
        .with_timezone(&input.country.timezone())
        .date_naive();
    let resumed_day = received_day
        .checked_add_days(Days::new(paused_days(input.paused)))
        .unwrap_or(NaiveDate::MAX);
    let months = 1 + input.extension_months.min(MAX_EXTENSION_MONTHS);
    next_working_day(input.country, add_months(resumed_day, months))
}

/// Whole days a pause moves the deadline, rounded up.
fn paused_days(paused: Duration) -> u64 {
    if paused <= Duration::zero() {
        return 0;
    }
    let whole = paused.num_days();
    let rounded_up = if paused > Duration::days(whole) {
        whole + 1
    } else {
        whole
    };
    u64::try_from(rounded_up).unwrap_or(0)
}

/// `d` itself when it is a working day, else the first working day after it.
fn next_working_day(country: Country, mut d: NaiveDate) -> NaiveDate {
    while !is_working_day(country, d) {
        match d.succ_opt() {
            Some(next) => d = next,
            None => break,
        }
    }
    d
}

/// The instant after which a case is overdue: 23:59:59 local time on the due
/// day, in UTC, so a deadline does not expire early for staff elsewhere.
pub fn due_instant(country: Country, due: NaiveDate) -> DateTime<Utc> {
    let tz = country.timezone();
    let local_end = due.and_hms_opt(23, 59, 59).unwrap_or_default();
    // Amsterdam and Stockholm switch clocks at night, so 23:59:59 always
    // exists exactly once; `latest` keeps this total for any other zone.
    match tz.from_local_datetime(&local_end).latest() {
        Some(t) => t.with_timezone(&Utc),
        None => local_end.and_utc(),
    }
}

/// Whole calendar days from `today` to `due` (0 on the due day, negative when overdue).
pub fn days_left(due: NaiveDate, today: NaiveDate) -> i64 {
    (due - today).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        date(y, m, d)
            .and_hms_opt(h, min, 0)
            .expect("valid test time")
            .and_utc()
    }

    /// A request received at noon UTC (the same calendar day in NL and SE).
    fn noon(country: Country, y: i32, m: u32, d: u32) -> DeadlineInput {
        DeadlineInput {
            country,
            received_at: utc(y, m, d, 12, 0),
            paused: Duration::zero(),
            extension_months: 0,
        }
    }

    #[test]
    fn country_parse_and_names() {
        let cases: &[(&str, Option<Country>)] = &[
            ("NL", Some(Country::NL)),
            ("nl", Some(Country::NL)),
            ("SE", Some(Country::SE)),
            ("se", Some(Country::SE)),
            ("DE", None),
            ("", None),
            ("NLD", None),
            (" nl", None),
        ];
        for (input, want) in cases {
            assert_eq!(Country::parse(input), *want, "parse({input:?})");
        }
        assert_eq!(Country::NL.as_str(), "NL");
        assert_eq!(Country::SE.as_str(), "SE");
        assert_eq!(Country::NL.timezone(), chrono_tz::Europe::Amsterdam);
        assert_eq!(Country::SE.timezone(), chrono_tz::Europe::Stockholm);
    }

    #[test]
    fn country_serializes_as_upper_case_code() {
        let cases = [(Country::NL, "\"NL\""), (Country::SE, "\"SE\"")];
        for (country, json) in cases {
            assert_eq!(serde_json::to_string(&country).unwrap(), json);
            assert_eq!(serde_json::from_str::<Country>(json).unwrap(), country);
        }
    }

    #[test]
    fn easter_sunday_known_years() {
        let cases = [
            (2024, date(2024, 3, 31)),
            (2025, date(2025, 4, 20)),
            (2026, date(2026, 4, 5)),
            (2027, date(2027, 3, 28)),
            (2000, date(2000, 4, 23)),
            (2019, date(2019, 4, 21)),
            // extremes of the possible range
            (2038, date(2038, 4, 25)),
            (2285, date(2285, 3, 22)),
        ];
        for (year, want) in cases {
            assert_eq!(easter_sunday(year), want, "Easter {year}");
        }
    }

    #[test]
    fn add_months_month_ends() {
        let cases = [
            (
                "31 Jan 2025 + 1 → 28 Feb",
                date(2025, 1, 31),
                1,
                date(2025, 2, 28),
            ),
            (
                "31 Jan 2024 + 1 → 29 Feb (leap year)",
                date(2024, 1, 31),
                1,
                date(2024, 2, 29),
            ),
            (
                "31 Aug + 1 → 30 Sep",
                date(2025, 8, 31),
                1,
                date(2025, 9, 30),
            ),
            ("5 Mar + 1 → 5 Apr", date(2025, 3, 5), 1, date(2025, 4, 5)),
            (
                "31 Mar + 1 → 30 Apr",
                date(2025, 3, 31),
                1,
                date(2025, 4, 30),
            ),
            (
                "30 Jan + 1 → 28 Feb",
                date(2025, 1, 30),
                1,
                date(2025, 2, 28),
            ),
            (
                "28 Feb + 1 → 28 Mar, not month end",
                date(2025, 2, 28),
                1,
                date(2025, 3, 28),
            ),
            (
                "15 Dec + 1 crosses the year",
                date(2025, 12, 15),
                1,
                date(2026, 1, 15),
            ),
            (
                "31 Dec + 2 → 28 Feb next year",
                date(2025, 12, 31),
                2,
                date(2026, 2, 28),
            ),
            (
                "30 Nov 2023 + 3 → 29 Feb 2024",
                date(2023, 11, 30),
                3,
                date(2024, 2, 29),
            ),
            (
                "+ 0 is the same day",
                date(2025, 7, 31),
                0,
                date(2025, 7, 31),
            ),
        ];
        for (name, start, months, want) in cases {
            assert_eq!(add_months(start, months), want, "{name}");
        }
    }

    #[test]
    fn public_holidays_netherlands() {
        let cases = [
            ("Nieuwjaarsdag", date(2025, 1, 1), true),
            ("Goede Vrijdag 2025", date(2025, 4, 18), true),
            ("Goede Vrijdag 2026", date(2026, 4, 3), true),
            ("Eerste Paasdag 2025", date(2025, 4, 20), true),
            ("Tweede Paasdag 2025", date(2025, 4, 21), true),
            ("Koningsdag 2026 on 27 April", date(2026, 4, 27), true),
            ("26 April 2026 is not Koningsdag", date(2026, 4, 26), false),
            (
                "Koningsdag 2025 moves to Saturday 26 April",
                date(2025, 4, 26),
                true,
            ),
            (
                "27 April 2025 is a Sunday, not Koningsdag",
                date(2025, 4, 27),
                false,
            ),
            ("Bevrijdingsdag 2025", date(2025, 5, 5), true),
            (
                "Bevrijdingsdag 2026 (not a lustrum year)",
                date(2026, 5, 5),
                true,
            ),
            ("Hemelvaartsdag 2025", date(2025, 5, 29), true),
            (
                "Friday after Ascension is not in the law",
                date(2025, 5, 30),
                false,
            ),
            ("Eerste Pinksterdag 2025", date(2025, 6, 8), true),
            ("Tweede Pinksterdag 2025", date(2025, 6, 9), true),
            ("Eerste Kerstdag", date(2025, 12, 25), true),
            ("Tweede Kerstdag", date(2025, 12, 26), true),
            ("Christmas Eve is a working day", date(2025, 12, 24), false),
            ("New Year's Eve is a working day", date(2025, 12, 31), false),
            ("Swedish National Day is not Dutch", date(2025, 6, 6), false),
            ("ordinary Tuesday", date(2025, 3, 11), false),
        ];
        for (name, d, want) in cases {
            assert_eq!(is_public_holiday(Country::NL, d), want, "NL {name} ({d})");
        }
    }

    #[test]
    fn public_holidays_sweden() {
        let cases = [
            ("Nyårsdagen", date(2025, 1, 1), true),
            ("Trettondedag jul", date(2025, 1, 6), true),
            ("Långfredagen 2025", date(2025, 4, 18), true),
            ("Påskdagen 2025", date(2025, 4, 20), true),
            ("Annandag påsk 2025", date(2025, 4, 21), true),
            ("Första maj", date(2025, 5, 1), true),
            ("Kristi himmelsfärdsdag 2025", date(2025, 5, 29), true),
            ("Pingstdagen 2025", date(2025, 6, 8), true),
            (
                "Annandag pingst was abolished in 2005",
                date(2025, 6, 9),
                false,
            ),
            ("Sveriges nationaldag", date(2025, 6, 6), true),
            ("Midsommarafton 2025", date(2025, 6, 20), true),
            ("Midsommardagen 2025", date(2025, 6, 21), true),
            (
                "Midsommarafton 2026 on the earliest day, 19 June",
                date(2026, 6, 19),
                true,
            ),
            (
                "Midsommarafton 2027 on the latest day, 25 June",
                date(2027, 6, 25),
                true,
            ),
            (
                "Friday 26 June 2026 is not midsummer",
                date(2026, 6, 26),
                false,
            ),
            ("Alla helgons dag 2025", date(2025, 11, 1), true),
            (
                "Alla helgons dag 2026 on 31 October",
                date(2026, 10, 31),
                true,
            ),
            (
                "Alla helgons dag 2027 on 6 November",
                date(2027, 11, 6),
                true,
            ),
            ("Friday before Alla helgons dag", date(2025, 10, 31), false),
            ("Julafton", date(2025, 12, 24), true),
            ("Juldagen", date(2025, 12, 25), true),
            ("Annandag jul", date(2025, 12, 26), true),
            ("Nyårsafton", date(2025, 12, 31), true),
            ("Koningsdag is not Swedish", date(2026, 4, 27), false),
            ("5 May is not Swedish", date(2026, 5, 5), false),
            ("ordinary Tuesday", date(2025, 3, 11), false),
        ];
        for (name, d, want) in cases {
            assert_eq!(is_public_holiday(Country::SE, d), want, "SE {name} ({d})");
        }
    }

    #[test]
    fn working_days() {
        let cases = [
            ("Saturday", Country::NL, date(2025, 3, 8), false),
            ("Sunday", Country::SE, date(2025, 3, 9), false),
            ("Monday", Country::NL, date(2025, 3, 10), true),
            ("Friday", Country::SE, date(2025, 3, 14), true),
            (
                "holiday on a weekday",
                Country::NL,
                date(2025, 4, 21),
                false,
            ),
            (
                "holiday in the other country only",
                Country::NL,
                date(2025, 6, 6),
                true,
            ),
        ];
        for (name, country, d, want) in cases {
            assert_eq!(is_working_day(country, d), want, "{name} ({d})");
        }
    }

    #[test]
    fn due_dates() {
        use Country::{NL, SE};
        let cases = [
            // plain calendar months
            (
                "31 Jan 2025 → Fri 28 Feb",
                noon(NL, 2025, 1, 31),
                date(2025, 2, 28),
            ),
            (
                "31 Jan 2024 → Thu 29 Feb (leap year)",
                noon(NL, 2024, 1, 31),
                date(2024, 2, 29),
            ),
            (
                "31 Aug 2025 → Tue 30 Sep",
                noon(SE, 2025, 8, 31),
                date(2025, 9, 30),
            ),
            (
                "10 Mar 2025 → Thu 10 Apr",
                noon(NL, 2025, 3, 10),
                date(2025, 4, 10),
            ),
            // weekend roll-over
            (
                "5 Mar 2025 → Sat 5 Apr → Mon 7 Apr",
                noon(NL, 2025, 3, 5),
                date(2025, 4, 7),
            ),
            (
                "6 Mar 2025 → Sun 6 Apr → Mon 7 Apr",
                noon(SE, 2025, 3, 6),
                date(2025, 4, 7),
            ),
            // holidays
            (
                "NL Koningsdag Mon 27 Apr 2026 → Tue 28 Apr",
                noon(NL, 2026, 3, 27),
                date(2026, 4, 28),
            ),
            (
                "SE works on 27 Apr 2026",
                noon(SE, 2026, 3, 27),
                date(2026, 4, 27),
            ),
            (
                "NL Bevrijdingsdag Tue 5 May 2026 → Wed 6 May",
                noon(NL, 2026, 4, 5),
                date(2026, 5, 6),
            ),
            (
                "NL works on SE National Day Fri 6 Jun 2025",
                noon(NL, 2025, 5, 6),
                date(2025, 6, 6),
            ),
            (
                "SE National Day Fri 6 Jun 2025 + weekend → Mon 9 Jun (no Whit Monday in SE)",
                noon(SE, 2025, 5, 6),
                date(2025, 6, 9),
            ),
            (
                "Easter Monday 21 Apr 2025 → Tue 22 Apr",
                noon(NL, 2025, 3, 21),
                date(2025, 4, 22),
            ),
            (
                "Ascension Thu 29 May 2025 → Fri 30 May",
                noon(NL, 2025, 4, 29),
                date(2025, 5, 30),
            ),
            (
                "Good Friday 3 Apr 2026, weekend, Easter Monday → Tue 7 Apr",
                noon(NL, 2026, 3, 3),
                date(2026, 4, 7),
            ),
            (
                "SE Good Friday chain likewise",
                noon(SE, 2026, 3, 3),
                date(2026, 4, 7),
            ),
            (
                "NL Sat 7 Jun 2025, Whit Sunday, Whit Monday → Tue 10 Jun",
                noon(NL, 2025, 5, 7),
                date(2025, 6, 10),
            ),
            (
                "Christmas Mon 25 Dec 2023 → Wed 27 Dec",
                noon(NL, 2023, 11, 25),
                date(2023, 12, 27),
            ),
            (
                "Boxing Day Tue 26 Dec 2023 → Wed 27 Dec",
                noon(SE, 2023, 11, 26),
                date(2023, 12, 27),
            ),
            (
                "Christmas Thu 25 Dec 2025, Boxing Day, weekend → Mon 29 Dec",
                noon(NL, 2025, 11, 25),
                date(2025, 12, 29),
            ),
            (
                "NL works on Christmas Eve Wed 24 Dec 2025",
                noon(NL, 2025, 11, 24),
                date(2025, 12, 24),
            ),
            (
                "SE Julafton Wed 24 Dec 2025 → Mon 29 Dec",
                noon(SE, 2025, 11, 24),
                date(2025, 12, 29),
            ),
            (
                "SE Midsommarafton Fri 20 Jun 2025 → Mon 23 Jun",
                noon(SE, 2025, 5, 20),
                date(2025, 6, 23),
            ),
            (
                "NL works on Fri 20 Jun 2025",
                noon(NL, 2025, 5, 20),
                date(2025, 6, 20),
            ),
        ];
        for (name, input, want) in cases {
            let got = due_date(&input);
            assert_eq!(got, want, "{name}");
            assert!(
                is_working_day(input.country, got),
                "{name}: {got} must be a working day"
            );
        }
    }

    #[test]
    fn due_date_counts_from_the_local_day_of_receipt() {
        let at = |country, received_at| DeadlineInput {
            country,
            received_at,
            paused: Duration::zero(),
            extension_months: 0,
        };
        let cases = [
            (
                "23:30 UTC 31 Jan is 00:30 on 1 Feb in Amsterdam → Sat 1 Mar → Mon 3 Mar",
                at(Country::NL, utc(2025, 1, 31, 23, 30)),
                date(2025, 3, 3),
            ),
            (
                "same instant in Stockholm",
                at(Country::SE, utc(2025, 1, 31, 23, 30)),
                date(2025, 3, 3),
            ),
            (
                "22:59 UTC 31 Jan is still 31 Jan in Amsterdam → Fri 28 Feb",
                at(Country::NL, utc(2025, 1, 31, 22, 59)),
                date(2025, 2, 28),
            ),
            (
                "summer time: 22:30 UTC 30 Jun is 1 Jul in Amsterdam → Fri 1 Aug",
                at(Country::NL, utc(2025, 6, 30, 22, 30)),
                date(2025, 8, 1),
            ),
            (
                "summer time: 21:30 UTC 30 Jun is still 30 Jun → Wed 30 Jul",
                at(Country::NL, utc(2025, 6, 30, 21, 30)),
                date(2025, 7, 30),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(due_date(&input), want, "{name}");
        }
    }

    #[test]
    fn due_date_pause_rounds_up_to_whole_days() {
        // Received Mon 10 Mar 2025; unpaused due Thu 10 Apr.
        let paused = |paused| DeadlineInput {
            paused,
            ..noon(Country::NL, 2025, 3, 10)
        };
        let cases = [
            ("no pause", Duration::zero(), date(2025, 4, 10)),
            (
                "negative pause counts as none",
                Duration::hours(-30),
                date(2025, 4, 10),
            ),
            ("1 second → 1 day", Duration::seconds(1), date(2025, 4, 11)),
            (
                "2 hours → 1 day → Fri 11 Apr",
                Duration::hours(2),
                date(2025, 4, 11),
            ),
            (
                "exactly 24 hours → 1 day",
                Duration::hours(24),
                date(2025, 4, 11),
            ),
            (
                "24 hours and 1 second → 2 days → Sat 12 Apr → Mon 14 Apr",
                Duration::hours(24) + Duration::seconds(1),
                date(2025, 4, 14),
            ),
            (
                "3 days → 13 Mar → Sun 13 Apr → Mon 14 Apr",
                Duration::days(3),
                date(2025, 4, 14),
            ),
            (
                "2 days 1 hour → 3 days, same as 3 days",
                Duration::days(2) + Duration::hours(1),
                date(2025, 4, 14),
            ),
            (
                "4 days → 14 Mar → Mon 14 Apr",
                Duration::days(4),
                date(2025, 4, 14),
            ),
            (
                "5 days → 15 Mar → Tue 15 Apr",
                Duration::days(5),
                date(2025, 4, 15),
            ),
        ];
        for (name, pause, want) in cases {
            assert_eq!(due_date(&paused(pause)), want, "{name}");
        }
    }

    #[test]
    fn due_date_with_extension() {
        let extended = |country, y, m, d, extension_months| DeadlineInput {
            extension_months,
            ..noon(country, y, m, d)
        };
        let cases = [
            (
                "5 Mar 2025 + 2 → 3 months: Thu 5 Jun",
                extended(Country::NL, 2025, 3, 5, 2),
                date(2025, 6, 5),
            ),
            (
                "5 Mar 2025 + 1 → Mon 5 May, NL Bevrijdingsdag → Tue 6 May",
                extended(Country::NL, 2025, 3, 5, 1),
                date(2025, 5, 6),
            ),
            (
                "same in SE: Mon 5 May",
                extended(Country::SE, 2025, 3, 5, 1),
                date(2025, 5, 5),
            ),
            (
                "31 Jan 2025 + 2 counts 3 months from receipt: Wed 30 Apr, not 28 Apr",
                extended(Country::NL, 2025, 1, 31, 2),
                date(2025, 4, 30),
            ),
            (
                "extension above the legal 2 months is capped",
                extended(Country::NL, 2025, 3, 5, 7),
                date(2025, 6, 5),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(due_date(&input), want, "{name}");
        }
    }

    #[test]
    fn due_date_with_pause_and_extension() {
        // 5 Mar 2025 + 3 paused days → 8 Mar; + 3 months → Sun 8 Jun 2025 (Whit
        // Sunday), then Whit Monday 9 Jun in NL → Tue 10 Jun.
        let input = DeadlineInput {
            paused: Duration::days(3),
            extension_months: 2,
            ..noon(Country::NL, 2025, 3, 5)
        };
        assert_eq!(due_date(&input), date(2025, 6, 10));
    }

    #[test]
    fn due_instant_is_end_of_local_day() {
        let cases = [
            (
                "NL winter time (UTC+1)",
                Country::NL,
                date(2025, 2, 28),
                utc(2025, 2, 28, 22, 59),
            ),
            (
                "SE summer time (UTC+2)",
                Country::SE,
                date(2025, 6, 5),
                utc(2025, 6, 5, 21, 59),
            ),
            (
                "day clocks go forward",
                Country::NL,
                date(2025, 3, 30),
                utc(2025, 3, 30, 21, 59),
            ),
            (
                "day clocks go back",
                Country::SE,
                date(2025, 10, 26),
                utc(2025, 10, 26, 22, 59),
            ),
        ];
        for (name, country, due, want_minute) in cases {
            let want = want_minute + Duration::seconds(59);
            assert_eq!(due_instant(country, due), want, "{name}");
        }
    }

    #[test]
    fn days_left_counts_calendar_days() {
        let cases = [
            ("a week ahead", date(2025, 3, 10), date(2025, 3, 3), 7),
            ("due today", date(2025, 3, 10), date(2025, 3, 10), 0),
            ("two days overdue", date(2025, 3, 10), date(2025, 3, 12), -2),
            (
                "across the year end",
                date(2025, 1, 2),
                date(2024, 12, 30),
                3,
            ),
            ("across leap day", date(2024, 3, 1), date(2024, 2, 28), 2),
        ];
        for (name, due, today, want) in cases {
            assert_eq!(days_left(due, today), want, "{name}");
        }
    }
}
