use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Export,
    Delete,
    ChangeEmail,
    Object,
    Question,
}

impl RequestKind {
    pub const ALL: [RequestKind; 5] = [
        RequestKind::Export,
        RequestKind::Delete,
        RequestKind::ChangeEmail,
        RequestKind::Object,
        RequestKind::Question,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Export => "export",
            RequestKind::Delete => "delete",
            RequestKind::ChangeEmail => "change_email",
            RequestKind::Object => "object",
            RequestKind::Question => "question",
        }
    }

    pub fn parse(s: &str) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The path segment of the customer page (`/{lang}/change-email`).
    pub fn slug(self) -> &'static str {
        match self {
            RequestKind::ChangeEmail => "change-email",
            other => other.as_str(),
        }
    }

    pub fn from_slug(s: &str) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|k| k.slug() == s)
    }

    /// Whether the portal can already carry this kind through to the end.
    /// The rest are announced as coming soon and accept no new requests.
    pub fn available(self) -> bool {
        matches!(
            self,
            RequestKind::Question
                | RequestKind::Delete
                | RequestKind::ChangeEmail
                | RequestKind::Object
                | RequestKind::Export
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    AwaitingVerification,
    Verified,
    AwaitingNewEmail,
    Processing,
    Escalated,
    Completed,
    Rejected,
    Expired,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::AwaitingVerification => "awaiting_verification",
            Status::Verified => "verified",
            Status::AwaitingNewEmail => "awaiting_new_email",
            Status::Processing => "processing",
            Status::Escalated => "escalated",
            Status::Completed => "completed",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        use Status::*;
        [
            AwaitingVerification,
            Verified,
            AwaitingNewEmail,
            Processing,
            Escalated,
            Completed,
            Rejected,
            Expired,
            Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Rejected | Status::Expired | Status::Cancelled
        )
    }

    /// The lifecycle of DESIGN.md. A request never moves backwards; anything
    /// not listed here is refused.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (AwaitingVerification, Verified | Expired | Cancelled)
                | (
                    Verified,
                    AwaitingNewEmail
                        | Processing
                        | Escalated
                        | Completed
                        | Rejected
                        | Expired
                        | Cancelled
                )
                | (
                    AwaitingNewEmail,
                    Processing | Escalated | Completed | Expired | Cancelled
                )
                | (Processing, Escalated | Completed | Rejected)
                | (Escalated, Processing | Completed | Rejected)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request cannot move from {from} to {to}")]
pub struct IllegalTransition {
    pub from: &'static str,
    pub to: &'static str,
}

pub fn transition(from: Status, to: Status) -> Result<Status, IllegalTransition> {
    if from.can_move_to(to) {
        Ok(to)
    } else {
        Err(IllegalTransition {
            from: from.as_str(),
            to: to.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn happy_path_is_allowed() {
        assert!(transition(AwaitingVerification, Verified).is_ok());
        assert!(transition(Verified, Escalated).is_ok());
        assert!(transition(Escalated, Completed).is_ok());
        assert!(transition(Verified, AwaitingNewEmail).is_ok());
    }

    #[test]
    fn never_backwards_or_out_of_a_final_state() {
        for (from, to) in [
            (Verified, AwaitingVerification),
            (Escalated, Verified),
            (Completed, Escalated),
            (Rejected, Completed),
            (Expired, Verified),
            (AwaitingVerification, Completed),
            (AwaitingVerification, Escalated),
            (Processing, Verified),
            (Verified, Verified),
        ] {
            let err = transition(from, to).unwrap_err();
            assert_eq!(err.from, from.as_str());
        }
    }

    #[test]
    fn final_states_have_no_way_out() {
        for from in [Completed, Rejected, Expired, Cancelled] {
            assert!(from.is_final());
            for to in [
                AwaitingVerification,
                Verified,
                AwaitingNewEmail,
                Processing,
                Escalated,
                Completed,
                Rejected,
                Expired,
                Cancelled,
            ] {
                assert!(!from.can_move_to(to));
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for k in RequestKind::ALL {
            assert_eq!(RequestKind::parse(k.as_str()), Some(k));
            assert_eq!(RequestKind::from_slug(k.slug()), Some(k));
        }
        assert_eq!(Status::parse("awaiting_new_email"), Some(AwaitingNewEmail));
    }
}
