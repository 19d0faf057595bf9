//! Keys for data uploaded to the GPU: new data, new key. At the ground floor because the
//! study (phases, masks) and `render` (surfaces) both hand out keys, and `app::gpu`
//! uploads by key rather than by frame.

use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh key for data uploaded to the GPU: new data, new key.
pub fn next_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
