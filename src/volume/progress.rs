//! The one progress callback every long function takes, defined here at the ground floor so
//! that `register`, `mesh`, `cluster` and `segment` (which may not see `study`) and `study`
//! (which ties it to a `study::Job`) all speak the same one.

/// Reports progress of a long job and says whether to go on: `report(fraction, message)`,
/// the fraction in `[0, 1]`, returns `false` once the user has cancelled.
pub type Progress<'a> = &'a (dyn Fn(f32, &str) -> bool + Sync);

/// Never cancels, reports nothing.
pub fn no_progress(_: f32, _: &str) -> bool {
    true
}
