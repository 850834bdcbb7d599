//! The page's handle on its worker. A wasm worker busy on the CPU reads no message, so a run is
//! stopped in the middle in one of three ways: through the engine's stop flag, which the
//! multi-threaded worker shares; with a `Stop` message to a worker on the GPU, which reads
//! messages while it awaits the device (either way the worker keeps its model and reports the
//! run as stopped); or by dropping this handle, which terminates the worker (it then has to load
//! the model again).

use crate::state::backend::BackendChoice;
use crate::web::protocol::{FromWorker, ToWorker};
use js_sys::{Atomics, Int32Array};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    BroadcastChannel, ErrorEvent, Event, MessageEvent, Worker, WorkerOptions, WorkerType,
};

/// Loads the same wasm as the page, or its multi-threaded build, and serves the engine.
const WORKER_SCRIPT: &str = "./worker.js";

pub struct WorkerBridge {
    worker: Worker,
    /// The worker's stop flag, once its `Ready` says where it is (multi-threaded build only).
    stop_flag: Option<Int32Array>,
    /// The worker computes on the GPU: it reads a `Stop` while it runs.
    on_gpu: bool,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
    /// Where the worker's pool threads report their death, and the thread that computes a run
    /// its progress (see `spawn`).
    channel: BroadcastChannel,
    _on_channel_message: Closure<dyn FnMut(MessageEvent)>,
}

impl WorkerBridge {
    /// A worker computing on `backend`. `on_message` gets every message; a worker crash arrives
    /// as `LoadFailed`/`RunFailed`-like text through `on_crash`.
    pub fn spawn(
        backend: BackendChoice,
        on_message: impl Fn(FromWorker) + 'static,
        on_crash: impl Fn(String) + 'static,
    ) -> Result<Self, String> {
        let (on_message, on_crash) = (Rc::new(on_message), Rc::new(on_crash));
        // A pool thread that dies cannot tell the worker, which may be blocked waiting for it
        // (its error event would never be dispatched there): `public/worker.js` has each pool
        // thread post its death (a string) on a channel named after the worker, which this page
        // hears. A run's progress comes the same way (a message), whichever thread computes it.
        let name = format!("salient-engine-{}", (js_sys::Math::random() * 1e15) as u64);
        let channel = BroadcastChannel::new(&name)
            .map_err(|e| format!("This browser could not open a BroadcastChannel: {e:?}"))?;
        let (on_progress, on_death) = (on_message.clone(), on_crash.clone());
        let _on_channel_message =
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                match event.data().as_string() {
                    // The worker's own panic hook (`crash.rs`) says what went wrong.
                    Some(death) => {
                        on_death(match death.strip_prefix(crate::web::crash::PANIC_NOTICE) {
                            Some(panic) => format!("it hit a bug: {panic}"),
                            None => format!("one of its threads failed: {death}"),
                        })
                    }
                    None => receive(event, &*on_progress),
                }
            });
        channel.set_onmessage(Some(_on_channel_message.as_ref().unchecked_ref()));
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        options.set_name(&name);
        let script = format!("{WORKER_SCRIPT}?backend={}", backend.name());
        let worker = Worker::new_with_options(&script, &options)
            .map_err(|e| format!("This browser could not start a Web Worker: {e:?}"))?;
        let _on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            receive(event, &*on_message)
        });
        // An uncaught error in the worker is an `ErrorEvent`; a worker script that could not be
        // loaded fires a plain `Event`.
        let _on_error = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            event.prevent_default();
            on_crash(match event.dyn_ref::<ErrorEvent>() {
                Some(error) => error.message(),
                None => format!("its script {WORKER_SCRIPT} could not be loaded"),
            });
        });
        worker.set_onmessage(Some(_on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(_on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            stop_flag: None,
            on_gpu: false,
            _on_message,
            _on_error,
            channel,
            _on_channel_message,
        })
    }

    pub fn send(&self, message: &ToWorker) {
        let value = serde_wasm_bindgen::to_value(message).expect("messages serialize");
        if let Err(e) = self.worker.post_message(&value) {
            web_sys::console::error_1(&e);
        }
    }

    /// Keeps the stop flag the worker announced in `Ready` (`undefined`: it has none).
    pub fn set_stop_flag(&mut self, flag: &JsValue) {
        self.stop_flag = flag.dyn_ref::<Int32Array>().cloned();
    }

    /// Whether the worker computes on the GPU (its `Loaded`, and each run's timings, say).
    pub fn set_on_gpu(&mut self, on_gpu: bool) {
        self.on_gpu = on_gpu;
    }

    pub fn stoppable(&self) -> bool {
        self.stop_flag.is_some() || self.on_gpu
    }

    /// Stops every run up to id `through` (sent or not yet read by the worker); false when this
    /// worker cannot be stopped that way. The run's next map fails, and it reports `Stopped` (a
    /// `RunFailed`, or a failed `Faithfulness` for each measurement still due).
    pub fn stop(&self, through: u64) -> bool {
        if self.on_gpu {
            self.send(&ToWorker::Stop { through });
            return true;
        }
        let through = i32::try_from(through).unwrap_or(i32::MAX);
        self.stop_flag.as_ref().is_some_and(|flag| Atomics::store(flag, 0, through).is_ok())
    }
}

/// Hands a message from the worker to `on_message`.
fn receive(event: MessageEvent, on_message: &dyn Fn(FromWorker)) {
    match serde_wasm_bindgen::from_value::<FromWorker>(event.data()) {
        Ok(message) => on_message(message),
        Err(e) => {
            web_sys::console::error_1(&format!("unreadable message from the worker: {e}").into())
        }
    }
}

impl Drop for WorkerBridge {
    fn drop(&mut self) {
        // Terminating a worker does not stop its pool's threads in the middle of a computation:
        // without the stop they would go on to its end, taking the cores from the next worker.
        self.stop(u64::MAX);
        self.worker.terminate();
        self.channel.close();
    }
}
