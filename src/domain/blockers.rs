//! What blocks an erasure (SPEC, kind delete): an open order, an amount still
//! outstanding, or a direct debit the customer's bank may still reverse.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// SEPA lets a customer reverse an authorised direct debit for 8 weeks.
pub const DIRECT_DEBIT_REVERSAL_DAYS: u64 = 56;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Blocker {
    OpenOrder {
        orders: usize,
    },
    OutstandingBalance {
        cents: i64,
    },
    /// `possible_from` is the local day from which deletion is allowed.
    RecentDirectDebit {
        possible_from: NaiveDate,
    },
    /// A reason the company's own system gives that the portal has no
    /// words for; `detail` is the system's short text for staff.
    Other {
        #[serde(default)]
        detail: Option<String>,
    },
}

impl Blocker {
    /// The stable machine code of CONTRACT.md.
    pub fn code(&self) -> &'static str {
        match self {
            Blocker::OpenOrder { .. } => "open_order",
            Blocker::OutstandingBalance { .. } => "outstanding_balance",
            Blocker::RecentDirectDebit { .. } => "recent_direct_debit",
            Blocker::Other { .. } => "other",
        }
    }
}

/// The facts a connector knows about an account, nothing more.
#[derive(Debug, Clone, Default)]
pub struct DeletionFacts {
    pub open_orders: usize,
    pub balance_cents: i64,
    pub direct_debits: Vec<DateTime<Utc>>,
}

/// Blockers as of `now`. Direct debits count in local calendar days: one
/// collected on 10 March may be reversed until 4 May inclusive, so deletion
/// is possible from 5 May, whatever the clock change in between.
pub fn deletion_blockers(facts: &DeletionFacts, now: DateTime<Utc>, tz: Tz) -> Vec<Blocker> {
    let mut out = Vec::new();
    if facts.open_orders > 0 {
        out.push(Blocker::OpenOrder {
            orders: facts.open_orders,
        });
    }
    if facts.balance_cents > 0 {
        out.push(Blocker::OutstandingBalance {
            cents: facts.balance_cents,
        });
    }
    let today = now.with_timezone(&tz).date_naive();
    let latest = facts
        .direct_debits
        .iter()
        .map(|at| at.with_timezone(&tz).date_naive() + Days::new(DIRECT_DEBIT_REVERSAL_DAYS))
        .max();
    if let Some(possible_from) = latest.filter(|d| *d > today) {
        out.push(Blocker::RecentDirectDebit { possible_from });
    }
    out
}

/// Midnight at the start of a local day, for tests and display.
pub fn local_midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .earliest()
        .expect("midnight exists in Amsterdam and Stockholm")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use chrono_tz::Europe::{Amsterdam, Stockholm};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn each_blocker_alone_and_combined() {
        let now = utc("2026-06-01T12:00:00Z");
        let clean = DeletionFacts::default();
        assert!(deletion_blockers(&clean, now, Amsterdam).is_empty());
        let open = DeletionFacts {
            open_orders: 2,
            ..Default::default()
        };
        assert_eq!(
            deletion_blockers(&open, now, Amsterdam),
            vec![Blocker::OpenOrder { orders: 2 }]
        );
        let owes = DeletionFacts {
            balance_cents: 1,
            ..Default::default()
        };
        assert_eq!(
            deletion_blockers(&owes, now, Amsterdam)[0].code(),
            "outstanding_balance"
        );
        let credit = DeletionFacts {
            balance_cents: -500,
            ..Default::default()
        };
        assert!(
            deletion_blockers(&credit, now, Amsterdam).is_empty(),
            "money owed to the customer does not block"
        );
        let all = DeletionFacts {
            open_orders: 1,
            balance_cents: 10,
            direct_debits: vec![now - Duration::days(3)],
        };
        let codes: Vec<_> = deletion_blockers(&all, now, Amsterdam)
            .iter()
            .map(Blocker::code)
            .collect();
        assert_eq!(
            codes,
            ["open_order", "outstanding_balance", "recent_direct_debit"]
        );
    }

    #[test]
    fn direct_debit_boundary_at_55_56_57_days() {
        let collected = utc("2026-01-10T09:00:00Z");
        let facts = DeletionFacts {
            direct_debits: vec![collected],
            ..Default::default()
        };
        for (days, blocked) in [(55, true), (56, false), (57, false)] {
            let now = collected + Duration::days(days);
            assert_eq!(
                !deletion_blockers(&facts, now, Amsterdam).is_empty(),
                blocked,
                "{days} days"
            );
        }
        let b = deletion_blockers(&facts, collected + Duration::days(10), Amsterdam);
        assert_eq!(
            b,
            vec![Blocker::RecentDirectDebit {
                possible_from: NaiveDate::from_ymd_opt(2026, 3, 7).unwrap()
            }]
        );
    }

    #[test]
    fn direct_debit_across_daylight_saving_changes() {
        // Spring forward (29 March 2026): 10 March 10:00 CET → possible from 5 May local.
        let collected = utc("2026-03-10T09:00:00Z");
        let facts = DeletionFacts {
            direct_debits: vec![collected],
            ..Default::default()
        };
        let from = NaiveDate::from_ymd_opt(2026, 5, 5).unwrap();
        let midnight = local_midnight(Amsterdam, from);
        assert_eq!(midnight, utc("2026-05-04T22:00:00Z"), "CEST midnight");
        assert!(!deletion_blockers(&facts, midnight - Duration::seconds(1), Amsterdam).is_empty());
        assert!(deletion_blockers(&facts, midnight, Amsterdam).is_empty());
        // Fall back (25 October 2026), Stockholm: a debit at 00:30 local on 1 Oct.
        let collected = utc("2026-09-30T22:30:00Z");
        let facts = DeletionFacts {
            direct_debits: vec![collected],
            ..Default::default()
        };
        let from = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let midnight = local_midnight(Stockholm, from);
        assert_eq!(midnight, utc("2026-11-25T23:00:00Z"), "CET midnight");
        assert!(!deletion_blockers(&facts, midnight - Duration::seconds(1), Stockholm).is_empty());
        assert!(deletion_blockers(&facts, midnight, Stockholm).is_empty());
    }

    #[test]
    fn the_latest_direct_debit_decides() {
        let now = utc("2026-06-01T12:00:00Z");
        let facts = DeletionFacts {
            direct_debits: vec![
                now - Duration::days(100),
                now - Duration::days(20),
                now - Duration::days(60),
            ],
            ..Default::default()
        };
        match &deletion_blockers(&facts, now, Amsterdam)[0] {
            Blocker::RecentDirectDebit { possible_from } => {
                assert_eq!(*possible_from, NaiveDate::from_ymd_opt(2026, 7, 7).unwrap())
            }
            other => panic!("{other:?}"),
        }
    }
}
