//! `Address`: a shipping address, copied onto every order placed with it.

use std::fmt;

use twinshop_platform::validation::FieldErrors;

/// The 249 officially assigned ISO 3166-1 alpha-2 codes.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ \
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ \
FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM \
JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT \
MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB \
SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// An assigned ISO 3166-1 alpha-2 country code, upper-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts an assigned code in either letter case ("de" → "DE").
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let upper = raw.trim().to_ascii_uppercase();
        let bytes = upper.as_bytes();
        if bytes.len() == 2
            && bytes.iter().all(u8::is_ascii_uppercase)
            && ISO_3166_ALPHA2.split(' ').any(|c| c == upper)
        {
            Ok(Self([bytes[0], bytes[1]]))
        } else {
            Err(AddressError::UnknownCountry)
        }
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII upper-case letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must be an ISO 3166-1 alpha-2 country code such as \"DE\"")]
    UnknownCountry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    line1: String,
    city: String,
    postal_code: String,
    country: CountryCode,
}

fn text(raw: &str, max: usize) -> Result<String, AddressError> {
    let s = raw.trim();
    if s.is_empty() {
        Err(AddressError::Empty)
    } else if s.chars().count() > max {
        Err(AddressError::TooLong(max))
    } else if s.chars().any(char::is_control) {
        Err(AddressError::ControlCharacter)
    } else {
        Ok(s.to_owned())
    }
}

impl Address {
    /// Parses every part and reports each bad one under `prefix.part`.
    pub fn parse(prefix: &str, line1: &str, city: &str, postal_code: &str, country: &str) -> Result<Self, FieldErrors> {
        Self::parse_parts(prefix, Some(line1), Some(city), Some(postal_code), Some(country))
    }

    /// Like [`Address::parse`] for a request where some parts were already
    /// rejected (`None`): the others are still checked, so one answer lists
    /// every problem; the result is `Ok` only if all four are good.
    pub fn parse_parts(
        prefix: &str,
        line1: Option<&str>,
        city: Option<&str>,
        postal_code: Option<&str>,
        country: Option<&str>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let line1 = line1.and_then(|v| errors.check(&format!("{prefix}.line1"), text(v, 200)));
        let city = city.and_then(|v| errors.check(&format!("{prefix}.city"), text(v, 100)));
        let postal_code = postal_code.and_then(|v| errors.check(&format!("{prefix}.postal_code"), text(v, 20)));
        let country = country.and_then(|v| errors.check(&format!("{prefix}.country"), CountryCode::parse(v)));
        match (line1, city, postal_code, country) {
            (Some(line1), Some(city), Some(postal_code), Some(country)) => {
                Ok(Self { line1, city, postal_code, country })
            }
            _ => Err(errors),
        }
    }

    pub fn line1(&self) -> &str {
        &self.line1
    }
    pub fn city(&self) -> &str {
        &self.city
    }
    pub fn postal_code(&self) -> &str {
        &self.postal_code
    }
    pub fn country(&self) -> &CountryCode {
        &self.country
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_complete_address_parses_with_a_normalised_country() {
        let a = Address::parse("address", " 1 Main St ", "Berlin", "10115", "de").expect("valid");
        assert_eq!(a.line1(), "1 Main St");
        assert_eq!(a.country().as_str(), "DE");
    }

    #[test]
    fn every_bad_part_is_reported_under_its_own_field() {
        let errs = Address::parse("address", "", "x", &"9".repeat(21), "XX").expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["address.line1", "address.postal_code", "address.country"]);
    }

    #[test]
    fn the_country_list_holds_every_assigned_code_once() {
        let codes: Vec<_> = ISO_3166_ALPHA2.split(' ').collect();
        assert_eq!(codes.len(), 249);
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, codes, "sorted and unique");
    }

    proptest! {
        #[test]
        fn country_parsing_accepts_exactly_listed_codes(s in "[A-Za-z]{2}") {
            let listed = ISO_3166_ALPHA2.split(' ').any(|c| c.eq_ignore_ascii_case(&s));
            prop_assert_eq!(CountryCode::parse(&s).is_ok(), listed);
        }
    }
}
