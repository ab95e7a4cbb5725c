//! `Password`: a plaintext password on its way to the hasher.
//!
//! It never prints (not in `Debug`, not in logs) and is dropped as soon as it
//! is hashed or verified.

use std::fmt;

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 128;

#[derive(Clone)]
pub struct Password(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {MIN_LEN} characters")]
    TooShort,
    #[error("must be at most {MAX_LEN} characters")]
    TooLong,
}

impl Password {
    /// Length counts characters, not bytes, so "ü" is one. The upper bound
    /// also caps the work an attacker can make the hasher do.
    pub fn parse(raw: &str) -> Result<Self, PasswordError> {
        match raw.chars().count() {
            n if n < MIN_LEN => Err(PasswordError::TooShort),
            n if n > MAX_LEN => Err(PasswordError::TooLong),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    /// For log-in: a wrong-length password is simply a wrong password, but it
    /// must still cost a hash (so its length reveals nothing). Bounded, so a
    /// huge body cannot make hashing expensive.
    pub fn for_login(raw: &str) -> Self {
        Self(raw.chars().take(MAX_LEN).collect())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_counted_in_characters() {
        assert_eq!(Password::parse("123456789").err(), Some(PasswordError::TooShort));
        assert!(Password::parse("üüüüüüüüüü").is_ok());
        assert_eq!(Password::parse(&"x".repeat(129)).err(), Some(PasswordError::TooLong));
        assert!(Password::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::parse("correct horse battery").expect("valid");
        assert!(!format!("{p:?}").contains("horse"));
    }

    proptest! {
        #[test]
        fn any_string_of_valid_length_is_accepted_verbatim(s in "\\PC{10,128}") {
            let p = Password::parse(&s).expect("valid length");
            prop_assert_eq!(p.expose(), s.as_str());
        }
    }
}
