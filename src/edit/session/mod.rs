//! Never losing an edit: a session folder per study holding a snapshot of the mask, a
//! journal of every completed edit since that snapshot, and a small JSON manifest.
//!
//! - **Where.** `$XDG_DATA_HOME/hepaview/sessions/<hash of the study path>/` (or
//!   `~/.local/share/…`), never in or beside the study: clinical folders (a PACS export,
//!   a share, a CD) are left exactly as they are. A session an earlier version kept in
//!   `<study>/.hepaview-session/` is still opened there, so none of its edits is lost.
//! - **Snapshot** (`mask.hvsnap`): the whole mask, deflated in z slabs in parallel, with
//!   its grid, the edit counter and the journal sequence number it includes, and a CRC.
//!   Written atomically: temporary file in the same folder, fsync, rename, fsync folder.
//!   A crash leaves either the old snapshot or the new one, never half of one. Opening a
//!   session checks it whole: a damaged one is said in the restore offer, copied aside with
//!   the journal (nothing can be rebuilt without it), and never restored.
//! - **Journal** (`journal.hvj`): one record per completed edit (a stroke, an undo, a
//!   redo, a tool): the edit's bricks as they are afterwards, deflated, with a sequence
//!   number and a CRC, appended and fsync'd before the call returns. Replaying the records
//!   newer than the snapshot over it gives the mask after the last completed edit. A
//!   record cut short by a crash (SIGKILL, power loss) fails its length or CRC check and
//!   is ignored, and cut off before anything is appended again.
//! - **Manifest** (`manifest.json`): study path, file names, times, edit counter, and
//!   where and at which edit count the user last saved. `pending_restore` compares the
//!   counters: there is something to offer when edits were made after the last save.
//!
//! Records hold brick contents, not changes, so replaying one twice gives the same mask:
//! a crash between writing a snapshot and starting the next journal loses nothing.
//!
//! This file holds the session's state and its operations; `format` the files' bytes,
//! `lock` the one-writer lock, `place` where a study's session folder is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ndarray::Array3;
use rayon::prelude::*;

use super::history::{brick_contents, Touched};
use super::{BrickGrid, LabelTable};
use crate::volume::{Geometry, Mask, Volume};

mod format;
mod lock;
mod place;

use format::{
    chunks_fit, deflate_slabs, journal_header_bytes, parse_snapshot, record_bytes, scan_journal, snapshot_bytes,
    JournalScan, SnapHeader, JOURNAL, MANIFEST, SLAB, SNAPSHOT,
};
use lock::lock_token;
pub use place::{beside_study_dir, data_home_dir, user_data_home};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{}: {source}; check that the folder exists and that you may write there (the session lives in {})", path.display(), dir.display())]
    Io { path: PathBuf, dir: PathBuf, source: io::Error },
    #[error("{}: the session file is damaged ({what}); move the session folder {} aside to start afresh (the edits in it cannot be recovered)", path.display(), dir.display())]
    Corrupt { path: PathBuf, dir: PathBuf, what: String },
    #[error("no autosaved mask in {}; nothing to restore", dir.display())]
    NothingToRestore { dir: PathBuf },
    #[error("the mask's grid {mask:?} differs from the session's {session:?}; autosave the new mask first")]
    ShapeMismatch { mask: [usize; 3], session: [usize; 3] },
    #[error("this study's autosave ({}) is being written by another Hepaview window (process {pid}); edits here are not autosaved: save the mask yourself, or close the other window and reopen the study", dir.display())]
    Locked { dir: PathBuf, pid: u32 },
}

/// What `manifest.json` holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// The study the mask belongs to, as given when the session was opened.
    pub study_path: PathBuf,
    pub mask_file: String,
    pub journal_file: String,
    /// Milliseconds since the Unix epoch of the last snapshot or journal record.
    pub updated_unix_ms: u64,
    /// Completed edits (records) since the session began.
    pub edit_counter: u64,
    /// Where the user last saved the mask, and at which edit count.
    pub saved_to: Option<PathBuf>,
    pub saved_edit_counter: Option<u64>,
    pub saved_unix_ms: Option<u64>,
    /// The label table in use, when the viewer stored one.
    #[serde(default)]
    pub labels: Option<LabelTable>,
}

/// What a session holds that was not saved by the user.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreInfo {
    pub session_dir: PathBuf,
    pub study_path: PathBuf,
    /// Edits (completed strokes and tools, undos, redos) in the session.
    pub edit_counter: u64,
    /// The edit count at the user's last save (`None`: never saved).
    pub saved_edit_counter: Option<u64>,
    pub saved_to: Option<PathBuf>,
    /// Journal records newer than the snapshot (replayed on restore).
    pub journal_records: usize,
    /// A record cut short by a crash was found (and will be ignored).
    pub torn_tail: bool,
    /// What damage in the journal or the snapshot cost, in words, when some was found:
    /// every intact record is still restored, and the damaged file is kept aside.
    pub damage: Option<String>,
    /// The snapshot failed its checks when the session was opened: the mask cannot be
    /// rebuilt (the journal's records hold only the bricks each edit touched), so
    /// [`Session::restore`] refuses; the snapshot and the journal are kept aside.
    pub snapshot_damaged: bool,
    /// When the session was last written, ms since the Unix epoch.
    pub updated_unix_ms: u64,
}

/// A restored mask.
#[derive(Clone, Debug)]
pub struct Restored {
    pub mask: Mask,
    pub info: RestoreInfo,
    pub labels: Option<LabelTable>,
}

/// One study's session. Not `Clone`: one writer per session folder.
pub struct Session {
    dir: PathBuf,
    manifest: Manifest,
    /// Shape and seq of the snapshot on disk, if any.
    snapshot: Option<([usize; 3], u64)>,
    seq: u64,
    journal_records: usize,
    torn_tail: bool,
    /// Damage found in the journal when the session was opened (see [`RestoreInfo::damage`]).
    damage: Option<String>,
    /// The snapshot failed its checks at open: why (for [`Session::restore`]'s refusal),
    /// and what that costs, in words. Cleared once a new snapshot is written.
    snapshot_damage: Option<(String, String)>,
    /// This session's mark in the writer lock, and whether it holds the lock.
    token: u64,
    locked: bool,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Session {
    /// Opens (or starts) the session of `study` in the user's data folder
    /// (`$XDG_DATA_HOME/hepaview/sessions/<hash of the study's path>/`): never in or beside
    /// the study, which may be a PACS export or a share that must stay as it is.
    pub fn open_for(study: &Path) -> Result<Session, SessionError> {
        Self::open_for_with_data_home(study, user_data_home().as_deref())
    }

    /// As [`Session::open_for`] with an explicit data home (tests, portable installs); with
    /// none, the system's temporary folder. A session an earlier version left beside the
    /// study is opened where it is.
    pub fn open_for_with_data_home(study: &Path, data_home: Option<&Path>) -> Result<Session, SessionError> {
        let beside = beside_study_dir(study);
        if beside.join(MANIFEST).is_file() {
            return Self::open_in(study, &beside);
        }
        let home = data_home.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        Self::open_in(study, &data_home_dir(study, &home))
    }

    /// Opens (or starts) a session in `dir`. The folder is made at the first write.
    pub fn open_in(study: &Path, dir: &Path) -> Result<Session, SessionError> {
        let manifest_path = dir.join(MANIFEST);
        let manifest = match fs::read(&manifest_path) {
            Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes).map_err(|e| SessionError::Corrupt {
                path: manifest_path.clone(),
                dir: dir.to_path_buf(),
                what: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Manifest {
                version: 1,
                study_path: study.to_path_buf(),
                mask_file: SNAPSHOT.into(),
                journal_file: JOURNAL.into(),
                updated_unix_ms: 0,
                edit_counter: 0,
                saved_to: None,
                saved_edit_counter: None,
                saved_unix_ms: None,
                labels: None,
            },
            Err(source) => return Err(SessionError::Io { path: manifest_path, dir: dir.to_path_buf(), source }),
        };
        let mut s = Session {
            dir: dir.to_path_buf(),
            manifest,
            snapshot: None,
            seq: 0,
            journal_records: 0,
            torn_tail: false,
            damage: None,
            snapshot_damage: None,
            token: lock_token(),
            locked: false,
        };
        s.manifest.study_path = study.to_path_buf();
        // The whole snapshot is checked here, not only at Restore: a damaged one must be
        // said in the restore offer, and its header (grid, sequence number) is not to be
        // trusted for reading the journal either.
        let snapshot_damage = match s.check_snapshot()? {
            Ok(Some(h)) => {
                s.snapshot = Some((h.geometry.shape, h.last_seq));
                s.seq = h.last_seq;
                s.manifest.edit_counter = h.edit_counter;
                s.manifest.updated_unix_ms = s.manifest.updated_unix_ms.max(h.written_unix_ms);
                None
            }
            Ok(None) => None,
            Err(what) => Some(what),
        };
        // Find every whole record. A torn tail (a crash mid-append) is cut off so later
        // records follow whole ones. Damage before intact records (a flipped byte, a
        // failed append followed by good ones, a damaged header) never costs those
        // records: the damaged file is kept aside and a clean journal of every intact
        // record replaces it.
        let scan = s.scan_journal(false)?;
        if let Some(scan) = scan {
            s.torn_tail = scan.torn;
            if let Some((seq, counter)) = scan.last {
                s.seq = s.seq.max(seq);
                s.manifest.edit_counter = s.manifest.edit_counter.max(counter);
            }
            s.journal_records = scan.newer;
            let path = s.dir.join(JOURNAL);
            // a journal another live viewer is writing is read, never rewritten or cut
            let needs_writing = scan.damaged_header || scan.damaged_bytes > 0 || scan.torn;
            let writable = needs_writing
                && match s.ensure_lock() {
                    Ok(()) => true,
                    Err(SessionError::Locked { .. }) => false,
                    Err(e) => return Err(e),
                };
            if !writable {
            } else if scan.damaged_header || scan.damaged_bytes > 0 {
                s.repair_journal(&scan)?;
            } else if scan.torn {
                let f = OpenOptions::new().write(true).open(&path).map_err(|e| s.io(&path, e))?;
                f.set_len(scan.good_len).map_err(|e| s.io(&path, e))?;
                f.sync_all().map_err(|e| s.io(&path, e))?;
            }
        }
        if let Some(what) = snapshot_damage {
            s.keep_damaged_snapshot(what)?;
        }
        Ok(s)
    }

    /// The snapshot failed its checks at open. Nothing can be restored: the mask outside
    /// the bricks the journaled edits touched is only in the snapshot, and a damaged one
    /// has no trustworthy part (one CRC covers it all). Both files are copied aside, since
    /// the next edit writes a new snapshot and journal over them; a copy already made by
    /// an earlier open is reused. A session another live viewer writes is left as it is.
    fn keep_damaged_snapshot(&mut self, what: String) -> Result<(), SessionError> {
        let snap = self.snapshot_path();
        let journal = self.journal_path();
        let edits = self.journal_records;
        let kept = match self.ensure_lock() {
            Ok(()) => {
                let snap_aside = self.keep_aside(SNAPSHOT, "damaged")?;
                let journal_aside = if journal.is_file() { Some(self.keep_aside(JOURNAL, "kept")?) } else { None };
                format!(
                    "it is kept as {}{}",
                    snap_aside.display(),
                    journal_aside.map(|j| format!(" and the journal as {}", j.display())).unwrap_or_default()
                )
            }
            Err(SessionError::Locked { .. }) => "both files are left as they are".to_string(),
            Err(e) => return Err(e),
        };
        let said = format!(
            "the autosaved mask {} is damaged ({what}): the mask cannot be rebuilt from it, and the {edits} edit(s) \
             journaled after it cannot be replayed without it, so nothing can be restored; {kept}",
            snap.display()
        );
        self.snapshot_damage = Some((what, said));
        Ok(())
    }

    /// Copies `name` to `<name>.<tag>-<ms>` in the session folder, or returns the copy an
    /// earlier call made of the same bytes (each open of a damaged session would add one).
    fn keep_aside(&self, name: &str, tag: &str) -> Result<PathBuf, SessionError> {
        let path = self.dir.join(name);
        let bytes = fs::read(&path).map_err(|e| self.io(&path, e))?;
        let prefix = format!("{name}.{tag}-");
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        for entry in entries.flatten() {
            let same = entry.file_name().to_string_lossy().starts_with(&prefix)
                && entry.metadata().is_ok_and(|m| m.len() == bytes.len() as u64)
                && fs::read(entry.path()).is_ok_and(|b| b == bytes);
            if same {
                return Ok(entry.path());
            }
        }
        let aside = format!("{prefix}{}", now_ms());
        self.write_atomic(&aside, &bytes)?;
        Ok(self.dir.join(aside))
    }

    /// Keeps the damaged journal aside (`journal.hvj.damaged-<ms>`) and writes a clean one
    /// holding every intact record, in order; says what was lost in [`RestoreInfo::damage`].
    fn repair_journal(&mut self, scan: &JournalScan) -> Result<(), SessionError> {
        let path = self.journal_path();
        let bytes = fs::read(&path).map_err(|e| self.io(&path, e))?;
        let aside = self.dir.join(format!("{JOURNAL}.damaged-{}", now_ms()));
        fs::write(&aside, &bytes).map_err(|e| self.io(&aside, e))?;
        let base = self.snapshot.map(|(_, seq)| seq).unwrap_or(0);
        let shape = scan.shape.or(self.snapshot.map(|(shape, _)| shape));
        let kept = scan.spans.len();
        match shape {
            Some(shape) => {
                let mut clean = journal_header_bytes(shape, base).map_err(|e| self.io(&path, e))?;
                for &(start, len) in &scan.spans {
                    clean.extend_from_slice(&bytes[start..start + len]);
                }
                self.write_atomic(JOURNAL, &clean)?;
            }
            // no grid to read bricks against (no snapshot, header unreadable): nothing in it
            // can be restored; it is kept aside, and the next edit starts afresh
            None => fs::remove_file(&path).map_err(|e| self.io(&path, e))?,
        }
        // edits are numbered one by one: gaps among the intact ones were lost
        let mut lost = 0u64;
        let mut prev = base;
        for &seq in &scan.seqs {
            lost += seq.saturating_sub(prev + 1);
            prev = prev.max(seq);
        }
        let mut what = Vec::new();
        if scan.damaged_header {
            what.push("its header".to_string());
        }
        if scan.damaged_bytes > 0 {
            what.push(format!("{} byte(s) in {} place(s)", scan.damaged_bytes, scan.damaged_regions));
        }
        self.damage = Some(format!(
            "the edit journal was damaged ({}): {kept} intact edit(s) kept, {lost} edit(s) between them could not \
             be read{}; the damaged file is kept as {}",
            what.join(" and "),
            if scan.torn { ", and a last edit was cut short" } else { "" },
            aside.display()
        ));
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Completed edits in this session.
    pub fn edit_counter(&self) -> u64 {
        self.manifest.edit_counter
    }

    /// True when edits were journaled since the last snapshot (time to autosave).
    pub fn needs_autosave(&self) -> bool {
        self.journal_records > 0
    }

    fn io(&self, path: &Path, source: io::Error) -> SessionError {
        SessionError::Io { path: path.to_path_buf(), dir: self.dir.clone(), source }
    }

    fn corrupt(&self, path: &Path, what: impl Into<String>) -> SessionError {
        SessionError::Corrupt { path: path.to_path_buf(), dir: self.dir.clone(), what: what.into() }
    }

    /// Writes `bytes` as `name` in the session folder atomically.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), SessionError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let res = (|| -> io::Result<()> {
            fs::create_dir_all(&self.dir)?;
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            // the rename itself is durable only once the folder is
            File::open(&self.dir)?.sync_all()
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(|e| self.io(&path, e))
    }

    fn write_manifest(&self) -> Result<(), SessionError> {
        let bytes = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| self.io(&self.dir.join(MANIFEST), io::Error::other(e)))?;
        self.write_atomic(MANIFEST, &bytes)
    }

    /// Writes a snapshot of `mask` (all edits so far) and starts an empty journal.
    pub fn autosave(&mut self, mask: &Mask) -> Result<(), SessionError> {
        self.ensure_lock()?;
        let geometry = Geometry { shape: mask.shape(), ..mask.geometry.clone() };
        let chunks = deflate_slabs(&mask.data);
        let now = now_ms();
        let header = SnapHeader {
            geometry,
            edit_counter: self.manifest.edit_counter,
            last_seq: self.seq,
            written_unix_ms: now,
            slab: SLAB,
            chunk_lens: chunks.iter().map(|c| c.len() as u64).collect(),
        };
        let bytes =
            snapshot_bytes(&header, &chunks).map_err(|e| self.io(&self.snapshot_path(), io::Error::other(e)))?;
        self.write_atomic(SNAPSHOT, &bytes)?;
        self.snapshot = Some((mask.shape(), self.seq));
        self.snapshot_damage = None;
        self.start_journal(mask.shape())?;
        self.manifest.updated_unix_ms = now;
        self.write_manifest()
    }

    fn start_journal(&mut self, shape: [usize; 3]) -> Result<(), SessionError> {
        let bytes = journal_header_bytes(shape, self.seq).map_err(|e| self.io(&self.journal_path(), e))?;
        self.write_atomic(JOURNAL, &bytes)?;
        self.journal_records = 0;
        self.torn_tail = false;
        Ok(())
    }

    /// Journals one completed edit: the current contents of the bricks it touched (from
    /// [`super::History::end_stroke`], `record`, `undo` or `redo`), appended and fsync'd.
    /// Without a snapshot yet (the first edit of a session) the whole mask is snapshotted
    /// instead, which includes the edit.
    pub fn record(&mut self, mask: &Mask, touched: &Touched) -> Result<(), SessionError> {
        if touched.is_empty() {
            return Ok(());
        }
        self.ensure_lock()?;
        self.manifest.edit_counter += 1;
        self.seq += 1;
        match self.snapshot {
            Some((shape, _)) if shape == mask.shape() && touched.shape == shape => {}
            _ => return self.autosave(mask),
        }
        let path = self.journal_path();
        if !path.exists() {
            self.start_journal(mask.shape())?;
        }
        let rec = record_bytes(self.seq, self.manifest.edit_counter, brick_contents(mask, &touched.brick_ids));
        let mut f = OpenOptions::new().append(true).open(&path).map_err(|e| self.io(&path, e))?;
        let before = f.metadata().map_err(|e| self.io(&path, e))?.len();
        // one write call: a crash leaves a prefix of this record at worst; a failed write
        // (disk full) is cut back off at once, so the next records follow whole ones
        if let Err(e) = f.write_all(&rec).and_then(|()| f.sync_data()) {
            let _ = f.set_len(before).and_then(|()| f.sync_data());
            return Err(self.io(&path, e));
        }
        self.journal_records += 1;
        self.manifest.updated_unix_ms = now_ms();
        Ok(())
    }

    /// Remembers that the user saved the mask to `path` after the current edit count, so
    /// the session no longer offers a restore until new edits are made.
    pub fn mark_saved(&mut self, path: &Path) -> Result<(), SessionError> {
        self.ensure_lock()?;
        self.manifest.saved_to = Some(fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        self.manifest.saved_edit_counter = Some(self.manifest.edit_counter);
        self.manifest.saved_unix_ms = Some(now_ms());
        self.write_manifest()
    }

    /// Stores the label table in the manifest (restored with the mask).
    pub fn save_labels(&mut self, labels: &LabelTable) -> Result<(), SessionError> {
        self.ensure_lock()?;
        self.manifest.labels = Some(labels.clone());
        self.write_manifest()
    }

    /// `Some` when the session holds edits made after the user's last save (or never
    /// saved): the viewer should offer to restore them.
    pub fn pending_restore(&self) -> Option<RestoreInfo> {
        if self.snapshot.is_none() && self.snapshot_damage.is_none() {
            return None;
        }
        let saved = self.manifest.saved_edit_counter.unwrap_or(0);
        (self.manifest.edit_counter > saved).then(|| self.info())
    }

    fn info(&self) -> RestoreInfo {
        RestoreInfo {
            session_dir: self.dir.clone(),
            study_path: self.manifest.study_path.clone(),
            edit_counter: self.manifest.edit_counter,
            saved_edit_counter: self.manifest.saved_edit_counter,
            saved_to: self.manifest.saved_to.clone(),
            journal_records: self.journal_records,
            torn_tail: self.torn_tail,
            damage: match (&self.damage, &self.snapshot_damage) {
                (Some(j), Some((_, s))) => Some(format!("{s}; {j}")),
                (j, s) => j.clone().or_else(|| s.as_ref().map(|(_, said)| said.clone())),
            },
            snapshot_damaged: self.snapshot_damage.is_some(),
            updated_unix_ms: self.manifest.updated_unix_ms,
        }
    }

    /// The mask after the last completed edit: the snapshot with the newer journal
    /// records replayed over it. Changes no file.
    pub fn restore(&self) -> Result<Restored, SessionError> {
        let path = self.snapshot_path();
        // found damaged at open: never read again (its bytes may even parse by now)
        if let Some((what, _)) = &self.snapshot_damage {
            return Err(self.corrupt(&path, what.clone()));
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SessionError::NothingToRestore { dir: self.dir.clone() })
            }
            Err(e) => return Err(self.io(&path, e)),
        };
        let (header, body) = self.parse_snapshot(&path, &bytes)?;
        let [nz, ny, nx] = header.geometry.shape;
        let slab_len = header.slab.max(1) * ny * nx;
        let mut data = vec![0u8; nz * ny * nx];
        let mut offsets = Vec::with_capacity(header.chunk_lens.len());
        let mut at = 0usize;
        for &l in &header.chunk_lens {
            offsets.push((at, l as usize));
            at += l as usize;
        }
        if !chunks_fit(&header, body.len()) {
            return Err(self.corrupt(&path, "chunk table does not match the data"));
        }
        let ok = data.par_chunks_mut(slab_len).zip(offsets.par_iter()).all(|(out, &(o, l))| {
            let mut dec = flate2::read::DeflateDecoder::new(&body[o..o + l]);
            dec.read_exact(out).is_ok()
        });
        if !ok {
            return Err(self.corrupt(&path, "a chunk does not inflate to its slices"));
        }
        let mut mask: Mask = Volume::new(
            Array3::from_shape_vec((nz, ny, nx), data).map_err(|e| self.corrupt(&path, e.to_string()))?,
            header.geometry.clone(),
        );
        let mut replayed = 0;
        let scan = self.scan_journal(true)?;
        if let Some(scan) = &scan {
            if scan.shape.unwrap_or(header.geometry.shape) == header.geometry.shape || scan.records.is_empty() {
                let g = BrickGrid::new(header.geometry.shape);
                let out = mask.data.as_slice_mut().ok_or_else(|| self.corrupt(&path, "layout"))?;
                for rec in scan.records.iter().filter(|r| r.seq > header.last_seq) {
                    for (id, bytes) in &rec.bricks {
                        if (*id as usize) < g.len() && bytes.len() == g.voxel_box(*id).len() {
                            super::write_box(out, header.geometry.shape, &g.voxel_box(*id), bytes);
                        }
                    }
                    replayed += 1;
                }
            } else {
                return Err(self.corrupt(&self.journal_path(), "the journal is for a different grid than the snapshot"));
            }
        }
        let mut info = self.info();
        info.journal_records = replayed;
        info.torn_tail = scan.as_ref().is_some_and(|s| s.torn);
        Ok(Restored { mask, info, labels: self.manifest.labels.clone() })
    }

    /// Forgets the autosaved edits (the user declined to restore them). The next edit
    /// starts a new snapshot.
    pub fn discard(&mut self) -> Result<(), SessionError> {
        self.ensure_lock()?;
        for name in [SNAPSHOT, JOURNAL] {
            let p = self.dir.join(name);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(&p, e)),
            }
        }
        self.snapshot = None;
        self.snapshot_damage = None;
        self.journal_records = 0;
        self.torn_tail = false;
        self.manifest.edit_counter = 0;
        self.manifest.saved_edit_counter = None;
        self.seq = 0;
        self.write_manifest()
    }

    fn parse_snapshot<'b>(&self, path: &Path, bytes: &'b [u8]) -> Result<(SnapHeader, &'b [u8]), SessionError> {
        parse_snapshot(bytes).map_err(|what| self.corrupt(path, what))
    }

    /// Reads the journal (see [`format::scan_journal`]); `None` when there is none.
    fn scan_journal(&self, with_bricks: bool) -> Result<Option<JournalScan>, SessionError> {
        let path = self.journal_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&path, e)),
        };
        let snap_seq = self.snapshot.map(|(_, s)| s).unwrap_or(0);
        Ok(Some(scan_journal(&bytes, snap_seq, with_bricks)))
    }

    /// Reads the whole snapshot and checks it as [`Session::restore`] would before
    /// inflating: `Ok(Ok(None))` when there is none, `Ok(Err(what))` when it is damaged.
    fn check_snapshot(&self) -> Result<Result<Option<SnapHeader>, String>, SessionError> {
        let path = self.snapshot_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
            Err(e) => return Err(self.io(&path, e)),
        };
        match self.parse_snapshot(&path, &bytes) {
            Ok((header, body)) if chunks_fit(&header, body.len()) => Ok(Ok(Some(header))),
            Ok(_) => Ok(Err("chunk table does not match the data".into())),
            Err(SessionError::Corrupt { what, .. }) => Ok(Err(what)),
            Err(e) => Err(e),
        }
    }
}
