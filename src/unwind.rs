//! Panic policy: a panic in a handler or hook becomes a [`PanicError`]
//! for `handle_error` instead of unwinding into the loop.
//!
//! std's panic hook runs *before* the panic is caught, so by default the
//! message (and a backtrace with `RUST_BACKTRACE=1`) is printed to stderr
//! and then `handle_error` reports it again.
//! [`ServerBuilder::quiet_panics`](crate::ServerBuilder::quiet_panics) routes
//! a caught panic to `handle_error` only. A binary built with
//! `panic = "abort"` cannot catch anything: the first panic ends the process.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use crate::error::{HandlerError, HandlerResult, PanicError};

thread_local! {
    /// Set while a request of a `quiet_panics` server runs on this thread.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into a [`PanicError`].
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T, HandlerError>) -> Result<T, HandlerError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(Box::new(PanicError::from_payload(payload))))
}

/// Runs a hook that returns nothing, turning a panic into an error.
pub(crate) fn catch_hook(f: impl FnOnce()) -> HandlerResult {
    catch(|| {
        f();
        Ok(())
    })
}

/// Runs `f` with std's panic message suppressed on this thread when `quiet`
/// (the panic still reaches `handle_error` as a [`PanicError`]).
pub(crate) fn quiet_if<T>(quiet: bool, f: impl FnOnce() -> T) -> T {
    if !quiet {
        return f();
    }
    install_quiet_hook();
    let before = QUIET.with(|q| q.replace(true));
    let out = f();
    QUIET.with(|q| q.set(before));
    out
}

/// Wraps the process's panic hook once: it stays silent on threads inside
/// [`quiet_if`] and calls the previous hook everywhere else.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}
