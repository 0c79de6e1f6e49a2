//! Member names of tar archives (`docker export`, `docker save`) in one canonical form.

/// The components of `path` with empty ones and `.` dropped and `..` applied lexically,
/// never above the root: `./a/b/../c//d` gives `a`, `c`, `d`.
pub fn components(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn dots_empty_parts_and_parent_steps_are_resolved_lexically() {
        assert_eq!(components("./a/b/../c//d"), ["a", "c", "d"]);
        assert_eq!(components("/usr//bin/."), ["usr", "bin"]);
        assert_eq!(components("../../etc/../x"), ["x"]);
        assert!(components("./").is_empty());
    }
}
