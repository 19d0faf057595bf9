//! Reading and writing studies: DICOM (`dicom`, `dicom_write`), NIfTI (`nifti`), and naming
//! the phases of a study (`phase`). Everything below this module is LPS mm; RAS appears
//! only inside `nifti`. Readers return the problems they found as values (`Warning`), not
//! log lines, so the CLI and the app can show them.

pub mod dicom;
pub mod dicom_write;
pub mod nifti;
pub mod phase;
pub mod seg;

use std::fmt;
use std::path::PathBuf;

/// The folder the viewer keeps its autosave in beside a study (`edit::session`). It holds no
/// images, so study scans skip it rather than report its files as problems.
pub const SESSION_DIR_NAME: &str = ".hepaview-session";

/// Is process `pid` running? Where `/proc` is missing, assume so: a file a live process
/// may still be writing (a temporary, a lock) is never taken from it.
pub fn process_alive(pid: u32) -> bool {
    !std::path::Path::new("/proc/self").exists() || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the temporary files in `dir` that a killed write left behind: those whose name
/// `pid_of` recognises (returning the writer's process id) and whose process is gone, so
/// a SIGKILL mid-write leaves no hidden file of hundreds of megabytes for long. Without
/// `/proc` (not Linux) nothing is removed: no process could be told dead.
pub(crate) fn remove_stale_temps(dir: &std::path::Path, pid_of: impl Fn(&str) -> Option<&str>) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        // only a name that carries a process id is a temporary of ours
        let Some(pid) = pid_of(&file).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !process_alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether anything is at `path`: a file, a folder, or a link, even one pointing nowhere
/// (`Path::exists` follows links, so a dangling one looks free, and writing "through" it
/// would replace the link).
pub fn taken(path: &std::path::Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Writes `bytes` as a new file at `path`, never replacing anything there (a dangling link
/// included): to a hidden temporary sibling `.{name}.<pid>.tmp` first, fsynced, then
/// hard-linked into place, which fails atomically if the name was taken meanwhile. A
/// temporary that a killed write of the same name left is removed first. The error is
/// `AlreadyExists` when the name is taken.
pub fn write_new_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let exists =
        || std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists; Hepaview never overwrites files");
    if taken(path) {
        return Err(exists());
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.");
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    remove_stale_temps(dir, |file| file.strip_prefix(prefix.as_str()).and_then(|r| r.strip_suffix(".tmp")));
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        link_new(&tmp, path)
    })();
    // after a hard link the temporary is a second name to remove; after a rename it is gone
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Gives the finished temporary `tmp` the name `path`, never replacing anything there: a
/// hard link, which fails atomically when the name is taken (an `AlreadyExists` error).
/// Some file systems (FAT, certain network mounts) have no hard links: there the name is
/// checked and `tmp` renamed, which is only racy against a concurrent writer. After a
/// link `tmp` is still there for the caller to remove; after a rename it is gone.
pub(crate) fn link_new(tmp: &std::path::Path, path: &std::path::Path) -> std::io::Result<()> {
    let exists =
        || std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists; Hepaview never overwrites files");
    match std::fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        Err(_) if taken(path) => Err(exists()),
        Err(_) => std::fs::rename(tmp, path),
    }
}

/// A soft problem found while reading: the data still loads, but the user should know.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Warning {
    /// The file or folder concerned.
    pub path: PathBuf,
    /// What is off, in words a radiologist or annotator understands.
    pub what: String,
    /// What was done about it, or what the user can do.
    pub hint: String,
}

impl Warning {
    pub fn new(path: impl Into<PathBuf>, what: impl Into<String>, hint: impl Into<String>) -> Self {
        Warning { path: path.into(), what: what.into(), hint: hint.into() }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}
