//! Regexes of check files, compiled while the YAML is read so that a bad one is an error
//! at its own line.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A regular expression of a check (RE2-like syntax, as container-structure-test uses).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compile `source`.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        Ok(Pattern {
            source: source.to_string(),
            regex: regex::Regex::new(source)?,
        })
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` contains a match.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

/// The message of a regex that does not compile (its first line: the rest is a picture).
fn bad_regex(source: &str, e: &regex::Error) -> String {
    let detail = match e {
        regex::Error::Syntax(s) => s.lines().last().unwrap_or_default().to_string(),
        other => other.to_string(),
    };
    format!("invalid regex {source:?}: {detail}")
}

struct PatternVisitor;

impl Visitor<'_> for PatternVisitor {
    type Value = Pattern;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a regular expression")
    }

    // Compiling inside the visitor makes the YAML reader attach this scalar's line.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Pattern, E> {
        Pattern::new(v).map_err(|e| E::custom(bad_regex(v, &e)))
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        d.deserialize_str(PatternVisitor)
    }
}

/// A `key`/`value` pair (environment variables, labels); with `isRegex` the value is a
/// regex the actual value must match.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// The variable or label name.
    pub key: String,
    /// The expected value (absent in `unboundEnvVars`: empty).
    pub value: String,
    /// The value compiled, when `isRegex` is true.
    pub regex: Option<Pattern>,
}

/// The pair as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKeyValue {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    is_regex: bool,
}

struct KeyValueVisitor;

impl<'de> Visitor<'de> for KeyValueVisitor {
    type Value = KeyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with key, value and optionally isRegex")
    }

    // Inside the visitor, a regex error is attached to this mapping's line.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<KeyValue, A::Error> {
        let raw = RawKeyValue::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let regex = if raw.is_regex {
            let p = Pattern::new(&raw.value).map_err(|e| {
                de::Error::custom(format!("{}: {}", raw.key, bad_regex(&raw.value, &e)))
            })?;
            Some(p)
        } else {
            None
        };
        Ok(KeyValue {
            key: raw.key,
            value: raw.value,
            regex,
        })
    }
}

impl<'de> Deserialize<'de> for KeyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyValue, D::Error> {
        d.deserialize_map(KeyValueVisitor)
    }
}
