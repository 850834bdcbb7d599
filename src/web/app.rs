//! The page's state and its wiring to the worker: what the user chose (`Settings`), what the
//! worker returned, and the bookkeeping that keeps one run at a time and never shows a stale one.

use super::bridge::WorkerBridge;
use super::compare::{CompareControls, ComparePanel};
use super::controls::{Editor, MethodControls, ViewControls};
use super::embed::Embed;
use super::faithfulness::FaithfulnessPanel;
use super::heatmap::{HeatMap, Legend};
use super::matrix::ContinuationMatrix;
use super::models::{now_ms, Fallback, ModelLoader, ModelPanel, ModelSource};
use super::panels::{Completeness, ModelLine, Status, TimingsPanel};
use super::persist;
use super::protocol::{FromWorker, ModelSummary, RunOutput, Timings, ToWorker};
use super::share_link::{LinkNotes, SharePanel, Sharing};
use super::targets::{Predictions, TargetPanel};
use crate::engine::faithfulness::Faithfulness;
use crate::engine::methods;
use crate::engine::progress::Progress;
use crate::state::settings::Settings;
use leptos::prelude::*;

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
    /// With the percent done, once the worker has said.
    Measuring(Option<u32>),
    Measured {
        report: Faithfulness,
        ms: f64,
    },
    Failed(String),
    /// Cancel, or a newer run, stopped the check before this map was measured.
    Stopped,
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
    /// Which model to load, and the model panel's state.
    pub loader: ModelLoader,
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
    /// The worker is being replaced to drop a faithfulness check that a newer run supersedes
    /// (the check can take many seconds, and a worker without a stop flag reads no messages while
    /// busy): the model's reloading is not shown, the newer run is.
    quiet_reload: bool,
    /// The latest run's method label and when it was sent, for its progress line.
    sent: Option<(String, f64)>,
}

/// What `Ui::run` can do with a new run.
enum Start {
    Now(u64),
    /// The worker loads the model, or computes maps and cannot be stopped: the run starts when it
    /// is free.
    Queued,
    /// The worker works for an older run: stop it (or, measuring faithfulness without a stop
    /// flag, replace it), then run.
    Supersede,
}

const CANCELLED: &str = "Run cancelled. Edit the text or press Run to start again.";

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
            loader: ModelLoader::new(),
            // The example runs as soon as the model is loaded.
            runs: StoredValue::new_local(RunState { pending: true, ..RunState::default() }),
            bridge: StoredValue::new_local(None),
            debounce: StoredValue::new_local(None),
        }
    }

    /// One part of the settings, as a memo: readers rerender only when that part changes.
    pub fn setting<T: Clone + PartialEq + Send + Sync + 'static>(
        self,
        part: fn(&Settings) -> T,
    ) -> Memo<T> {
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
        self.faithfulness
            .with(|all| all.iter().find(|(m, _)| m == method).map(|(_, state)| state.clone()))
    }

    /// Whether Cancel has something to stop: a run, or the faithfulness check after one.
    pub fn cancellable(self) -> bool {
        self.phase.get() == Phase::Running
            || self
                .faithfulness
                .with(|all| all.iter().any(|(_, state)| matches!(state, Measurement::Measuring(_))))
    }

    fn status(&self, phase: Phase, message: impl Into<String>) {
        self.phase.set(phase);
        self.message.set(message.into());
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
            self.runs
                .update_value(|r| *r = RunState { latest_id: r.latest_id, ..RunState::default() });
            self.stop_measuring();
            self.loader.reading.set(None); // a load in progress died with the worker
            self.status(
                Phase::Error,
                format!(
                    "The worker stopped ({why}). Reload the page to try again; your text is kept."
                ),
            );
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
            FromWorker::Ready { stop_flag } => {
                self.bridge.update_value(|b| {
                    if let Some(bridge) = b {
                        bridge.set_stop_flag(&stop_flag)
                    }
                });
                let source = self.loader.next_source();
                if !self.quiet_reload() {
                    self.status(Phase::Loading, format!("Loading {}…", source.name()));
                }
                self.send(&source.message());
            }
            FromWorker::Reading { name, from, total } => {
                let message = self.loader.reading_started(&name, from, total);
                if !self.quiet_reload() {
                    self.status(Phase::Loading, message);
                }
            }
            FromWorker::Progress { .. } if self.quiet_reload() => {}
            FromWorker::Progress { loaded, total } => {
                self.progress.set(Some((loaded, total)));
                self.status(Phase::Loading, self.loader.progress_text(loaded, total));
            }
            FromWorker::Loaded { model, load_ms } => {
                self.progress.set(None);
                self.load_ms.set(Some(load_ms));
                let (run_now, cancelled, quiet) = self
                    .runs
                    .try_update_value(|r| {
                        r.model_ready = true;
                        (
                            std::mem::take(&mut r.pending),
                            std::mem::take(&mut r.cancelled),
                            std::mem::take(&mut r.quiet_reload),
                        )
                    })
                    .unwrap_or_default();
                // An error: the model loaded again after another one failed to load.
                let (phase, message) = match (self.loader.loaded(&model, load_ms), cancelled) {
                    (Err(failed), _) => (Phase::Error, failed),
                    (Ok(_), true) => (Phase::Ready, CANCELLED.to_string()),
                    (Ok(loaded), false) => (Phase::Ready, loaded),
                };
                if !(quiet && run_now) {
                    self.status(phase, message);
                }
                self.model.set(Some(model));
                if run_now {
                    self.run();
                }
            }
            FromWorker::LoadFailed { message, model_kept } => {
                self.progress.set(None);
                let phase = if self.loader.cancelled() { Phase::Ready } else { Phase::Error };
                match self.loader.failed(&message, model_kept) {
                    Fallback::KeepLoaded => {
                        // Back to the model still loaded; the text waits for an edit or Run.
                        self.runs.update_value(|r| {
                            r.model_ready = true;
                            r.pending = false;
                        });
                        let name = self
                            .model
                            .with_untracked(|m| m.as_ref().map(|m| m.name.clone()))
                            .unwrap_or_default();
                        self.status(phase, format!("{message} {name} is still loaded."));
                    }
                    Fallback::Reload(previous) => {
                        self.runs.update_value(|r| r.pending = false);
                        self.status(
                            Phase::Loading,
                            format!("{message} Loading {} again…", previous.name()),
                        );
                        self.send(&previous.message());
                    }
                    Fallback::NoModel => {
                        self.model.set(None);
                        self.status(
                            phase,
                            format!("{message} No model is loaded: choose one under Model."),
                        );
                    }
                }
            }
            FromWorker::Done { id, output, timings, measuring } => {
                let superseded = self
                    .runs
                    .try_update_value(|r| {
                        r.measurements_due = measuring.len();
                        r.pending && r.measurements_due > 0
                    })
                    .unwrap_or(false);
                if self.is_current(id) {
                    self.progress.set(None);
                    let target = &output.attribution.target;
                    self.status(
                        Phase::Done,
                        format!(
                            "Explained {:?} (p = {:.3}) in {:.0} ms.",
                            target.text, target.prob, timings.total_ms
                        ),
                    );
                    self.faithfulness.set(
                        measuring
                            .iter()
                            .map(|m| (m.clone(), Measurement::Measuring(None)))
                            .collect(),
                    );
                    self.row.set(None);
                    self.result.set(Some(*output));
                    self.timings.set(Some(timings));
                }
                if superseded {
                    self.supersede();
                } else if measuring.is_empty() {
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
            FromWorker::RunProgress { id, measuring: Some(method), done, expected } => {
                if self.is_current(id) {
                    let percent = Some(Progress { done, expected }.percent().round() as u32);
                    self.faithfulness.update(|all| {
                        if let Some((_, state @ Measurement::Measuring(_))) =
                            all.iter_mut().find(|(m, _)| *m == method)
                        {
                            *state = Measurement::Measuring(percent);
                        }
                    });
                }
            }
            FromWorker::RunProgress { id, measuring: None, done, expected } => {
                let sent = self.runs.with_value(|r| r.sent.clone());
                if let (true, Phase::Running, Some((label, sent_ms))) =
                    (self.is_current(id), self.phase.get_untracked(), sent)
                {
                    let shown = done.min(expected);
                    self.progress.set(Some((shown as f64, Some(expected as f64))));
                    self.message.set(run_progress_text(&label, done, expected, now_ms() - sent_ms));
                }
            }
            FromWorker::RunFailed { id, message } => {
                if self.is_current(id) {
                    self.progress.set(None);
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

    fn quiet_reload(self) -> bool {
        self.runs.with_value(|r| r.quiet_reload)
    }

    /// Stops the worker's work for a run that a newer one (pending) supersedes: through its
    /// stop flag, after which the newer run starts as soon as the worker reports; or, without
    /// one, by replacing the worker, and the newer run starts once the model is loaded again.
    fn supersede(self) {
        self.stop_measuring();
        if self.stop_worker() {
            return;
        }
        self.runs.update_value(|r| r.quiet_reload = true);
        self.start_worker();
    }

    /// Asks the worker to stop every run sent so far; false when it has no stop flag.
    fn stop_worker(self) -> bool {
        let through = self.runs.with_value(|r| r.latest_id);
        self.bridge.with_value(|b| b.as_ref().is_some_and(|bridge| bridge.stop(through)))
    }

    fn worker_stoppable(self) -> bool {
        self.bridge.with_value(|b| b.as_ref().is_some_and(WorkerBridge::stoppable))
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

    /// Runs the current settings: now, after stopping the worker's work for an older run, or
    /// after that work (maps in a worker without a stop flag).
    pub fn run(self) {
        self.debounce.set_value(None);
        let stoppable = self.worker_stoppable();
        let start = self
            .runs
            .try_update_value(|r| {
                if r.model_ready && !r.busy {
                    r.busy = true;
                    r.latest_id += 1;
                    return Start::Now(r.latest_id);
                }
                r.pending = true;
                match r.busy && (r.measurements_due > 0 || stoppable) {
                    true => Start::Supersede,
                    false => Start::Queued,
                }
            })
            .unwrap_or(Start::Queued);
        let settings = self.settings.get_untracked();
        let label =
            methods::by_name(&settings.method).map(|m| m.label()).unwrap_or(&settings.method);
        match start {
            Start::Now(id) => {
                self.progress.set(None);
                self.runs.update_value(|r| r.sent = Some((label.to_string(), now_ms())));
                self.status(Phase::Running, format!("Computing {label}…"));
                let (request, compare) = (settings.request(), settings.compare.clone());
                self.send(&ToWorker::Run { id, request, compare });
            }
            Start::Supersede => {
                self.supersede();
                self.status(Phase::Running, format!("Computing {label}…"));
            }
            Start::Queued => {}
        }
    }

    /// Loads another model; the text then reruns on it. An idle worker keeps its model until the
    /// new one has loaded, so a failed load leaves it usable; a busy one is replaced, as Cancel
    /// does, and the new worker loads the new model.
    pub fn load_model(self, source: ModelSource) {
        self.debounce.set_value(None);
        let idle = self
            .runs
            .try_update_value(|r| {
                let idle = r.model_ready && !r.busy;
                r.model_ready = false;
                r.pending = true;
                r.quiet_reload = false;
                idle
            })
            .unwrap_or(false);
        self.status(Phase::Loading, format!("Loading {}…", source.name()));
        self.loader.begin(source.clone());
        if idle {
            self.send(&source.message());
        } else {
            self.stop_measuring();
            self.start_worker();
        }
    }

    /// Stops the model download in progress; the worker stays, with the model it still holds.
    pub fn cancel_load(self) {
        if self.loader.cancel() {
            self.send(&ToWorker::CancelLoad);
        }
    }

    /// Stops the running computation, through the worker's stop flag (the model stays loaded)
    /// or by replacing the worker; the text and settings stay.
    pub fn cancel(self) {
        let busy = self.runs.with_value(|r| r.busy || r.pending);
        if !busy {
            return;
        }
        self.debounce.set_value(None);
        self.runs.update_value(|r| r.pending = false);
        self.stop_measuring();
        if self.stop_worker() {
            // What the stopped run still reports is not current; the worker is free after it.
            self.runs.update_value(|r| r.latest_id += 1);
            self.progress.set(None);
            self.status(Phase::Ready, CANCELLED);
            return;
        }
        self.runs.update_value(|r| {
            r.cancelled = true;
            r.quiet_reload = false;
        });
        self.start_worker();
        self.status(Phase::Loading, "Run cancelled; restarting the worker…");
    }

    /// Measurements still running will never arrive.
    fn stop_measuring(self) {
        self.faithfulness.update(|all| {
            for (_, state) in
                all.iter_mut().filter(|(_, state)| matches!(state, Measurement::Measuring(_)))
            {
                *state = Measurement::Stopped;
            }
        });
    }
}

/// "Computing Occlusion… 37 %, about 2 min left": the share of the run's expected work done (kept
/// below 100 % until the maps arrive: a run may do more than expected), and the time left at the
/// pace so far, once there is a pace to go by.
fn run_progress_text(label: &str, done: u64, expected: u64, elapsed_ms: f64) -> String {
    let fraction = Progress { done, expected }.percent() / 100.0;
    let seconds_left = (fraction >= 0.02 && elapsed_ms >= 2000.0)
        .then(|| elapsed_ms * (1.0 - fraction) / fraction / 1000.0);
    let left = match seconds_left {
        Some(s) if s >= 90.0 => format!(", about {:.0} min left", s / 60.0),
        Some(s) => format!(", about {:.0} s left", s.max(1.0)),
        None => String::new(),
    };
    format!("Computing {label}… {:.0} %{left}", 100.0 * fraction)
}

impl Measurement {
    /// "measuring faithfulness… 37 %".
    pub fn measuring_text(percent: Option<u32>) -> String {
        match percent {
            Some(percent) => format!("measuring faithfulness… {percent} %"),
            None => "measuring faithfulness…".to_string(),
        }
    }
}

pub fn megabytes(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

#[component]
pub fn App() -> impl IntoView {
    let ui = Ui::new();
    // A share link, the saved settings or the defaults; the worker waits while a link's model
    // needs the user's word.
    let sharing = Sharing::open(ui);
    persist::keep(ui, sharing);
    if sharing.start_now {
        ui.start_worker();
    }
    if sharing.embed {
        return view! { <Embed ui=ui sharing=sharing/> }.into_any();
    }
    view! {
        <header>
            <h1>"Salient"</h1>
            <p class="tagline">"Which tokens did the model lean on? Input attribution for a language model, computed in your browser."</p>
        </header>
        <main>
            <Status ui=ui/>
            <LinkNotes ui=ui sharing=sharing/>
            <ModelPanel ui=ui/>
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
            <SharePanel ui=ui sharing=sharing/>
            <TimingsPanel ui=ui/>
        </main>
        <footer>
            <ModelLine ui=ui/>
        </footer>
    }
    .into_any()
}
