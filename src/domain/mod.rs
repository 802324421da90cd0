//! Pure types and rules: no I/O, `now` is always passed in.

pub mod authority;
pub mod blockers;
pub mod deadline;
pub mod email;
pub mod knowledge;
pub mod locale;
pub mod request;

pub use email::Email;
pub use locale::Locale;
pub use request::{RequestKind, Status};
