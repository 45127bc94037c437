//! Countries (validated ISO 3166-1 alpha-2 codes) and the built-in jurisdictions:
//! `EU`, `EEA`, and every country code standing for itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted so that lookups can bisect.
#[rustfmt::skip]
pub const ISO_3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ",
    "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ",
    "DE", "DJ", "DK", "DM", "DO", "DZ",
    "EC", "EE", "EG", "EH", "ER", "ES", "ET",
    "FI", "FJ", "FK", "FM", "FO", "FR",
    "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY",
    "HK", "HM", "HN", "HR", "HT", "HU",
    "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT",
    "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ",
    "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ",
    "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM",
    "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY",
    "QA",
    "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV", "SX", "SY", "SZ",
    "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ",
    "UA", "UG", "UM", "US", "UY", "UZ",
    "VA", "VC", "VE", "VG", "VI", "VN", "VU",
    "WF", "WS",
    "YE", "YT",
    "ZA", "ZM", "ZW",
];

/// Member states of the European Union as of 2026.
#[rustfmt::skip]
pub const EU_MEMBERS: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "HU",
];

/// The European Economic Area adds these to the EU.
pub const EEA_EXTRA: &[&str] = &["IS", "LI", "NO"];

/// Names of the built-in multi-country jurisdictions.
pub const BUILTIN_SETS: &[&str] = &["EU", "EEA"];

/// An officially assigned ISO 3166-1 alpha-2 country code, upper case.
///
/// Holds the code's entry of [`ISO_3166_ALPHA2`], so a `Country` cannot exist
/// for anything else.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country(&'static str);

/// A string that is not an officially assigned ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown country code {0:?} (expected an ISO 3166-1 alpha-2 code such as FR)")]
pub struct UnknownCountry(pub String);

impl Country {
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl FromStr for Country {
    type Err = UnknownCountry;

    fn from_str(code: &str) -> Result<Self, UnknownCountry> {
        match ISO_3166_ALPHA2.binary_search(&code) {
            Ok(index) => Ok(Country(ISO_3166_ALPHA2[index])),
            Err(_) => Err(UnknownCountry(code.to_owned())),
        }
    }
}

impl TryFrom<String> for Country {
    type Error = UnknownCountry;

    fn try_from(code: String) -> Result<Self, UnknownCountry> {
        code.parse()
    }
}

impl From<Country> for String {
    fn from(country: Country) -> String {
        country.0.to_owned()
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.0)
    }
}

/// Every built-in jurisdiction by name: `EU`, `EEA` and one per country code.
pub(crate) static BUILTIN: LazyLock<BTreeMap<&'static str, BTreeSet<Country>>> = LazyLock::new(|| {
    let set = |codes: &[&[&str]]| -> BTreeSet<Country> {
        codes.iter().flat_map(|list| list.iter()).filter_map(|code| code.parse().ok()).collect()
    };
    let mut map: BTreeMap<&'static str, BTreeSet<Country>> =
        ISO_3166_ALPHA2.iter().map(|code| (*code, set(&[std::slice::from_ref(code)]))).collect();
    map.insert("EU", set(&[EU_MEMBERS]));
    map.insert("EEA", set(&[EU_MEMBERS, EEA_EXTRA]));
    map
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_list_is_complete_sorted_and_unique() {
        assert_eq!(ISO_3166_ALPHA2.len(), 249);
        assert!(ISO_3166_ALPHA2.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ISO_3166_ALPHA2.iter().all(|code| code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn only_assigned_upper_case_codes_parse() {
        assert_eq!("FR".parse::<Country>().map(|c| c.to_string()), Ok("FR".to_owned()));
        for bad in ["fr", "XX", "UK", "EU", "", "FRA"] {
            assert_eq!(bad.parse::<Country>(), Err(UnknownCountry(bad.to_owned())), "{bad}");
        }
    }

    #[test]
    fn builtin_sets_have_expected_sizes() {
        assert_eq!(BUILTIN["EU"].len(), 27);
        assert_eq!(BUILTIN["EEA"].len(), 30);
        assert_eq!(BUILTIN.len(), 251);
    }

    #[test]
    fn serde_is_a_plain_string() {
        let fr: Country = serde_json::from_str("\"FR\"").expect("FR parses");
        assert_eq!(serde_json::to_string(&fr).ok().as_deref(), Some("\"FR\""));
        assert!(serde_json::from_str::<Country>("\"XX\"").is_err());
    }
}
