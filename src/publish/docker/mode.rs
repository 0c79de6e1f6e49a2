//! File modes as container-structure-test writes them in `permissions:` (Go's
//! `os.FileMode` string, e.g. `-rwxr-xr-x`, `drwxrwxrwt` is `dtrwxrwxrwx`, a symlink `Lrwxrwxrwx`).

/// The kind of a file inside an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file (hard links read as the file they link to).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

/// Go's `FileMode.String()` for a file of `kind` with Unix `mode` bits (permissions plus
/// setuid 0o4000, setgid 0o2000, sticky 0o1000): type letters (`d`, `L`, `D`, `p`, `u`,
/// `g`, `c`, `t` in Go's order, or `-` when none) then `rwxrwxrwx`.
pub fn mode_string(kind: FileKind, mode: u32) -> String {
    let mut out = String::with_capacity(12);
    let flags = [
        (kind == FileKind::Dir, 'd'),
        (kind == FileKind::Symlink, 'L'),
        (
            matches!(kind, FileKind::CharDevice | FileKind::BlockDevice),
            'D',
        ),
        (kind == FileKind::Fifo, 'p'),
        (mode & 0o4000 != 0, 'u'),
        (mode & 0o2000 != 0, 'g'),
        (kind == FileKind::CharDevice, 'c'),
        (mode & 0o1000 != 0, 't'),
    ];
    out.extend(flags.iter().filter(|(set, _)| *set).map(|(_, c)| *c));
    if out.is_empty() {
        out.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        out.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_go_file_modes() {
        assert_eq!(mode_string(FileKind::File, 0o755), "-rwxr-xr-x");
        assert_eq!(mode_string(FileKind::File, 0o640), "-rw-r-----");
        assert_eq!(mode_string(FileKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(FileKind::Dir, 0o1777), "dtrwxrwxrwx");
        assert_eq!(mode_string(FileKind::Symlink, 0o777), "Lrwxrwxrwx");
        assert_eq!(mode_string(FileKind::File, 0o4755), "urwxr-xr-x");
        assert_eq!(mode_string(FileKind::Dir, 0o2775), "dgrwxrwxr-x");
        assert_eq!(mode_string(FileKind::CharDevice, 0o666), "Dcrw-rw-rw-");
        assert_eq!(mode_string(FileKind::BlockDevice, 0o660), "Drw-rw----");
        assert_eq!(mode_string(FileKind::Fifo, 0o600), "prw-------");
    }
}
