//! Tag templates of `imgflow.toml` (`"3.5.1"`, `"{git}"`, `"nightly-{date}"`) and the
//! values they expand to: the source's git commit and the UTC date.

use crate::oci::Tag;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use time::OffsetDateTime;

/// Why a tag template is invalid or cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// A `{...}` placeholder other than `{git}` and `{date}`, or an unclosed `{`.
    #[error("tag {template:?}: unknown placeholder {placeholder:?} (known: {{git}}, {{date}})")]
    UnknownPlaceholder {
        /// The template.
        template: String,
        /// What stood between the braces (or after an unclosed `{`).
        placeholder: String,
    },
    /// The template (with sample values for its placeholders) is not a valid tag.
    #[error("tag {template:?} is not a valid tag: up to 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    Invalid {
        /// The template.
        template: String,
    },
    /// `{git}` is used but the directory is not inside a git work tree.
    #[error("tag {template:?} uses {{git}}, but {dir} is not in a git work tree with a commit")]
    NoGit {
        /// The template.
        template: String,
        /// The directory asked.
        dir: String,
    },
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Git,
    Date,
}

/// A parsed tag template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl TagTemplate {
    /// Parse `text`, rejecting unknown placeholders and anything that cannot become a
    /// valid tag.
    pub fn parse(text: &str) -> Result<TagTemplate, TagError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}');
            let name = close.map_or(after, |c| &after[..c]);
            let piece = match (name, close) {
                ("git", Some(_)) => Piece::Git,
                ("date", Some(_)) => Piece::Date,
                _ => {
                    return Err(TagError::UnknownPlaceholder {
                        template: text.to_string(),
                        placeholder: name.to_string(),
                    })
                }
            };
            pieces.push(piece);
            rest = &after[name.len() + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        let template = TagTemplate {
            source: text.to_string(),
            pieces,
        };
        // The longest values the placeholders take: a 40-hex commit with "-dirty", a date.
        let sample = TagContext {
            git: Some(GitState {
                commit: "0".repeat(40),
                dirty: true,
            }),
            date: "20000101".to_string(),
        };
        template.expand(&sample, Path::new("."))?;
        Ok(template)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `{git}`.
    pub fn uses_git(&self) -> bool {
        self.pieces.contains(&Piece::Git)
    }

    /// The tag for `ctx`; `dir` is only named in the error when `{git}` has no value.
    pub fn expand(&self, ctx: &TagContext, dir: &Path) -> Result<Tag, TagError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Date => out.push_str(&ctx.date),
                Piece::Git => match &ctx.git {
                    Some(g) => out.push_str(&g.describe()),
                    None => {
                        return Err(TagError::NoGit {
                            template: self.source.clone(),
                            dir: dir.display().to_string(),
                        })
                    }
                },
            }
        }
        Tag::from_str(&out).map_err(|_| TagError::Invalid {
            template: self.source.clone(),
        })
    }
}

/// The state of the git work tree holding `imgflow.toml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GitState {
    /// The short commit hash of `HEAD`.
    pub commit: String,
    /// Whether tracked files differ from `HEAD` or untracked, not ignored files exist
    /// (they may be in a build context, so the image may not be the commit's).
    pub dirty: bool,
}

impl GitState {
    /// The state of the work tree containing `dir`; `None` when it is not in one, has no
    /// commit yet, or git is not installed.
    pub fn discover(dir: &Path) -> Option<GitState> {
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let commit = git(&["rev-parse", "--short", "HEAD"])?.trim().to_string();
        let status = git(&["status", "--porcelain"])?;
        Some(GitState {
            commit,
            dirty: !status.trim().is_empty(),
        })
    }

    /// What `{git}` expands to: the short commit, with `-dirty` when the tree is dirty.
    pub fn describe(&self) -> String {
        if self.dirty {
            format!("{}-dirty", self.commit)
        } else {
            self.commit.clone()
        }
    }
}

/// The values of the placeholders for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagContext {
    /// The git state, `None` outside a work tree.
    pub git: Option<GitState>,
    /// `{date}`: the UTC date as YYYYMMDD.
    pub date: String,
}

impl TagContext {
    /// The context for files in `dir` at time `now`.
    pub fn new(dir: &Path, now: OffsetDateTime) -> TagContext {
        TagContext {
            git: GitState::discover(dir),
            date: utc_date(now),
        }
    }
}

/// `now` in UTC as YYYYMMDD.
pub fn utc_date(now: OffsetDateTime) -> String {
    let d = now.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests;
