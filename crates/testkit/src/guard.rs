//! Cleanup that cannot be forgotten: a guard runs it when the guard is dropped, which Rust does
//! at the end of the scope on every path, early returns and `?` included, and also while a
//! failed assertion unwinds the test. So a test that starts a process or a compose project
//! leaves nothing running, whether it passes or not.
//!
//! What drop cannot cover: a process killed outright (SIGKILL, or Ctrl-C with no handler) runs
//! no destructor at all. Long-lived launchers install a signal handler for that as well.

/// Runs its closure once, when dropped, unless [`Guard::disarm`]ed first.
pub struct Guard<F: FnOnce()> {
    cleanup: Option<F>,
}

impl<F: FnOnce()> Guard<F> {
    pub fn new(cleanup: F) -> Guard<F> {
        Guard {
            cleanup: Some(cleanup),
        }
    }

    /// The cleanup is done another way (and checked there): dropping does nothing now.
    pub fn disarm(&mut self) {
        self.cleanup = None;
    }
}

impl<F: FnOnce()> Drop for Guard<F> {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_cleanup_runs_once_on_drop_and_not_when_disarmed() {
        let runs = Cell::new(0);
        drop(Guard::new(|| runs.set(runs.get() + 1)));
        assert_eq!(runs.get(), 1);
        let mut guard = Guard::new(|| runs.set(runs.get() + 1));
        guard.disarm();
        drop(guard);
        assert_eq!(runs.get(), 1);
    }

    #[test]
    fn the_cleanup_runs_when_a_panic_unwinds() {
        let ran = std::sync::atomic::AtomicBool::new(false);
        let result = std::panic::catch_unwind(|| {
            let _guard = Guard::new(|| ran.store(true, std::sync::atomic::Ordering::Relaxed));
            panic!("a failed assertion");
        });
        assert!(result.is_err());
        assert!(ran.load(std::sync::atomic::Ordering::Relaxed));
    }
}
