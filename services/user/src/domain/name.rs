//! `UserName`: the display and shipping name.

use std::fmt;

pub const MAX_LEN: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl UserName {
    /// Trimmed; 1–100 characters; no control characters (they break labels
    /// and logs).
    pub fn parse(raw: &str) -> Result<Self, UserNameError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(UserNameError::Empty);
        }
        if s.chars().count() > MAX_LEN {
            return Err(UserNameError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(UserNameError::ControlCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  Ada  ").expect("valid").as_str(), "Ada");
        assert_eq!(UserName::parse("   "), Err(UserNameError::Empty));
        assert_eq!(UserName::parse(&"é".repeat(101)), Err(UserNameError::TooLong));
        assert_eq!(UserName::parse("a\u{0}b"), Err(UserNameError::ControlCharacter));
    }

    proptest! {
        #[test]
        fn printable_names_within_bounds_round_trip(s in "[\\p{L}\\p{N}][\\p{L}\\p{N} .'-]{0,98}[\\p{L}\\p{N}]") {
            let n = UserName::parse(&s).expect("valid");
            prop_assert_eq!(n.as_str(), s.as_str());
        }
    }
}
