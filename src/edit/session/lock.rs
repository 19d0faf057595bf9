//! One writer per session folder: the writer lock (`writer.lock`, `<pid> <token>`) taken
//! before a session's first write and removed when it is dropped; a lock left by a process
//! that is gone (a crash) is taken over.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};

use super::format::LOCK;
use super::{now_ms, Session, SessionError};

/// A token no other session of this or another process will draw.
pub(super) fn lock_token() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    now_ms().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.locked {
            let _ = fs::remove_file(self.dir.join(LOCK));
        }
    }
}

impl Session {
    /// Takes the session's writer lock before its first write: two viewers of one study
    /// would otherwise append to one journal. A lock whose process is gone (a crash) is
    /// taken over.
    pub(super) fn ensure_lock(&mut self) -> Result<(), SessionError> {
        if self.locked {
            return Ok(());
        }
        let path = self.dir.join(LOCK);
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir).map_err(|e| self.io(&self.dir.clone(), e))?;
            // the new folder's entry is durable only once its parent is
            if let Some(parent) = self.dir.parent() {
                let _ = File::open(parent).and_then(|f| f.sync_all());
            }
        }
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let mine = format!("{} {}", std::process::id(), self.token);
                    f.write_all(mine.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| self.io(&path, e))?;
                    self.locked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(&path).unwrap_or_default();
                    let mut parts = text.split_whitespace();
                    let pid = parts.next().and_then(|p| p.parse::<u32>().ok());
                    let token = parts.next().and_then(|t| t.parse::<u64>().ok());
                    match pid {
                        Some(pid) if token == Some(self.token) && pid == std::process::id() => {
                            self.locked = true;
                            return Ok(());
                        }
                        Some(pid) if crate::io::process_alive(pid) => {
                            return Err(SessionError::Locked { dir: self.dir.clone(), pid })
                        }
                        // a crashed writer's (or an unreadable) lock: take it over
                        _ => {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(self.io(&path, e)),
            }
        }
        Err(SessionError::Locked { dir: self.dir.clone(), pid: 0 })
    }
}
