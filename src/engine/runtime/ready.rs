//! Waiting for a computation's future where the caller cannot await it (the CLI, the tests, the
//! page's CPU runs on a pool thread). A CPU computation never waits on anything: its future is
//! ready the first time it is polled. A future that waits (the GPU's reads) needs a real executor
//! (`pollster` natively, the browser's event loop in the page).

use crate::engine::error::{EngineError, Result};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The result of `future`, which must not wait: an internal error if it did.
pub fn now<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(EngineError::Internal(
            "a computation that may not wait (a CPU run) waited for something".into(),
        )),
    }
}
