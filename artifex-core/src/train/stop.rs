//! Stopping a running `fit` between two steps: on request ([`StopHandle`]) or on `SIGINT` /
//! `SIGTERM`, after which the trainer writes a checkpoint and returns.
//!
//! Signal handling is process-wide, so it is installed once, on the first `fit` that asks for
//! it (`TrainerConfig::handle_signals`, on by default), through `signal-hook`. While a `fit`
//! runs, the first SIGINT or SIGTERM only sets a flag that the loop reads after each step; a
//! second one terminates the process as the default action would (Ctrl-C twice never hangs).
//! Outside `fit` the handler does the default action, so a program behaves as if it had none.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::StopReason;

/// Asks a running `fit` to stop after its current step (cloneable; share it with another
/// thread, a UI or your own signal handler).
#[derive(Clone, Debug, Default)]
pub struct StopHandle {
    requested: Arc<AtomicBool>,
}

impl StopHandle {
    /// A handle nobody has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the trainer to stop after the step in progress (and write a checkpoint).
    pub fn request_stop(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a stop has been requested.
    pub fn is_stop_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Withdraws a request (the trainer does this when `fit` starts, so a new `fit` after an
    /// interrupted one runs).
    pub fn clear(&self) {
        self.requested.store(false, Ordering::SeqCst);
    }
}

/// Watches for termination signals while alive (one per running `fit`). A signal that arrives
/// but is never acted on (it came after the last step) gets its default action when the watch
/// ends, so a Ctrl-C is never swallowed.
pub(crate) struct SignalWatch {
    #[cfg(unix)]
    armed: bool,
    #[cfg(unix)]
    handled: std::cell::Cell<bool>,
}

impl SignalWatch {
    /// Starts watching when `enabled`; if the handler cannot be installed, warns and watches
    /// nothing (training goes on; Ctrl-C then kills the process as usual).
    pub(crate) fn start(enabled: bool) -> Self {
        #[cfg(unix)]
        {
            let armed = enabled && unix::arm();
            Self {
                armed,
                handled: std::cell::Cell::new(false),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = enabled;
            Self {}
        }
    }

    /// The signal received since the watch started, if any; the caller acts on it.
    pub(crate) fn received(&self) -> Option<StopReason> {
        #[cfg(unix)]
        if self.armed {
            let signal = unix::received();
            self.handled.set(self.handled.get() || signal.is_some());
            return signal.map(StopReason::Signal);
        }
        None
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.armed {
            let unhandled = unix::received().filter(|_| !self.handled.get());
            unix::disarm();
            if let Some(signal) = unhandled {
                let _ = signal_hook::low_level::emulate_default_handler(signal);
            }
        }
    }
}

#[cfg(unix)]
mod unix {
    use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::low_level;

    /// Running `fit` calls that watch signals.
    static ARMED: AtomicUsize = AtomicUsize::new(0);
    /// The signal received while armed (0: none).
    static RECEIVED: AtomicI32 = AtomicI32::new(0);
    /// Whether the handlers are installed (set once per process).
    static INSTALLED: OnceLock<bool> = OnceLock::new();

    /// Runs inside the signal handler: only atomics and the default-action emulation, both
    /// async-signal-safe.
    fn on_signal(signal: i32) {
        let first =
            ARMED.load(Ordering::SeqCst) > 0 && RECEIVED.swap(signal, Ordering::SeqCst) == 0;
        if !first {
            let _ = low_level::emulate_default_handler(signal);
        }
    }

    fn install() -> bool {
        [SIGINT, SIGTERM].into_iter().all(|signal| {
            // SAFETY: `on_signal` only touches atomics and calls signal-hook's
            // async-signal-safe `emulate_default_handler`.
            let registered = unsafe { low_level::register(signal, move || on_signal(signal)) };
            match registered {
                Ok(_) => true,
                Err(e) => {
                    eprintln!("warning: cannot watch signal {signal} ({e}); Ctrl-C will not stop training cleanly");
                    false
                }
            }
        })
    }

    pub(super) fn arm() -> bool {
        if !*INSTALLED.get_or_init(install) {
            return false;
        }
        if ARMED.fetch_add(1, Ordering::SeqCst) == 0 {
            RECEIVED.store(0, Ordering::SeqCst);
        }
        true
    }

    pub(super) fn received() -> Option<i32> {
        match RECEIVED.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    pub(super) fn disarm() {
        if ARMED.fetch_sub(1, Ordering::SeqCst) == 1 {
            RECEIVED.store(0, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_shared_by_its_clones() {
        let handle = StopHandle::new();
        let other = handle.clone();
        assert!(!handle.is_stop_requested());
        other.request_stop();
        assert!(handle.is_stop_requested());
        handle.clear();
        assert!(!other.is_stop_requested());
    }

    #[test]
    fn a_disabled_watch_reports_nothing() {
        let watch = SignalWatch::start(false);
        assert_eq!(watch.received(), None);
    }
}
