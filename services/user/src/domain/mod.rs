//! The user area's domain: values that are valid by construction.
//!
//! Why it exists: every rule about what an email, a password, a name or a
//! shipping address may be lives here, once, for both builds. It depends on
//! nothing but `std`, `uuid`, `time` and `thiserror`; no web, SQL, cache or
//! broker types may appear in this module tree.

mod address;
mod email;
mod name;
mod password;
mod user;

pub use address::{Address, AddressError, CountryCode};
pub use email::{Email, EmailError};
pub use name::{UserName, UserNameError};
pub use password::{Password, PasswordError};
pub use user::{Stats, User, UserId, UserSummary};
