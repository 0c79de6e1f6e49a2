//! Finding the line of a configuration key in the text of the user's file, so that errors
//! found after merging (when positions are gone) can still name it.

use crate::access::KeyPart;
use toml_edit::{ImDocument, Item};

/// The 1-based line in `text` of the value at `path`, or of the nearest enclosing key or
/// table that the text has; `None` when the text does not parse or has none of it.
pub(super) fn line_of(text: &str, path: &[KeyPart]) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut item: &Item = doc.as_item();
    let mut span = None;
    for part in path {
        let next = match part {
            KeyPart::Key(k) => {
                let Some(table) = item.as_table_like() else {
                    break;
                };
                let found = table.get(k);
                let key_span = table.key(k).and_then(|key| key.span());
                span = key_span.or(found.and_then(Item::span)).or(span);
                found
            }
            KeyPart::Index(i) => {
                let found = item.get(*i);
                span = found.and_then(Item::span).or(span);
                found
            }
        };
        match next {
            Some(n) => item = n,
            None => break,
        }
    }
    span.map(|s| text[..s.start].matches('\n').count() + 1)
}

/// The key path of a serde error: its `path` plus, for an unknown field, that field.
pub(super) fn error_path(path: &serde_path_to_error::Path, message: &str) -> Vec<KeyPart> {
    use serde_path_to_error::Segment;
    let mut parts: Vec<KeyPart> = path
        .iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(KeyPart::Index(*index)),
            Segment::Map { key } => Some(KeyPart::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect();
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        if parts.last() != Some(&KeyPart::Key(field.to_string())) {
            parts.push(KeyPart::Key(field.to_string()));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> KeyPart {
        KeyPart::Key(s.to_string())
    }

    const TEXT: &str = "\
# comment
[server]
listen = \"127.0.0.1:1\"

[access.networks]
lab = [\"10.0.0.0/8\",
       \"bad\"]

[[access.rule]]
allow = [\"pull\"]

[[access.rule]]
from = [\"nowhere\"]
allow = [\"push\"]
";

    #[test]
    fn finds_keys_values_and_array_elements() {
        assert_eq!(line_of(TEXT, &[k("server"), k("listen")]), Some(3));
        assert_eq!(
            line_of(TEXT, &[k("access"), k("networks"), k("lab")]),
            Some(6)
        );
        let bad = [k("access"), k("networks"), k("lab"), KeyPart::Index(1)];
        assert_eq!(line_of(TEXT, &bad), Some(7));
        let from = [
            k("access"),
            k("rule"),
            KeyPart::Index(1),
            k("from"),
            KeyPart::Index(0),
        ];
        assert_eq!(line_of(TEXT, &from), Some(13));
        let second_rule = [k("access"), k("rule"), KeyPart::Index(1), k("nope")];
        assert_eq!(line_of(TEXT, &second_rule), Some(12));
    }

    #[test]
    fn missing_keys_fall_back_to_the_nearest_ancestor_or_none() {
        assert_eq!(line_of(TEXT, &[k("server"), k("nope")]), Some(2));
        let below_a_value = [k("server"), k("listen"), k("x"), KeyPart::Index(0)];
        assert_eq!(line_of(TEXT, &below_a_value), Some(3));
        assert_eq!(line_of(TEXT, &[k("storage"), k("x")]), None);
        assert_eq!(line_of("not toml [", &[k("server")]), None);
    }
}
