//! Compose-style variable interpolation in image references (`$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`,
//! `${VAR:+other}`, `${VAR+other}`, and `$$` for a literal `$`).
//!
//! Only used to learn which image a reference names; the file keeps its variables.

use std::collections::HashMap;

/// Why a reference with variables cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarProblem {
    /// A variable has no value and no default.
    Unset(String),
    /// `${VAR?message}` with `VAR` unset (or empty, for `:?`).
    Required {
        /// The variable.
        name: String,
        /// The message written after `?`.
        message: String,
    },
    /// Syntax this expander does not read (e.g. nested variables in a default).
    Unsupported(String),
}

/// Expands the variables of `text` from `vars`.
pub fn expand(text: &str, vars: &HashMap<String, String>) -> Result<String, VarProblem> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let close = inner
                .find('}')
                .ok_or_else(|| VarProblem::Unsupported(text.to_string()))?;
            out.push_str(&braced(&inner[..close], vars, text)?);
            rest = &inner[close + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err(VarProblem::Unsupported(text.to_string()));
            }
            out.push_str(lookup(&after[..len], vars)?);
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first()
        .is_none_or(|c| !(c.is_ascii_alphabetic() || *c == b'_'))
    {
        return 0;
    }
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

fn lookup<'a>(name: &str, vars: &'a HashMap<String, String>) -> Result<&'a str, VarProblem> {
    vars.get(name)
        .map(String::as_str)
        .ok_or_else(|| VarProblem::Unset(name.to_string()))
}

/// Expands the inside of `${...}`.
fn braced(inner: &str, vars: &HashMap<String, String>, text: &str) -> Result<String, VarProblem> {
    let len = name_len(inner);
    let (name, op) = inner.split_at(len);
    if len == 0 || op.contains(['$', '{']) {
        return Err(VarProblem::Unsupported(text.to_string()));
    }
    let value = vars.get(name).map(String::as_str);
    // With a colon, an empty value counts as unset.
    let (colon, op) = match op.strip_prefix(':') {
        Some(op) => (true, op),
        None => (false, op),
    };
    let set = value.is_some_and(|v| !(colon && v.is_empty()));
    let (kind, arg) = match op.chars().next() {
        None if !colon => return lookup(name, vars).map(str::to_string),
        Some(k @ ('-' | '?' | '+')) => (k, &op[1..]),
        _ => return Err(VarProblem::Unsupported(text.to_string())),
    };
    Ok(match (kind, set) {
        ('-', true) | ('?', true) => value.unwrap_or_default().to_string(),
        ('-', false) => arg.to_string(),
        ('?', false) => {
            return Err(VarProblem::Required {
                name: name.to_string(),
                message: arg.to_string(),
            })
        }
        ('+', true) => arg.to_string(),
        _ => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_compose_forms() {
        let vars: HashMap<String, String> = [("REGISTRY", "reg:5000"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ok = |s: &str| expand(s, &vars).unwrap();
        assert_eq!(ok("${REGISTRY}/team/spark:1"), "reg:5000/team/spark:1");
        assert_eq!(ok("$REGISTRY/x"), "reg:5000/x");
        assert_eq!(ok("${NOPE:-def:1}/x"), "def:1/x");
        assert_eq!(ok("${EMPTY:-def}/x"), "def/x");
        assert_eq!(ok("${EMPTY-def}x"), "x");
        assert_eq!(ok("${REGISTRY:?needed}/x"), "reg:5000/x");
        assert_eq!(ok("a${REGISTRY:+b}c${NOPE+d}"), "abc");
        assert_eq!(ok("a$$b"), "a$b");
        assert_eq!(ok("plain"), "plain");
        assert_eq!(
            expand("${NOPE}/x", &vars),
            Err(VarProblem::Unset("NOPE".into()))
        );
        assert_eq!(
            expand("$NOPE/x", &vars),
            Err(VarProblem::Unset("NOPE".into()))
        );
        assert_eq!(
            expand("${EMPTY:?set it}", &vars),
            Err(VarProblem::Required {
                name: "EMPTY".into(),
                message: "set it".into()
            })
        );
        for bad in ["${A:-${B}}", "${", "$1x", "${-x}", "${A*}"] {
            assert!(
                matches!(expand(bad, &vars), Err(VarProblem::Unsupported(_))),
                "{bad:?}"
            );
        }
    }
}
