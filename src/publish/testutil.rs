//! Helpers of the publish tests: a temporary tree of files.

use std::path::{Path, PathBuf};

/// A temporary directory holding the given files.
pub(crate) struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// A tree with `files` as `(relative path, contents)`.
    pub(crate) fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let tree = Tree { dir };
        for (path, text) in files {
            tree.write(path, text);
        }
        tree
    }

    /// Write (or overwrite) one file, creating its directories.
    pub(crate) fn write(&self, path: &str, text: &str) {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    /// The tree's directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The path of `imgflow.toml` in the tree.
    pub(crate) fn toml(&self) -> PathBuf {
        self.dir.path().join("imgflow.toml")
    }
}

/// The repository's shipped example.
pub(crate) fn example_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/imgflow.toml")
}
