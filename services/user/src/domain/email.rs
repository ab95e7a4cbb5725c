//! `Email`: a plausible, normalised email address.
//!
//! Uniqueness is case-insensitive (docs/api.md), so the canonical form compares
//! lower-cased while the address is kept as the user typed it (trimmed).

use std::fmt;

/// Longest address SMTP can carry (RFC 5321, 4.5.3.1.3).
const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("must be an email address like name@example.com")]
    Malformed,
}

impl Email {
    /// Accepts `local@domain` where the local part has no spaces or control
    /// characters and the domain is dot-separated labels of letters, digits
    /// and hyphens. Deliberately not all of RFC 5322: quoted local parts and
    /// address literals are legal but not what a shop needs to accept.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let s = raw.trim();
        if s.chars().count() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= MAX_LOCAL_LEN
            && local.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '@' && c != '"')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok { Ok(Self(s.to_owned())) } else { Err(EmailError::Malformed) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness and log-in compare: lower-cased.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Emails are personal data: logs see only the domain.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.rsplit_once('@').map_or("", |(_, d)| d);
        write!(f, "Email(***@{domain})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_addresses_parse_and_keep_their_case() {
        let e = Email::parse("  Ada.Lovelace+shop@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "Ada.Lovelace+shop@Example.COM");
        assert_eq!(e.canonical(), "ada.lovelace+shop@example.com");
    }

    #[test]
    fn addresses_without_a_proper_domain_or_local_part_are_rejected() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "a@exa mple.com",
            "a@-x.com",
            "a@x-.com",
            "a@.com",
            "a..b@example.com",
            ".a@example.com",
            "a@b..com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn overlong_addresses_are_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn debug_output_hides_the_local_part() {
        let e = Email::parse("secret@example.com").expect("valid");
        assert_eq!(format!("{e:?}"), "Email(***@example.com)");
    }

    proptest! {
        #[test]
        fn generated_valid_addresses_parse_and_canonicalise_to_lowercase(
            local in "[A-Za-z0-9_+-]{1,30}", domain in "[a-z0-9]{1,20}", tld in "[a-z]{2,6}"
        ) {
            let raw = format!("{local}@{domain}.{tld}");
            let e = Email::parse(&raw).expect("valid");
            prop_assert_eq!(e.as_str(), raw.as_str());
            prop_assert_eq!(e.canonical(), raw.to_lowercase());
        }

        #[test]
        fn strings_without_an_at_sign_never_parse(s in "[^@]{0,80}") {
            prop_assert!(Email::parse(&s).is_err());
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,300}") {
            let _ = Email::parse(&s);
        }
    }
}
