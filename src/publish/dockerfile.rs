//! The image references of a Dockerfile: what its `FROM` lines (every stage) and
//! `COPY --from=` name, with the global `ARG`s (those before the first `FROM`) and the
//! build arguments substituted the way the builder does.
//!
//! Only what dependency inference needs is read: logical lines (continuations joined,
//! comments dropped, the `escape` parser directive honoured), `ARG` defaults before the
//! first `FROM`, stage names, and `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`.

use std::collections::{BTreeMap, HashSet};

/// One image reference found in a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as written, e.g. `${REGISTRY}/team/base:1.0`.
    pub written: String,
    /// The reference with variables substituted; `None` when it uses a form that is not
    /// understood here (such as `${VAR#prefix}`).
    pub resolved: Option<String>,
    /// 1-based line of the instruction.
    pub line: usize,
    /// `FROM` or `COPY --from`.
    pub instruction: &'static str,
    /// Variables it uses that no `ARG` before the first `FROM` declares (the builder
    /// substitutes an empty string for them).
    pub undeclared: Vec<String>,
}

/// One instruction: its first line, keyword (upper case) and the rest.
struct Instruction {
    line: usize,
    keyword: String,
    rest: String,
}

/// The logical instructions of `text`.
fn instructions(text: &str) -> Vec<Instruction> {
    let escape = escape_char(text);
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') || (current.is_none() && trimmed.is_empty()) {
            continue;
        }
        let body = raw.trim_end();
        let (body, continues) = match body.strip_suffix(escape) {
            Some(b) => (b, true),
            None => (body, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push_str(body);
        if continues {
            entry.1.push(' ');
        } else if let Some((line, full)) = current.take() {
            out.extend(split_instruction(line, &full));
        }
    }
    if let Some((line, full)) = current {
        out.extend(split_instruction(line, &full));
    }
    out
}

fn split_instruction(line: usize, full: &str) -> Option<Instruction> {
    let full = full.trim();
    let (keyword, rest) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
    (!keyword.is_empty()).then(|| Instruction {
        line,
        keyword: keyword.to_ascii_uppercase(),
        rest: rest.trim().to_string(),
    })
}

/// The escape character: `\` unless a leading `# escape=` parser directive says otherwise.
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = directive.split_once('=') else {
            break;
        };
        if key.trim().eq_ignore_ascii_case("escape") {
            return value.trim().chars().next().unwrap_or('\\');
        }
    }
    '\\'
}

/// The image references of the Dockerfile `text`, given the build arguments `args`.
pub fn image_refs(text: &str, args: &BTreeMap<String, String>) -> Vec<ImageRef> {
    let mut globals: BTreeMap<String, String> = BTreeMap::new();
    let mut declared: HashSet<String> = HashSet::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut seen_from = false;
    let mut refs = Vec::new();
    for ins in instructions(text) {
        match ins.keyword.as_str() {
            "ARG" if !seen_from => {
                for decl in ins.rest.split_whitespace() {
                    let (name, default) = decl.split_once('=').unwrap_or((decl, ""));
                    let value = args.get(name).cloned().unwrap_or_else(|| unquote(default));
                    declared.insert(name.to_string());
                    globals.insert(name.to_string(), value);
                }
            }
            "FROM" => {
                seen_from = true;
                let mut words = ins.rest.split_whitespace().filter(|w| !w.starts_with("--"));
                let Some(image) = words.next() else { continue };
                let alias = match (words.next(), words.next()) {
                    (Some(kw), Some(name)) if kw.eq_ignore_ascii_case("as") => Some(name),
                    _ => None,
                };
                refs.push(resolve(image, ins.line, "FROM", &globals, &declared));
                if let Some(alias) = alias {
                    stages.insert(alias.to_ascii_lowercase());
                }
            }
            "COPY" => {
                let from = ins
                    .rest
                    .split_whitespace()
                    .take_while(|w| w.starts_with("--"))
                    .find_map(|w| w.strip_prefix("--from="));
                if let Some(from) = from {
                    let is_stage = stages.contains(&from.to_ascii_lowercase())
                        || from.chars().all(|c| c.is_ascii_digit());
                    if !is_stage {
                        refs.push(resolve(from, ins.line, "COPY --from", &globals, &declared));
                    }
                }
            }
            _ => {}
        }
    }
    // A FROM naming an earlier stage is no image.
    refs.retain(|r| {
        r.instruction != "FROM"
            || r.resolved
                .as_ref()
                .is_none_or(|s| !stages.contains(&s.to_ascii_lowercase()))
    });
    refs
}

fn resolve(
    written: &str,
    line: usize,
    instruction: &'static str,
    globals: &BTreeMap<String, String>,
    declared: &HashSet<String>,
) -> ImageRef {
    let mut used = Vec::new();
    let resolved = substitute(written, globals, &mut used);
    let mut undeclared: Vec<String> = used.into_iter().filter(|v| !declared.contains(v)).collect();
    undeclared.dedup();
    ImageRef {
        written: written.to_string(),
        resolved,
        line,
        instruction,
        undeclared,
    }
}

/// Remove one pair of surrounding quotes.
fn unquote(s: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    s.to_string()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `text` with `$VAR`, `${VAR}`, `${VAR:-word}` and `${VAR:+word}` substituted from
/// `vars` (unset: empty); the names used are appended to `used`. `None` for other forms.
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    used: &mut Vec<String>,
) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            let close = matching_brace(braced)?;
            let inner = &braced[..close];
            let name_len = inner.find(|c| !is_name_char(c)).unwrap_or(inner.len());
            let (name, modifier) = inner.split_at(name_len);
            used.push(name.to_string());
            let value = vars.get(name).map(String::as_str).unwrap_or("");
            let piece = match modifier.get(..2) {
                None if modifier.is_empty() => value.to_string(),
                Some(":-") if value.is_empty() => substitute(&modifier[2..], vars, used)?,
                Some(":-") => value.to_string(),
                Some(":+") if value.is_empty() => String::new(),
                Some(":+") => substitute(&modifier[2..], vars, used)?,
                _ => return None,
            };
            out.push_str(&piece);
            rest = &braced[close + 1..];
        } else {
            let name_len = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            if name_len == 0 {
                out.push('$');
            } else {
                let name = &after[..name_len];
                used.push(name.to_string());
                out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
            }
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    Some(out)
}

/// The index of the `}` closing a `${` whose text after the brace is `text` (nested
/// `${...}` in a default word included).
fn matching_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The parts of an image reference that name a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefParts<'a> {
    /// The registry host (and port), when the reference names one.
    pub host: Option<&'a str>,
    /// The repository path, e.g. `team/base`.
    pub repository: &'a str,
}

/// Split `reference` (`[host[:port]/]path[:tag][@digest]`) the way Docker does: the first
/// component is a host when it contains `.` or `:` or is `localhost`. A leading `/` (an
/// empty `$REGISTRY`) is dropped.
pub fn split_reference(reference: &str) -> RefParts<'_> {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    let no_tag = match no_digest[last_slash..].find(':') {
        Some(colon) => &no_digest[..last_slash + colon],
        None => no_digest,
    };
    let path = no_tag.trim_start_matches('/');
    match path.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => RefParts {
            host: Some(first),
            repository: rest,
        },
        _ => RefParts {
            host: None,
            repository: path,
        },
    }
}

#[cfg(test)]
mod tests;
