//! Long pieces of work on worker threads: a [`Job`] carries a progress fraction, a message
//! and a cancel flag that the UI polls every frame without blocking; [`take_ended`] tells
//! how one ended. The progress callback every long function takes is
//! [`crate::volume::Progress`], defined at the ground floor so that `register`, `mesh` and
//! `cluster` (below `study`) speak the same one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::volume::Progress;

/// A long piece of work on a worker thread, with a progress fraction, a message and a
/// cancel flag the UI can poll every frame without blocking.
pub struct Job<T> {
    state: Arc<Mutex<(f32, String)>>,
    cancel: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<T, String>>>,
    pub title: String,
}

/// How a job taken out of its slot by [`take_ended`] ended.
pub enum Ended<T> {
    Done(T),
    Failed(String),
    /// The user cancelled it (whatever error the work returned on the way out).
    Cancelled,
}

/// The job in `slot` once it has ended, taken out of the slot so a panel can start
/// another; `None` while it runs or when there is none.
pub fn take_ended<T: Send + 'static>(slot: &mut Option<Job<T>>) -> Option<Ended<T>> {
    let job = slot.as_mut()?;
    let result = job.try_finish()?;
    let cancelled = job.is_cancelled();
    *slot = None;
    Some(match result {
        Ok(v) => Ended::Done(v),
        Err(_) if cancelled => Ended::Cancelled,
        Err(e) => Ended::Failed(e),
    })
}

impl<T: Send + 'static> Job<T> {
    /// Runs `work` on a new thread; it gets a progress function to call often.
    pub fn spawn(
        title: impl Into<String>,
        work: impl FnOnce(Progress) -> Result<T, String> + Send + 'static,
    ) -> Job<T> {
        let state = Arc::new(Mutex::new((0.0, String::from("starting…"))));
        let cancel = Arc::new(AtomicBool::new(false));
        let (st, ca) = (Arc::clone(&state), Arc::clone(&cancel));
        let handle = std::thread::spawn(move || {
            let report = move |f: f32, m: &str| {
                if let Ok(mut g) = st.lock() {
                    *g = (f.clamp(0.0, 1.0), m.to_string());
                }
                !ca.load(Ordering::Relaxed)
            };
            work(&report)
        });
        Job { state, cancel, handle: Some(handle), title: title.into() }
    }

    /// (fraction 0…1, message).
    pub fn progress(&self) -> (f32, String) {
        self.state.lock().map(|g| g.clone()).unwrap_or((0.0, String::new()))
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The result once the work has ended, without blocking; `None` while it runs.
    pub fn try_finish(&mut self) -> Option<Result<T, String>> {
        if !self.handle.as_ref()?.is_finished() {
            return None;
        }
        let handle = self.handle.take()?;
        Some(
            handle
                .join()
                .unwrap_or_else(|_| Err("the loading thread crashed; please report this with the study".into())),
        )
    }

    /// Blocks until the work ends (CLI, tests).
    pub fn wait(mut self) -> Result<T, String> {
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| Err("the worker thread crashed".into())),
            None => Err("already finished".into()),
        }
    }
}
