//! The dynamic-linking facts of an ELF file (class, machine, DT_NEEDED, DT_RPATH,
//! DT_RUNPATH), read with the `object` crate from bytes taken out of the image.

use object::elf::{
    FileHeader32, FileHeader64, DT_NEEDED, DT_RPATH, DT_RUNPATH, ELFCLASS32, ELFCLASS64,
};
use object::read::elf::{Dyn, FileHeader};
use object::Endianness;

/// What the dynamic loader needs to know about one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfDeps {
    /// 64-bit (ELFCLASS64) rather than 32-bit.
    pub class64: bool,
    /// `e_machine` (62 is x86-64, 183 is AArch64).
    pub machine: u16,
    /// DT_NEEDED entries, in order.
    pub needed: Vec<String>,
    /// DT_RPATH directories (used only when there is no DT_RUNPATH).
    pub rpath: Vec<String>,
    /// DT_RUNPATH directories.
    pub runpath: Vec<String>,
}

/// True when `bytes` start like an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Reads the dynamic-linking facts of the ELF file `bytes`; a static file has none.
pub fn elf_deps(bytes: &[u8]) -> Result<ElfDeps, String> {
    let parsed = match bytes.get(4).copied() {
        Some(ELFCLASS64) => parse::<FileHeader64<Endianness>>(bytes),
        Some(ELFCLASS32) => parse::<FileHeader32<Endianness>>(bytes),
        _ => return Err("not an ELF file".into()),
    };
    parsed.map_err(|e| format!("unreadable ELF: {e}"))
}

fn parse<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> object::read::Result<ElfDeps> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let mut deps = ElfDeps {
        class64: header.is_class_64(),
        machine: header.e_machine(endian),
        ..ElfDeps::default()
    };
    let sections = header.sections(endian, data)?;
    let Some((entries, link)) = sections.dynamic(endian, data)? else {
        return Ok(deps);
    };
    let strings = sections.strings(endian, data, link)?;
    for entry in entries {
        let tag = entry.tag32(endian);
        if !matches!(tag, Some(DT_NEEDED | DT_RPATH | DT_RUNPATH)) {
            continue;
        }
        let value = String::from_utf8_lossy(entry.string(endian, strings)?).into_owned();
        let dirs = || value.split(':').filter(|d| !d.is_empty()).map(String::from);
        match tag {
            Some(DT_NEEDED) => deps.needed.push(value.clone()),
            Some(DT_RPATH) => deps.rpath.extend(dirs()),
            _ => deps.runpath.extend(dirs()),
        }
    }
    Ok(deps)
}
