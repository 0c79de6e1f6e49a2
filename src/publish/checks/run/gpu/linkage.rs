//! GPU tier 2 (CPU side): every shared library in the image can be linked, judged from
//! outside. For each ELF shared object in the exported filesystem, each DT_NEEDED name is
//! resolved as the glibc loader would: DT_RPATH (when there is no DT_RUNPATH), the image's
//! `LD_LIBRARY_PATH`, DT_RUNPATH (`$ORIGIN` and `$LIB` expanded), the directories of
//! `/etc/ld.so.conf` (and what it includes), then the default directories. A candidate
//! counts only when it is an ELF file of the same class and machine, as for the loader.
//!
//! Why not `ldd`: it is a tool *inside* the image (a busybox or distroless image has none)
//! and running it means trusting and executing the image's loader; reading DT_NEEDED from
//! outside works on any image and on any host architecture.
//!
//! Only the driver's libraries may be missing ([`DRIVER_LIBS`]: `libcuda.so.1`, which the
//! NVIDIA container runtime mounts from the host at run time). What `libcuda.so.1` itself
//! needs is never examined, since it is not in the image.

use std::collections::{BTreeMap, HashMap};

use super::elf::{elf_deps, is_elf, ElfDeps};
use crate::publish::docker::{FileKind, FileMeta, ImageFs};

/// Libraries that must not be in the image and may be missing: the runtime provides them.
pub const DRIVER_LIBS: &[&str] = &["libcuda.so.1"];

/// The loader's default directories (64-bit and 32-bit, Debian multiarch and others).
pub const DEFAULT_LIB_DIRS: &[&str] = &[
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib32",
    "/usr/lib32",
    "/lib/i386-linux-gnu",
    "/usr/lib/i386-linux-gnu",
];

/// Largest `ld.so.conf` file read.
const CONF_LIMIT: u64 = 1024 * 1024;

/// A DT_NEEDED entry that did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The library that needs it (path in the image).
    pub file: String,
    /// The DT_NEEDED name.
    pub needed: String,
}

/// What the linkage scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linkage {
    /// ELF shared objects examined.
    pub examined: usize,
    /// Needed libraries that are missing (failures).
    pub missing: Vec<Missing>,
    /// Needed driver libraries that are missing (allowed).
    pub driver_missing: Vec<Missing>,
    /// Shared objects that could not be examined, with why (failures).
    pub unreadable: Vec<(String, String)>,
}

/// The directories the loader searches by default in this image: `LD_LIBRARY_PATH` from
/// `env`, then `/etc/ld.so.conf` (or, when there is none, `/etc/ld.so.conf.d/*.conf`),
/// then [`DEFAULT_LIB_DIRS`]; duplicates dropped.
pub async fn search_dirs(fs: &ImageFs, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut dirs: Vec<String> = ld_library_path(env);
    let mut conf = Vec::new();
    if fs.stat("/etc/ld.so.conf").is_some() {
        read_conf(fs, "/etc/ld.so.conf", &mut conf, 0).await;
    } else {
        for path in conf_d_files(fs, "/etc/ld.so.conf.d", ".conf") {
            read_conf(fs, &path, &mut conf, 0).await;
        }
    }
    dirs.extend(conf);
    dirs.extend(DEFAULT_LIB_DIRS.iter().map(|d| d.to_string()));
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let fresh = !seen.contains(d);
        seen.push(d.clone());
        fresh
    });
    dirs
}

fn ld_library_path(env: &BTreeMap<String, String>) -> Vec<String> {
    env.get("LD_LIBRARY_PATH")
        .map(|p| {
            p.split(':')
                .filter(|d| d.starts_with('/'))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Files of `dir` whose names end with `suffix`, sorted.
fn conf_d_files(fs: &ImageFs, dir: &str, suffix: &str) -> Vec<String> {
    let Ok(entries) = fs.read_dir(dir) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter(|m| m.name().ends_with(suffix))
        .map(|m| m.path.clone())
        .collect()
}

/// Reads one ld.so.conf file: directories, `include` lines (`DIR/*SUFFIX` or a path),
/// comments; `hwcap` lines are ignored.
fn read_conf<'a>(
    fs: &'a ImageFs,
    path: &'a str,
    out: &'a mut Vec<String>,
    depth: usize,
) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        if depth > 8 {
            return;
        }
        let Ok(bytes) = fs.read(path, CONF_LIMIT).await else {
            return;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(pattern) = line.strip_prefix("include") {
                for pattern in pattern.split_whitespace() {
                    let pattern = absolute(pattern, "/etc");
                    let files = match pattern.rsplit_once("/*") {
                        Some((dir, suffix)) => conf_d_files(fs, dir, suffix),
                        None => vec![pattern.clone()],
                    };
                    for file in files {
                        read_conf(fs, &file, out, depth + 1).await;
                    }
                }
            } else if line.starts_with('/') {
                out.extend(
                    line.split([':', ',', ' ', '\t'])
                        .filter(|d| !d.is_empty())
                        .map(String::from),
                );
            }
        }
    })
}

fn absolute(path: &str, base: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    }
}

/// True for names like `libfoo.so` and `libfoo.so.1.2`.
pub fn is_shared_object_name(name: &str) -> bool {
    name.ends_with(".so") || name.contains(".so.")
}

/// True for paths the scan skips: pseudo filesystems and CUDA's link-time `stubs`.
fn skipped_path(path: &str) -> bool {
    ["/proc/", "/sys/", "/dev/"]
        .iter()
        .any(|p| path.starts_with(p))
        || path.contains("/stubs/")
}

/// Resolves every DT_NEEDED of every ELF shared object in `fs`, reading at most
/// `read_limit` bytes of each (larger ones are listed as unreadable).
pub async fn check_linkage(
    fs: &ImageFs,
    env: &BTreeMap<String, String>,
    read_limit: u64,
) -> Linkage {
    let dirs = search_dirs(fs, env).await;
    let env_dirs = ld_library_path(env);
    let mut linkage = Linkage::default();
    let mut cache: HashMap<String, Option<(bool, u16)>> = HashMap::new();
    let objects: Vec<&FileMeta> = fs
        .entries()
        .filter(|m| {
            m.kind == FileKind::File && is_shared_object_name(m.name()) && !skipped_path(&m.path)
        })
        .collect();
    let mut parsed: Vec<(String, ElfDeps)> = Vec::new();
    for meta in objects {
        match read_elf(fs, &meta.path, read_limit).await {
            Ok(None) => {
                cache.insert(meta.path.clone(), None);
            }
            Ok(Some(deps)) => {
                cache.insert(meta.path.clone(), Some((deps.class64, deps.machine)));
                parsed.push((meta.path.clone(), deps));
            }
            Err(why) => linkage.unreadable.push((meta.path.clone(), why)),
        }
    }
    linkage.examined = parsed.len();
    for (path, deps) in &parsed {
        let origin = path
            .rsplit_once('/')
            .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
        let lib = if deps.class64 { "lib64" } else { "lib" };
        let expand = |d: &String| {
            d.replace("${ORIGIN}", origin)
                .replace("$ORIGIN", origin)
                .replace("${LIB}", lib)
                .replace("$LIB", lib)
        };
        let mut order: Vec<String> = Vec::new();
        if deps.runpath.is_empty() {
            order.extend(deps.rpath.iter().map(expand));
        }
        order.extend(env_dirs.iter().cloned());
        order.extend(deps.runpath.iter().map(expand));
        order.extend(dirs.iter().cloned());
        for needed in &deps.needed {
            let candidates: Vec<String> = if needed.contains('/') {
                vec![absolute(needed, origin)]
            } else {
                order
                    .iter()
                    .map(|d| format!("{}/{needed}", d.trim_end_matches('/')))
                    .collect()
            };
            let mut found = false;
            for candidate in candidates {
                if matches_loader(fs, &candidate, deps, &mut cache, read_limit).await {
                    found = true;
                    break;
                }
            }
            if !found {
                let missing = Missing {
                    file: path.clone(),
                    needed: needed.clone(),
                };
                if DRIVER_LIBS.contains(&needed.as_str()) {
                    linkage.driver_missing.push(missing);
                } else {
                    linkage.missing.push(missing);
                }
            }
        }
    }
    linkage
}

/// The ELF facts of `path`, `None` when it is not ELF.
async fn read_elf(fs: &ImageFs, path: &str, limit: u64) -> Result<Option<ElfDeps>, String> {
    let bytes = fs.read(path, limit).await.map_err(|e| e.to_string())?;
    if !is_elf(&bytes) {
        return Ok(None);
    }
    elf_deps(&bytes).map(Some)
}

/// True when `candidate` leads to an ELF file of the class and machine of `wanted`.
async fn matches_loader(
    fs: &ImageFs,
    candidate: &str,
    wanted: &ElfDeps,
    cache: &mut HashMap<String, Option<(bool, u16)>>,
    limit: u64,
) -> bool {
    let Ok(real) = fs.resolve(candidate) else {
        return false;
    };
    if fs.stat(&real).map(|m| m.kind) != Some(FileKind::File) {
        return false;
    }
    if !cache.contains_key(&real) {
        let facts = read_elf(fs, &real, limit)
            .await
            .ok()
            .flatten()
            .map(|d| (d.class64, d.machine));
        cache.insert(real.clone(), facts);
    }
    cache[&real] == Some((wanted.class64, wanted.machine))
}
