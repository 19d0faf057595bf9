//! Where a study's session lives: under the user's data folder, keyed by a hash of the
//! study's path, or (sessions of earlier versions) beside the study.

use std::fs;
use std::path::{Path, PathBuf};

use crate::io::SESSION_DIR_NAME;

/// FNV-1a 64 of the bytes: a short, stable name for a study's fallback session folder.
fn path_hash(p: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in p.to_string_lossy().as_bytes() {
        h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The per-user data folder: `$XDG_DATA_HOME`, else `~/.local/share`.
pub fn user_data_home() -> Option<PathBuf> {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(p) if !p.is_empty() && Path::new(&p).is_absolute() => Some(PathBuf::from(p)),
        _ => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".local/share")),
    }
}

/// Where an earlier version kept a study's session, beside the study. Nothing is created
/// there any more (clinical folders stay exactly as they are); a session found there is
/// still opened, so no edit made with an earlier version is lost.
pub fn beside_study_dir(study: &Path) -> PathBuf {
    if study.is_dir() {
        study.join(SESSION_DIR_NAME)
    } else {
        let name = study.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "study".into());
        study.parent().unwrap_or(Path::new(".")).join(SESSION_DIR_NAME).join(name)
    }
}

/// The session folder of a study under a data home, keyed by the study's canonical path.
pub fn data_home_dir(study: &Path, data_home: &Path) -> PathBuf {
    let canon = fs::canonicalize(study).unwrap_or_else(|_| study.to_path_buf());
    data_home.join("hepaview").join("sessions").join(path_hash(&canon))
}
