//! Tests of [`ImageFs`] on archives written here with the `tar` crate, shaped like
//! `docker export` output (relative names, links, devices, long names, implied dirs).

use super::*;

/// A GNU tar header of `kind` with the given mode, owner and size, and mtime 0 (also
/// used by the check runner's fake engine).
pub(crate) fn header(kind: EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn sample() -> ImageFs {
    let mut b = tar::Builder::new(tempfile::tempfile().unwrap());
    let dir = |b: &mut tar::Builder<File>, path: &str, mode: u32| {
        let mut h = header(EntryType::Directory, mode, 0, 0, 0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    let file =
        |b: &mut tar::Builder<File>, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]| {
            let mut h = header(EntryType::Regular, mode, uid, gid, data.len() as u64);
            b.append_data(&mut h, path, data).unwrap();
        };
    let link = |b: &mut tar::Builder<File>, kind: EntryType, path: &str, target: &str| {
        let mut h = header(kind, 0o777, 0, 0, 0);
        b.append_link(&mut h, path, target).unwrap();
    };
    dir(&mut b, "./", 0o755);
    dir(&mut b, "bin/", 0o755);
    file(&mut b, "bin/busybox", 0o4755, 0, 0, b"\x7fELF busybox");
    link(&mut b, EntryType::Symlink, "bin/sh", "busybox");
    dir(&mut b, "tmp/", 0o1777);
    dir(&mut b, "usr/lib/", 0o755);
    file(&mut b, "usr/lib/libc.so.6", 0o644, 0, 0, b"libc");
    link(&mut b, EntryType::Symlink, "usr/lib/libc.so", "libc.so.6");
    link(&mut b, EntryType::Symlink, "lib", "usr/lib");
    link(&mut b, EntryType::Symlink, "opt-abs", "/usr/lib/libc.so");
    link(&mut b, EntryType::Symlink, "dangling", "/no/such/file");
    link(
        &mut b,
        EntryType::Link,
        "usr/lib/libc-hard.so",
        "usr/lib/libc.so.6",
    );
    // `home` and `home/nb` are implied by the file below but not listed.
    file(&mut b, "home/nb/notes.txt", 0o640, 1000, 100, b"hello\n");
    let long = format!("opt/{}/deep.txt", "d".repeat(120));
    file(&mut b, &long, 0o600, 7, 8, b"long");
    let mut dev = header(EntryType::Char, 0o666, 0, 0, 0);
    b.append_data(&mut dev, "dev/null", std::io::empty())
        .unwrap();
    file(&mut b, "big.bin", 0o644, 0, 0, &vec![7u8; 70_000]);
    ImageFs::index(b.into_inner().unwrap()).unwrap()
}

#[test]
fn metadata_of_files_dirs_and_devices() {
    let fs = sample();
    let busybox = fs.lstat("/bin/busybox").unwrap();
    assert_eq!(
        (busybox.kind, busybox.mode, busybox.size),
        (FileKind::File, 0o4755, 12)
    );
    assert_eq!(busybox.permissions(), "urwxr-xr-x");
    let notes = fs.lstat("home/nb/notes.txt").unwrap();
    assert_eq!(
        (notes.uid, notes.gid, notes.permissions().as_str()),
        (1000, 100, "-rw-r-----")
    );
    assert_eq!(fs.lstat("/tmp").unwrap().permissions(), "dtrwxrwxrwx");
    assert_eq!(fs.lstat("/dev/null").unwrap().kind, FileKind::CharDevice);
    let implied = fs.lstat("/home/nb").unwrap();
    assert_eq!(
        (implied.kind, implied.mode, implied.uid),
        (FileKind::Dir, 0o755, 0)
    );
    assert_eq!(fs.lstat("/").unwrap().kind, FileKind::Dir);
    let long = format!("/opt/{}/deep.txt", "d".repeat(120));
    assert_eq!(fs.lstat(&long).unwrap().uid, 7, "GNU long names are read");
    assert!(!fs.exists("/nope"));
    assert_eq!(fs.entries().next().unwrap().path, "/");
}

#[test]
fn symlinks_are_kept_by_lstat_and_followed_by_stat() {
    let fs = sample();
    let sh = fs.lstat("/bin/sh").unwrap();
    assert_eq!(
        (sh.kind, sh.link_target.as_deref()),
        (FileKind::Symlink, Some("busybox"))
    );
    assert_eq!(sh.permissions(), "Lrwxrwxrwx");
    assert_eq!(fs.stat("/bin/sh").unwrap().path, "/bin/busybox");
    // A symlinked directory in the middle of a path (merged /usr) is followed by both.
    assert_eq!(fs.lstat("/lib/libc.so").unwrap().kind, FileKind::Symlink);
    assert_eq!(fs.resolve("/lib/libc.so").unwrap(), "/usr/lib/libc.so.6");
    assert_eq!(fs.resolve("/opt-abs").unwrap(), "/usr/lib/libc.so.6");
    assert!(fs.exists("/dangling"), "a dangling symlink exists");
    assert!(fs.stat("/dangling").is_none());
    let err = fs.resolve("/dangling").unwrap_err();
    assert!(err.to_string().contains("/no"), "{err}");
}

#[tokio::test]
async fn contents_are_read_through_links_and_bounded() {
    let fs = sample();
    assert_eq!(fs.read("/lib/libc.so", 100).await.unwrap(), b"libc");
    assert_eq!(
        fs.read("/usr/lib/libc-hard.so", 100).await.unwrap(),
        b"libc",
        "hard link"
    );
    assert_eq!(fs.read("/home/nb/notes.txt", 6).await.unwrap(), b"hello\n");
    assert_eq!(
        fs.read("/big.bin", 70_000).await.unwrap(),
        vec![7u8; 70_000]
    );
    let err = fs.read("/big.bin", 1000).await.unwrap_err();
    assert!(
        matches!(err, DockerError::FileTooLarge { size: 70_000, .. }),
        "{err:?}"
    );
    let err = fs.read("/tmp", 1000).await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(fs.read("/missing", 1000).await.is_err());
}

#[test]
fn directories_list_their_direct_children() {
    let fs = sample();
    let names = |p: &str| -> Vec<String> {
        fs.read_dir(p)
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    };
    assert_eq!(names("/bin"), ["busybox", "sh"]);
    assert_eq!(
        names("/lib"),
        ["libc-hard.so", "libc.so", "libc.so.6"],
        "through the /lib link"
    );
    assert_eq!(
        names("/"),
        ["big.bin", "bin", "dangling", "dev", "home", "lib", "opt", "opt-abs", "tmp", "usr"]
    );
    assert!(fs.read_dir("/bin/busybox").is_err());
}
