//! Validated names shared by every layer: datasets, regions and tags.
//!
//! A name is 1–64 characters of ASCII letters, digits, `-`, `_` and `.`, starting with a
//! letter or digit. That keeps names safe inside object keys, file paths, metric labels
//! and log lines without any quoting.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} name {name:?}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")]
pub struct NameError {
    pub what: &'static str,
    pub name: String,
}

fn check(what: &'static str, name: &str) -> Result<(), NameError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() <= 64 && first_ok && name.chars().all(ok_char) {
        Ok(())
    } else {
        Err(NameError {
            what,
            name: name.to_string(),
        })
    }
}

macro_rules! name_type {
    ($ty:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(name: &str) -> Result<Self, NameError> {
                check($what, name)?;
                Ok(Self(name.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(DatasetName, "dataset");
name_type!(RegionName, "region");
name_type!(Tag, "tag");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        assert_eq!(DatasetName::new("train-data_v2.1").unwrap().as_str(), "train-data_v2.1");
    }

    #[test]
    fn rejects_empty_slash_and_leading_dash() {
        for bad in ["", "a/b", "-x", "with space", &"x".repeat(65)] {
            assert!(RegionName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
