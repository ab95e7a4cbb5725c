//! The user area's use cases and the ports they need.
//!
//! Why it exists: this is the business logic both builds run. It talks to
//! storage and cache only through the traits in [`ports`], so the service
//! binary and the monolith plug in what they have. No web, SQL, cache or
//! broker types appear here.

pub mod passwords;
pub mod ports;
pub mod throttle;
pub mod tokens;
mod use_cases;

pub use use_cases::{
    LOGIN_ATTEMPTS, LOGIN_REFILL, LoginError, LookupError, NewUser, ProfileChanges, ProfileError, RegisterError,
    Session, UserService,
};
