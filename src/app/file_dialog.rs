//! Native file dialogs (the `rfd` crate: on Linux the desktop's file chooser through the
//! xdg-desktop-portal, over a D-Bus library loaded at run time, else zenity; no GTK to
//! build against). A dialog blocks whoever asks it, so it is asked on a worker thread and
//! the panel polls for the answer each frame; the answer then goes to the same function
//! a typed path and the tests use ([`super::HepaviewApp::open_paths`],
//! [`super::edit::EditPanel::save_as`], [`super::analysis::AnalysisPanel::set_export_dir`]).
//! The typed path fields stay, for desktops without a portal and for remote sessions.

use std::path::PathBuf;
use std::sync::mpsc;

/// What the dialog is for, which decides its kind (folder, files, save) and filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A DICOM study folder to open.
    OpenFolder,
    /// NIfTI files of one study to open (phases, and a label mask).
    OpenFiles,
    /// Where to save the label mask (NIfTI).
    SaveMask,
    /// The folder a report goes into.
    ReportFolder,
}

/// A dialog open on a worker thread.
pub struct Pending {
    pub purpose: Purpose,
    answer: mpsc::Receiver<Vec<PathBuf>>,
}

/// What [`Pending::poll`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Still open.
    Waiting,
    /// Closed without a choice (cancelled, or no dialog could be shown).
    Nothing,
    Chosen(Vec<PathBuf>),
}

impl Pending {
    /// Opens the native dialog for `purpose` on a worker thread, starting in `start`
    /// (a folder) and, when saving, offering `file_name`.
    pub fn ask(purpose: Purpose, start: Option<PathBuf>, file_name: Option<String>) -> Pending {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("file dialog".into()).spawn(move || {
            let mut d = rfd::FileDialog::new();
            if let Some(dir) = start.filter(|d| d.is_dir()) {
                d = d.set_directory(dir);
            }
            let chosen: Vec<PathBuf> = match purpose {
                Purpose::OpenFolder => d.set_title("Open a DICOM study folder").pick_folder().into_iter().collect(),
                Purpose::OpenFiles => d
                    .set_title("Open NIfTI files of one study")
                    .add_filter("NIfTI", &["nii.gz", "nii", "gz"])
                    .pick_files()
                    .unwrap_or_default(),
                Purpose::SaveMask => {
                    let d = d.set_title("Save the label mask").add_filter("NIfTI", &["nii.gz", "nii"]);
                    let d = match file_name {
                        Some(n) => d.set_file_name(n),
                        None => d,
                    };
                    d.save_file().into_iter().collect()
                }
                Purpose::ReportFolder => d.set_title("Folder for the report").pick_folder().into_iter().collect(),
            };
            let _ = tx.send(chosen);
        });
        if spawned.is_err() {
            // no thread: the receiver sees a closed channel, which reads as "nothing chosen"
        }
        Pending { purpose, answer: rx }
    }

    /// The answer, once the dialog has closed.
    pub fn poll(&self) -> Answer {
        match self.answer.try_recv() {
            Ok(paths) if paths.is_empty() => Answer::Nothing,
            Ok(paths) => Answer::Chosen(paths),
            Err(mpsc::TryRecvError::Empty) => Answer::Waiting,
            Err(mpsc::TryRecvError::Disconnected) => Answer::Nothing,
        }
    }
}

/// The hint shown when a dialog closed without a path: cancelled, or the desktop has no
/// file chooser (no xdg-desktop-portal and no zenity), which rfd cannot tell apart.
pub const NOTHING_CHOSEN: &str =
    "No path chosen (cancelled, or this desktop offers no file chooser): type the path instead.";
