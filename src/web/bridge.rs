//! The page's handle on its worker. Dropping it terminates the worker: that is how a run is
//! cancelled mid-computation (a busy wasm worker cannot read a "stop" message).

use super::protocol::{FromWorker, ToWorker};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

/// Loads the same wasm as the page, or its multi-threaded build, and serves the engine.
const WORKER_SCRIPT: &str = "./worker.js";

pub struct WorkerBridge {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerBridge {
    /// `on_message` gets every message; a worker crash arrives as `LoadFailed`/`RunFailed`-like
    /// text through `on_crash`.
    pub fn spawn(on_message: impl Fn(FromWorker) + 'static, on_crash: impl Fn(String) + 'static) -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(WORKER_SCRIPT, &options)
            .map_err(|e| format!("This browser could not start a Web Worker: {e:?}"))?;
        let _on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            match serde_wasm_bindgen::from_value::<FromWorker>(event.data()) {
                Ok(message) => on_message(message),
                Err(e) => web_sys::console::error_1(&format!("unreadable message from the worker: {e}").into()),
            }
        });
        let _on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            on_crash(event.message());
        });
        worker.set_onmessage(Some(_on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(_on_error.as_ref().unchecked_ref()));
        Ok(Self { worker, _on_message, _on_error })
    }

    pub fn send(&self, message: &ToWorker) {
        let value = serde_wasm_bindgen::to_value(message).expect("messages serialize");
        if let Err(e) = self.worker.post_message(&value) {
            web_sys::console::error_1(&e);
        }
    }
}

impl Drop for WorkerBridge {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
