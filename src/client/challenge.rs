//! `WWW-Authenticate` challenges (RFC 7235) as registries send them.
//!
//! A header value may hold several challenges (`Basic realm="r", Bearer realm="t"`), and
//! a response may repeat the header. Parameter names are case-insensitive; values are
//! tokens or quoted strings, in which commas, `=` and spaces are ordinary characters and
//! a backslash escapes the next character.

use std::collections::BTreeMap;

/// The authentication scheme of a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer`: get a token from the `realm` (the Docker token flow).
    Bearer,
    /// `Basic`: send the user name and password with every request.
    Basic,
    /// Any other scheme, lower-cased.
    Other(String),
}

/// One challenge: its scheme and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme.
    pub scheme: Scheme,
    /// The parameters, e.g. `realm`, `service`, `scope`, `error`.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive), if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The `realm` parameter.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    /// The `service` parameter (a Bearer challenge's token audience).
    pub fn service(&self) -> Option<&str> {
        self.param("service")
    }

    /// The `scope` parameter: space-separated scopes the request needs.
    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }

    /// The `error` parameter (e.g. `invalid_token` when a presented token was refused).
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }
}

/// Parse every challenge of every given `WWW-Authenticate` header value, in order.
/// Malformed parts are skipped rather than failing the whole header.
pub fn parse_challenges<'v>(values: impl IntoIterator<Item = &'v str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        Parser::new(value).challenges(&mut out);
    }
    out
}

/// A cursor over one header value.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/:".contains(c)
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t']);
        self.pos = self.text.len() - trimmed.len();
    }

    fn skip_separators(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t', ',']);
        self.pos = self.text.len() - trimmed.len();
    }

    fn token(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    /// A quoted string (the cursor is on its opening quote); unterminated ones run to
    /// the end of the value.
    fn quoted(&mut self) -> String {
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        let mut end = self.rest().len();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = i + 1;
                    break;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                }
                other => out.push(other),
            }
        }
        self.pos += end;
        out
    }

    fn challenges(&mut self, out: &mut Vec<Challenge>) {
        loop {
            self.skip_separators();
            if self.peek().is_none() {
                return;
            }
            let scheme = self.token();
            if scheme.is_empty() {
                // Not a token: skip one character and resynchronise.
                self.pos += self.peek().map_or(1, char::len_utf8);
                continue;
            }
            let params = self.params();
            out.push(Challenge {
                scheme: match scheme.to_ascii_lowercase().as_str() {
                    "bearer" => Scheme::Bearer,
                    "basic" => Scheme::Basic,
                    other => Scheme::Other(other.to_string()),
                },
                params,
            });
        }
    }

    /// The `name=value` pairs following a scheme, up to the next scheme.
    fn params(&mut self) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        loop {
            let start = self.pos;
            self.skip_separators();
            let name = self.token();
            self.skip_ws();
            if name.is_empty() || self.peek() != Some('=') {
                // The next challenge's scheme (or the end): leave it for the caller.
                self.pos = start;
                return params;
            }
            self.pos += 1;
            self.skip_ws();
            let value = match self.peek() {
                Some('"') => self.quoted(),
                _ => {
                    // A token, or the padding of a token68 (`abc==`).
                    let v = self.token().to_string();
                    let padding = self.rest().len() - self.rest().trim_start_matches('=').len();
                    self.pos += padding;
                    v
                }
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Challenge {
        let all = parse_challenges([value]);
        assert_eq!(all.len(), 1, "{value}: {all:?}");
        all.into_iter().next().unwrap()
    }

    #[test]
    fn parses_a_bearer_challenge_with_commas_inside_quotes() {
        let c = one(
            r#"Bearer realm="https://r.example:5000/token",service="imgflow",scope="repository:team/app:pull,push""#,
        );
        assert_eq!(c.scheme, Scheme::Bearer);
        assert_eq!(c.realm(), Some("https://r.example:5000/token"));
        assert_eq!(c.service(), Some("imgflow"));
        assert_eq!(c.scope(), Some("repository:team/app:pull,push"));
        assert_eq!(c.error(), None);
    }

    #[test]
    fn handles_case_spaces_escapes_and_unquoted_values() {
        let c = one(
            r#"bEaReR  Realm = "a \"quoted\" realm, with = signs" , SERVICE=svc.example,error="invalid_token""#,
        );
        assert_eq!(c.scheme, Scheme::Bearer);
        assert_eq!(c.realm(), Some(r#"a "quoted" realm, with = signs"#));
        assert_eq!(c.service(), Some("svc.example"));
        assert_eq!(c.error(), Some("invalid_token"));
    }

    #[test]
    fn splits_several_challenges_in_one_value_and_across_values() {
        let all = parse_challenges([
            r#"Basic realm="imgflow", charset="UTF-8", Bearer realm="https://t/token",scope="a:b:c d:e:f""#,
            "Negotiate abc==, Bearer realm=x",
        ]);
        let schemes: Vec<_> = all.iter().map(|c| c.scheme.clone()).collect();
        assert_eq!(
            schemes,
            [
                Scheme::Basic,
                Scheme::Bearer,
                Scheme::Other("negotiate".into()),
                Scheme::Bearer
            ]
        );
        assert_eq!(all[0].param("charset"), Some("UTF-8"));
        assert_eq!(all[1].scope(), Some("a:b:c d:e:f"));
        assert_eq!(all[3].realm(), Some("x"));
    }

    #[test]
    fn tolerates_malformed_values() {
        assert!(parse_challenges([""]).is_empty());
        assert!(parse_challenges([" , ,"]).is_empty());
        let c = one(r#"Bearer realm="unterminated, service=x"#);
        assert_eq!(c.realm(), Some("unterminated, service=x"));
        assert_eq!(c.service(), None);
        let all = parse_challenges([r#"="x", Basic"#]);
        assert_eq!(all.last().map(|c| &c.scheme), Some(&Scheme::Basic));
        assert!(one("Basic").params.is_empty());
    }
}
