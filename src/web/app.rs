//! The page's state and its wiring to the worker: what the user chose (`Settings`), what the
//! worker returned, and the bookkeeping that keeps one run at a time and never shows a stale one.

use super::bridge::WorkerBridge;
use super::compare::{CompareControls, ComparePanel};
use super::controls::{Editor, MethodControls, ViewControls};
use super::faithfulness::FaithfulnessPanel;
use super::heatmap::{HeatMap, Legend};
use super::matrix::ContinuationMatrix;
use super::panels::{Completeness, ModelLine, Status, TimingsPanel};
use super::protocol::{FromWorker, ModelSummary, RunOutput, Timings, ToWorker};
use super::settings::Settings;
use super::targets::{Predictions, TargetPanel};
use crate::engine::faithfulness::Faithfulness;
use crate::engine::methods;
use leptos::prelude::*;

const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const DEBOUNCE_MS: u32 = 400;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    Loading,
    Ready,
    Running,
    Done,
    Error,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Ready => "ready",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Error => "error",
        }
    }
}

/// When a change of settings reruns the model.
#[derive(Clone, Copy, PartialEq)]
pub enum Rerun {
    Now,
    /// After the user pauses (typing, stepping a number).
    AfterPause,
    /// A view setting: the shown result is redrawn, nothing is recomputed.
    Never,
}

/// The faithfulness check of one map, measured after the map is shown.
#[derive(Clone, Debug, PartialEq)]
pub enum Measurement {
    Measuring,
    Measured { report: Faithfulness, ms: f64 },
    Failed(String),
    /// The run was cancelled before this map was measured.
    Cancelled,
}

/// Everything the page shows; all handles are `Copy`, so closures capture the whole struct.
#[derive(Clone, Copy)]
pub struct Ui {
    pub phase: RwSignal<Phase>,
    pub message: RwSignal<String>,
    pub progress: RwSignal<Option<(f64, Option<f64>)>>,
    pub model: RwSignal<Option<ModelSummary>>,
    /// Every choice the user made; runs are built from it alone.
    pub settings: RwSignal<Settings>,
    pub result: RwSignal<Option<RunOutput>>,
    /// The faithfulness of the shown maps, by method name, in the order they are measured.
    pub faithfulness: RwSignal<Vec<(String, Measurement)>>,
    /// The continuation row shown on the text; `None`: the next-token map.
    pub row: RwSignal<Option<usize>>,
    pub timings: RwSignal<Option<Timings>>,
    pub load_ms: RwSignal<Option<f64>>,
    runs: StoredValue<RunState, LocalStorage>,
    bridge: StoredValue<Option<WorkerBridge>, LocalStorage>,
    debounce: StoredValue<Option<gloo::timers::callback::Timeout>, LocalStorage>,
}

/// Bookkeeping that keeps at most one run in the worker and never shows a stale result.
#[derive(Default)]
struct RunState {
    model_ready: bool,
    latest_id: u64,
    /// The worker is computing: a run's maps, or the faithfulness measurements after them.
    busy: bool,
    /// Faithfulness messages still to come from the run in the worker.
    measurements_due: usize,
    /// A run was asked for while the worker was busy or loading: start it when it is free.
    pending: bool,
    /// The worker was replaced to stop a run; say so once the model is back.
    cancelled: bool,
}

impl Ui {
    fn new() -> Self {
        Ui {
            phase: RwSignal::new(Phase::Loading),
            message: RwSignal::new("Starting…".into()),
            progress: RwSignal::new(None),
            model: RwSignal::new(None),
            settings: RwSignal::new(Settings::default()),
            result: RwSignal::new(None),
            faithfulness: RwSignal::new(Vec::new()),
            row: RwSignal::new(None),
            timings: RwSignal::new(None),
            load_ms: RwSignal::new(None),
            // The example runs as soon as the model is loaded.
            runs: StoredValue::new_local(RunState { pending: true, ..RunState::default() }),
            bridge: StoredValue::new_local(None),
            debounce: StoredValue::new_local(None),
        }
    }

    /// One part of the settings, as a memo: readers rerender only when that part changes.
    pub fn setting<T: Clone + PartialEq + Send + Sync + 'static>(self, part: fn(&Settings) -> T) -> Memo<T> {
        Memo::new(move |_| self.settings.with(part))
    }

    /// Changes the settings, then reruns as `rerun` says.
    pub fn change(self, edit: impl FnOnce(&mut Settings), rerun: Rerun) {
        self.settings.update(edit);
        match rerun {
            Rerun::Now => self.run(),
            Rerun::AfterPause => {
                let timeout = gloo::timers::callback::Timeout::new(DEBOUNCE_MS, move || self.run());
                self.debounce.set_value(Some(timeout));
            }
            Rerun::Never => {}
        }
    }

    /// The faithfulness of `method`'s map in the shown result, if it was asked for.
    pub fn measurement(self, method: &str) -> Option<Measurement> {
        self.faithfulness.with(|all| all.iter().find(|(m, _)| m == method).map(|(_, state)| state.clone()))
    }

    /// Whether Cancel has something to stop: a run, or the faithfulness check after one.
    pub fn cancellable(self) -> bool {
        self.phase.get() == Phase::Running
            || self.faithfulness.with(|all| all.iter().any(|(_, state)| *state == Measurement::Measuring))
    }

    fn status(&self, phase: Phase, message: impl Into<String>) {
        self.phase.set(phase);
        self.message.set(message.into());
    }

    fn model_url() -> String {
        let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
        web_sys::UrlSearchParams::new_with_str(&search)
            .ok()
            .and_then(|p| p.get("model"))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_MODEL.to_string())
    }

    /// Starts a fresh worker and loads the model into it.
    fn start_worker(self) {
        self.runs.update_value(|r| {
            r.model_ready = false;
            r.busy = false;
            r.measurements_due = 0;
        });
        self.bridge.set_value(None); // terminates the old worker, if any
        let on_message = move |m| self.on_worker_message(m);
        let on_crash = move |why: String| {
            self.bridge.set_value(None);
            self.runs.update_value(|r| *r = RunState { latest_id: r.latest_id, ..RunState::default() });
            self.stop_measuring();
            self.status(Phase::Error, format!("The worker stopped ({why}). Reload the page to try again; your text is kept."));
        };
        match WorkerBridge::spawn(on_message, on_crash) {
            Ok(bridge) => self.bridge.set_value(Some(bridge)),
            Err(message) => self.status(Phase::Error, message),
        }
    }

    fn send(&self, message: &ToWorker) {
        self.bridge.with_value(|b| {
            if let Some(bridge) = b {
                bridge.send(message)
            }
        });
    }

    fn on_worker_message(self, message: FromWorker) {
        match message {
            FromWorker::Ready => {
                let url = Self::model_url();
                self.status(Phase::Loading, format!("Downloading {url}…"));
                self.send(&ToWorker::Load { url });
            }
            FromWorker::Progress { loaded, total } => {
                self.progress.set(Some((loaded, total)));
                let percent = total.map(|t| format!(" ({:.0}%)", 100.0 * loaded / t.max(1.0))).unwrap_or_default();
                let of_total = total.map(|t| format!(" of {}", megabytes(t))).unwrap_or_default();
                self.status(Phase::Loading, format!("Downloading the model: {}{of_total}{percent}", megabytes(loaded)));
            }
            FromWorker::Loaded { model, load_ms } => {
                self.progress.set(None);
                self.load_ms.set(Some(load_ms));
                let (run_now, cancelled) = self
                    .runs
                    .try_update_value(|r| {
                        r.model_ready = true;
                        (std::mem::take(&mut r.pending), std::mem::take(&mut r.cancelled))
                    })
                    .unwrap_or_default();
                let message = match cancelled {
                    true => "Run cancelled. Edit the text or press Run to start again.".to_string(),
                    false => format!("{} loaded in {:.1} s.", model.name, load_ms / 1000.0),
                };
                self.status(Phase::Ready, message);
                self.model.set(Some(model));
                if run_now {
                    self.run();
                }
            }
            FromWorker::LoadFailed { message } => {
                self.progress.set(None);
                self.model.set(None);
                self.status(Phase::Error, message);
            }
            FromWorker::Done { id, output, timings, measuring } => {
                self.runs.update_value(|r| r.measurements_due = measuring.len());
                if self.is_current(id) {
                    let target = &output.attribution.target;
                    self.status(
                        Phase::Done,
                        format!("Explained {:?} (p = {:.3}) in {:.0} ms.", target.text, target.prob, timings.total_ms),
                    );
                    self.faithfulness.set(measuring.iter().map(|m| (m.clone(), Measurement::Measuring)).collect());
                    self.row.set(None);
                    self.result.set(Some(output));
                    self.timings.set(Some(timings));
                }
                if measuring.is_empty() {
                    self.worker_free();
                }
            }
            FromWorker::Faithfulness { id, method, outcome, ms } => {
                let last = self
                    .runs
                    .try_update_value(|r| {
                        r.measurements_due = r.measurements_due.saturating_sub(1);
                        r.measurements_due == 0
                    })
                    .unwrap_or(true);
                if self.is_current(id) {
                    let measured = match outcome {
                        Ok(report) => Measurement::Measured { report, ms },
                        Err(message) => Measurement::Failed(message),
                    };
                    self.faithfulness.update(|all| {
                        if let Some(entry) = all.iter_mut().find(|(m, _)| *m == method) {
                            entry.1 = measured;
                        }
                    });
                }
                if last {
                    self.worker_free();
                }
            }
            FromWorker::RunFailed { id, message } => {
                if self.is_current(id) {
                    self.result.set(None);
                    self.faithfulness.set(Vec::new());
                    self.status(Phase::Error, message);
                }
                self.worker_free();
            }
        }
    }

    /// Whether run `id`'s messages are the ones to show: it is the latest run and no newer one
    /// waits for the worker.
    fn is_current(self, id: u64) -> bool {
        self.runs.with_value(|r| id == r.latest_id && !r.pending)
    }

    /// The worker finished everything it was asked; start the run that waited, if any.
    fn worker_free(self) {
        let pending = self
            .runs
            .try_update_value(|r| {
                r.busy = false;
                std::mem::take(&mut r.pending)
            })
            .unwrap_or(false);
        if pending {
            self.run();
        }
    }

    /// Runs the current settings (or queues them while the worker is busy or loading).
    pub fn run(self) {
        self.debounce.set_value(None);
        let (id, busy) = self
            .runs
            .try_update_value(|r| {
                if !r.model_ready || r.busy {
                    r.pending = true;
                    return (None, r.busy);
                }
                r.busy = true;
                r.latest_id += 1;
                (Some(r.latest_id), false)
            })
            .unwrap_or((None, false));
        let settings = self.settings.get_untracked();
        let label = methods::by_name(&settings.method).map(|m| m.label()).unwrap_or(&settings.method);
        match id {
            Some(id) => {
                self.status(Phase::Running, format!("Computing {label}…"));
                let (request, compare) = (settings.request(), settings.compare.clone());
                self.send(&ToWorker::Run { id, request, compare });
            }
            // The shown map is done and its faithfulness is being measured: the new run follows.
            None if busy && self.phase.get_untracked() != Phase::Running => {
                self.status(Phase::Running, format!("Finishing the faithfulness check, then computing {label}…"));
            }
            None => {}
        }
    }

    /// Stops the running computation by replacing the worker; the text and settings stay.
    pub fn cancel(self) {
        let busy = self.runs.with_value(|r| r.busy || r.pending);
        if !busy {
            return;
        }
        self.debounce.set_value(None);
        self.runs.update_value(|r| {
            r.pending = false;
            r.cancelled = true;
        });
        self.stop_measuring();
        self.start_worker();
        self.status(Phase::Loading, "Run cancelled; restarting the worker…");
    }

    /// Measurements still running will never arrive.
    fn stop_measuring(self) {
        self.faithfulness.update(|all| {
            for (_, state) in all.iter_mut().filter(|(_, state)| *state == Measurement::Measuring) {
                *state = Measurement::Cancelled;
            }
        });
    }
}

pub fn megabytes(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

#[component]
pub fn App() -> impl IntoView {
    let ui = Ui::new();
    ui.start_worker();
    view! {
        <header>
            <h1>"Salient"</h1>
            <p class="tagline">"Which tokens did the model lean on? Input attribution for a language model, computed in your browser."</p>
        </header>
        <main>
            <Status ui=ui/>
            <Editor ui=ui/>
            <MethodControls ui=ui/>
            <section class="question">
                <Predictions ui=ui/>
                <TargetPanel ui=ui/>
            </section>
            <section class="result">
                <ViewControls ui=ui/>
                <div class="map-and-checks">
                    <div class="map-column">
                        <HeatMap ui=ui/>
                        <Legend ui=ui/>
                        <Completeness ui=ui/>
                    </div>
                    <FaithfulnessPanel ui=ui/>
                </div>
            </section>
            <ContinuationMatrix ui=ui/>
            <section class="comparison">
                <CompareControls ui=ui/>
                <ComparePanel ui=ui/>
            </section>
            <TimingsPanel ui=ui/>
        </main>
        <footer>
            <ModelLine ui=ui/>
        </footer>
    }
}
