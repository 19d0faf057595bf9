//! Native file dialogs (the `rfd` crate: on Linux the desktop's file chooser through the
//! xdg-desktop-portal, over a D-Bus library loaded at run time, else zenity; no GTK to
//! build against). The dialog is made on the UI thread and waited for on a worker thread;
//! the panel polls for the answer each frame; the answer then goes to the same function
//! a typed path and the tests use ([`super::HepaviewApp::open_paths`],
//! [`super::edit::EditPanel::save_as`], [`super::analysis::AnalysisPanel::set_export_dir`]).
//! The typed path fields stay, for desktops without a portal and for remote sessions.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
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
    /// Opens the native dialog for `purpose`, starting in `start` (a folder) and, when
    /// saving, offering `file_name`. Call it on the UI thread: the dialog is made here
    /// (macOS wants that) and waited for on a worker thread, so the UI keeps drawing.
    pub fn ask(purpose: Purpose, start: Option<PathBuf>, file_name: Option<String>) -> Pending {
        let (tx, rx) = mpsc::channel();
        let mut d = rfd::AsyncFileDialog::new();
        if let Some(dir) = start.as_deref().and_then(nearest_folder) {
            d = d.set_directory(dir);
        }
        let one = |h: Option<rfd::FileHandle>| h.map(|h| vec![h.path().to_path_buf()]).unwrap_or_default();
        let answer: Pin<Box<dyn Future<Output = Vec<PathBuf>> + Send>> = match purpose {
            Purpose::OpenFolder => {
                let f = d.set_title("Open a DICOM study folder").pick_folder();
                Box::pin(async move { one(f.await) })
            }
            Purpose::OpenFiles => {
                let f = d
                    .set_title("Open NIfTI files of one study")
                    .add_filter("NIfTI", &["nii.gz", "nii", "gz"])
                    .pick_files();
                Box::pin(async move { f.await.unwrap_or_default().iter().map(|h| h.path().to_path_buf()).collect() })
            }
            Purpose::SaveMask => {
                let d = d.set_title("Save the label mask").add_filter("NIfTI", &["nii.gz", "nii"]);
                let d = match file_name {
                    Some(n) => d.set_file_name(n),
                    None => d,
                };
                let f = d.save_file();
                Box::pin(async move { one(f.await) })
            }
            Purpose::ReportFolder => {
                let f = d.set_title("Folder for the report").pick_folder();
                Box::pin(async move { one(f.await) })
            }
        };
        // Without a thread the sender is dropped: the panel reads that as "nothing chosen".
        let _ = std::thread::Builder::new().name("file dialog".into()).spawn(move || {
            let _ = tx.send(pollster::block_on(answer));
        });
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

/// The folder a dialog opens in: `start` itself or its nearest existing ancestor. The
/// offered report folder (`~/hepaview-reports/report-…`) and a typed save path often do not
/// exist yet; without this the desktop's chooser falls back to "Recent" (seen with the GTK
/// portal), far from where the user was heading.
fn nearest_folder(start: &std::path::Path) -> Option<PathBuf> {
    start.ancestors().find(|a| !a.as_os_str().is_empty() && a.is_dir()).map(|a| a.to_path_buf())
}

/// The hint shown when a dialog closed without a path: cancelled, or the desktop has no
/// file chooser (no xdg-desktop-portal and no zenity), which rfd cannot tell apart.
pub const NOTHING_CHOSEN: &str =
    "No path chosen (cancelled, or this desktop offers no file chooser): type the path instead.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialog_opens_in_the_nearest_folder_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("hepaview-reports").join("report-1");
        assert_eq!(nearest_folder(&deep).as_deref(), Some(dir.path()));
        assert_eq!(nearest_folder(dir.path()).as_deref(), Some(dir.path()));
        // a bare file name (the default "mask-edited.nii.gz") has no folder to start in
        assert_eq!(nearest_folder(std::path::Path::new("mask-edited.nii.gz")), None);
    }

    /// With no desktop to show a dialog (no display, no session bus: CI), asking does not
    /// hang the panel: the answer is "nothing chosen", which the panels turn into the hint
    /// to type the path. Skipped where a real dialog could open.
    #[test]
    fn without_a_desktop_the_dialog_answers_nothing() {
        if ["DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"].iter().any(|v| std::env::var_os(v).is_some()) {
            eprintln!("skipping: a desktop session is present, a real dialog would open");
            return;
        }
        let p = Pending::ask(Purpose::OpenFolder, None, None);
        assert_eq!(p.purpose, Purpose::OpenFolder);
        let t0 = std::time::Instant::now();
        loop {
            match p.poll() {
                Answer::Waiting if t0.elapsed().as_secs() < 20 => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Answer::Waiting => panic!("no answer within 20 s without a desktop"),
                Answer::Nothing => break,
                Answer::Chosen(p) => panic!("chose {p:?} without a desktop"),
            }
        }
    }
}
