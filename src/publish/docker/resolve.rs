//! Paths inside an image: normalising archive and query paths, and resolving symlinks the
//! way the kernel would inside the image's root (absolute targets start at the image root,
//! `..` stops at it), without touching the host's filesystem.

/// Symlinks followed at most while resolving one path (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;

/// What a path component turned out to be, as the resolver needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A symlink with its target as written.
    Symlink(String),
    /// Anything else (file, device, ...).
    Other,
}

/// Why a path does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// A component does not exist.
    Missing(String),
    /// A component that is not a directory has something below it.
    NotADirectory(String),
    /// More than [`MAX_SYMLINKS`] symlinks.
    TooManyLinks,
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Missing(p) => write!(f, "{p} does not exist"),
            ResolveError::NotADirectory(p) => write!(f, "{p} is not a directory"),
            ResolveError::TooManyLinks => write!(f, "more than {MAX_SYMLINKS} symlinks (a loop?)"),
        }
    }
}

/// The canonical form of a path inside the image: absolute, no `.`, empty or trailing
/// components; `..` removed lexically (stopping at `/`). Archive names (`./usr/bin/`,
/// `usr/bin`) and user paths (`/usr//bin/.`) give the same key.
pub fn normalize(path: &str) -> String {
    format!("/{}", crate::publish::tar_path::components(path).join("/"))
}

/// The parent of a normalized path (`/` for `/` itself).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Resolves `path` to the normalized path of what it names, following symlinks in every
/// component, and in the last one when `follow_last`. A missing last component is not an
/// error: the result is where it would be (callers look it up).
pub fn resolve(
    path: &str,
    follow_last: bool,
    lookup: impl Fn(&str) -> Option<Node>,
) -> Result<String, ResolveError> {
    let mut todo: Vec<String> = components_reversed(path);
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let here = join(&done, &part);
        let last = todo.is_empty();
        match lookup(&here) {
            None if last => done.push(part),
            None => return Err(ResolveError::Missing(here)),
            Some(Node::Symlink(target)) if !last || follow_last => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ResolveError::TooManyLinks);
                }
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(components_reversed(&target));
            }
            Some(Node::Other) if !last => return Err(ResolveError::NotADirectory(here)),
            Some(_) => done.push(part),
        }
    }
    Ok(format!("/{}", done.join("/")))
}

fn components_reversed(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .rev()
        .map(str::to_string)
        .collect()
}

fn join(done: &[String], part: &str) -> String {
    if done.is_empty() {
        format!("/{part}")
    } else {
        format!("/{}/{part}", done.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(path: &str) -> Option<Node> {
        let link = |t: &str| Some(Node::Symlink(t.to_string()));
        match path {
            "/usr" | "/usr/lib" | "/usr/lib/x86_64-linux-gnu" | "/etc" | "/opt" => Some(Node::Dir),
            "/lib" => link("usr/lib"),
            "/usr/lib/x86_64-linux-gnu/libc.so.6" => Some(Node::Other),
            "/usr/lib/x86_64-linux-gnu/libc.so" => link("libc.so.6"),
            "/opt/up" => link("../../../../etc"),
            "/opt/abs" => link("/usr/lib"),
            "/opt/dangling" => link("/nowhere"),
            "/loop1" => link("/loop2"),
            "/loop2" => link("loop1"),
            "/etc/passwd" => Some(Node::Other),
            _ => None,
        }
    }

    #[test]
    fn normalize_gives_one_key_for_archive_and_user_paths() {
        assert_eq!(normalize("./usr/bin/"), "/usr/bin");
        assert_eq!(normalize("usr/bin"), "/usr/bin");
        assert_eq!(normalize("/usr//bin/."), "/usr/bin");
        assert_eq!(normalize("../../etc/../x"), "/x");
        assert_eq!(normalize("./"), "/");
        assert_eq!(parent("/usr/bin"), "/usr");
        assert_eq!(parent("/usr"), "/");
        assert_eq!(parent("/"), "/");
    }

    #[test]
    fn symlinks_resolve_inside_the_image_root() {
        let cases = [
            (
                "/lib/x86_64-linux-gnu/libc.so",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
            ),
            ("/opt/up/passwd", "/etc/passwd"), // `..` stops at the root
            ("/opt/abs/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"),
            ("/opt/dangling", "/nowhere"), // a missing last part is not an error
        ];
        for (path, expected) in cases {
            assert_eq!(resolve(path, true, tree).unwrap(), expected, "{path}");
        }
        let r = |p: &str| resolve(p, true, tree);
        assert_eq!(r("/").unwrap(), "/");
        assert_eq!(r("/loop1"), Err(ResolveError::TooManyLinks));
        assert_eq!(
            r("/etc/passwd/x"),
            Err(ResolveError::NotADirectory("/etc/passwd".into()))
        );
        assert_eq!(
            r("/missing/x"),
            Err(ResolveError::Missing("/missing".into()))
        );
    }

    #[test]
    fn the_last_symlink_is_kept_unless_followed() {
        assert_eq!(
            resolve("/lib/x86_64-linux-gnu/libc.so", false, tree).unwrap(),
            "/usr/lib/x86_64-linux-gnu/libc.so"
        );
        assert_eq!(resolve("/lib", false, tree).unwrap(), "/lib");
    }
}
