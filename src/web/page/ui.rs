//! The page's state and its wiring to the worker: what the user chose (`Settings`), what the
//! worker returned, and the bookkeeping that keeps one run at a time and never shows a stale one.

use crate::engine::attribution::components::Components;
use crate::engine::attribution::faithfulness::Faithfulness;
use crate::engine::attribution::methods;
use crate::engine::evaluation::{Plan, Report};
use crate::engine::runtime::progress::Progress;
use crate::engine::BackendKind;
use crate::state::backend::BackendChoice;
use crate::state::report_card::default_plan;
use crate::state::result::{check, Checked};
use crate::state::run_queue::{AfterMaps, Cancel, Replaced, RunQueue, Start};
use crate::state::settings::Settings;
use crate::web::page::bridge::WorkerBridge;
use crate::web::page::models::{now_ms, Fallback, ModelLoader, ModelSource};
use crate::web::page::storage::{initial_backend, save_backend};
use crate::web::protocol::{FromWorker, ModelSummary, RunOutput, Timings, ToWorker};
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

/// The report card's state.
#[derive(Clone, Debug, PartialEq)]
pub enum ReportState {
    Running,
    Done {
        report: Box<Report>,
        ms: f64,
        backend: BackendKind,
    },
    Failed(String),
    /// Cancel, or a newer run, stopped it.
    Stopped,
}

const REPORT_LABEL: &str = "the report card";

/// The component attribution's state.
#[derive(Clone, Debug, PartialEq)]
pub enum ComponentsState {
    Running,
    Done {
        result: Box<Components>,
        ms: f64,
    },
    Failed(String),
    /// Cancel, or a newer run, stopped it.
    Stopped,
}

const COMPONENTS_LABEL: &str = "the components";

/// A run other than a map, asked for and not sent yet: the next run sends it instead.
#[derive(Clone)]
enum Job {
    Report(Plan),
    Components,
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
    /// The shown result, checked (`state::result`) whatever its origin.
    pub result: RwSignal<Option<Checked<RunOutput>>>,
    /// The faithfulness of the shown maps, by method name, in the order they are measured.
    pub faithfulness: RwSignal<Vec<(String, Measurement)>>,
    /// The continuation row shown on the text; `None`: the next-token map.
    pub row: RwSignal<Option<usize>>,
    pub timings: RwSignal<Option<Timings>>,
    pub load_ms: RwSignal<Option<f64>>,
    /// Where the worker computes (this browser's choice, not the result's).
    pub backend: RwSignal<BackendChoice>,
    /// Which model to load, and the model panel's state.
    pub loader: ModelLoader,
    /// The report card's methods and samples, and its last outcome.
    pub report_plan: RwSignal<Plan>,
    pub report: RwSignal<Option<ReportState>>,
    /// Which heads, MLPs and layers wrote the prediction, for the text and target last asked.
    pub components: RwSignal<Option<ComponentsState>>,
    /// A report card or components asked for and not sent yet: the next run sends it instead of
    /// a map.
    pending: StoredValue<Option<Job>, LocalStorage>,
    runs: StoredValue<RunQueue, LocalStorage>,
    /// The latest run's method label and when it was sent, for its progress line.
    sent: StoredValue<Option<(String, f64)>, LocalStorage>,
    bridge: StoredValue<Option<WorkerBridge>, LocalStorage>,
    debounce: StoredValue<Option<gloo::timers::callback::Timeout>, LocalStorage>,
}

const CANCELLED: &str = "Run cancelled. Edit the text or press Run to start again.";

impl Ui {
    pub fn new() -> Self {
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
            backend: RwSignal::new(initial_backend()),
            loader: ModelLoader::new(),
            report_plan: RwSignal::new(default_plan()),
            report: RwSignal::new(None),
            components: RwSignal::new(None),
            pending: StoredValue::new_local(None),
            runs: StoredValue::new_local(RunQueue::new()),
            sent: StoredValue::new_local(None),
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
        if rerun != Rerun::Never {
            self.pending.set_value(None); // the person moved on to a map
        }
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
            || self.report.with(|r| r == &Some(ReportState::Running))
            || self.components.with(|c| c == &Some(ComponentsState::Running))
            || self
                .faithfulness
                .with(|all| all.iter().any(|(_, state)| matches!(state, Measurement::Measuring(_))))
    }

    fn status(&self, phase: Phase, message: impl Into<String>) {
        self.phase.set(phase);
        self.message.set(message.into());
    }

    /// Starts a fresh worker and loads the model into it.
    pub fn start_worker(self) {
        self.runs.update_value(RunQueue::worker_started);
        self.bridge.set_value(None); // terminates the old worker, if any
        let on_message = move |m| self.on_worker_message(m);
        let on_crash = move |why: String| self.worker_crashed(why);
        let backend = self.backend.get_untracked();
        match WorkerBridge::spawn(backend, on_message, on_crash) {
            Ok(bridge) => self.bridge.set_value(Some(bridge)),
            Err(message) => self.status(Phase::Error, message),
        }
    }

    /// The worker died (a trap, a panic on any of its threads, a script that failed to load):
    /// terminate it and start another, which loads the model again, unless it keeps dying.
    fn worker_crashed(self, why: String) {
        self.bridge.set_value(None);
        self.stop_measuring();
        self.progress.set(None);
        self.loader.reading.set(None); // a load in progress died with the worker
        let restart = self.runs.try_update_value(|r| r.crashed(&why, now_ms())).unwrap_or(false);
        if restart {
            self.status(Phase::Loading, format!("The worker stopped ({why}); restarting it…"));
            self.start_worker();
        } else {
            self.status(
                Phase::Error,
                format!("The worker stopped again ({why}). Reload the page to try again; your text is kept."),
            );
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
            FromWorker::Loaded { model, load_ms, gpu } => {
                self.bridge.update_value(|b| {
                    if let Some(bridge) = b {
                        bridge.set_on_gpu(gpu.is_some())
                    }
                });
                self.progress.set(None);
                self.load_ms.set(Some(load_ms));
                let Some(loaded) = self.runs.try_update_value(RunQueue::model_loaded) else {
                    return;
                };
                let (run_now, quiet) = (loaded.run_now, loaded.quiet);
                // An error: the model loaded again after another one failed to load.
                let (phase, message) = match (self.loader.loaded(&model, load_ms), loaded.replaced) {
                    (Err(failed), _) => (Phase::Error, failed),
                    (Ok(_), Some(Replaced::Cancelled)) => (Phase::Ready, CANCELLED.to_string()),
                    (Ok(_), Some(Replaced::Crashed(why))) => (
                        Phase::Error,
                        format!("The worker stopped ({why}) and was restarted with the model. Your text is kept: edit it or press Run to try again."),
                    ),
                    (Ok(loaded), None) => (Phase::Ready, loaded),
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
                        self.runs.update_value(|r| r.load_failed(true));
                        let name = self
                            .model
                            .with_untracked(|m| m.as_ref().map(|m| m.name.clone()))
                            .unwrap_or_default();
                        self.status(phase, format!("{message} {name} is still loaded."));
                    }
                    Fallback::Reload(previous) => {
                        self.runs.update_value(|r| r.load_failed(false));
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
                if timings.fell_back {
                    self.bridge.update_value(|b| {
                        if let Some(bridge) = b {
                            bridge.set_on_gpu(false)
                        }
                    });
                }
                let (current, after) = self
                    .runs
                    .try_update_value(|r| r.maps_done(id, measuring.len()))
                    .unwrap_or((false, AfterMaps::Free));
                if current {
                    self.progress.set(None);
                    match check(*output) {
                        Ok(output) => {
                            let target = &output.attribution.target;
                            let fell_back = match (&timings.not_on_gpu, timings.fell_back) {
                                (Some(why), true) => {
                                    format!(" The GPU failed ({why}): computed on the CPU instead.")
                                }
                                (Some(why), false) => format!(" On the CPU: {why}."),
                                (None, _) => String::new(),
                            };
                            self.status(
                                Phase::Done,
                                format!(
                                    "Explained {:?} (p = {:.3}) in {:.0} ms.{fell_back}",
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
                            self.result.set(Some(output));
                            self.timings.set(Some(timings));
                        }
                        // The engine's own result: a bug, said rather than drawn.
                        Err(e) => self.status(
                            Phase::Error,
                            format!("The worker's result cannot be shown: {e}."),
                        ),
                    }
                }
                match after {
                    AfterMaps::Supersede => self.supersede(),
                    AfterMaps::Free => self.worker_free(),
                    AfterMaps::Wait => {}
                }
            }
            FromWorker::Faithfulness { id, method, outcome, ms } => {
                let (current, last) =
                    self.runs.try_update_value(|r| r.measured(id)).unwrap_or((false, true));
                if current {
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
                let sent = self.sent.get_value();
                if let (true, Phase::Running, Some((label, sent_ms))) =
                    (self.is_current(id), self.phase.get_untracked(), sent)
                {
                    let shown = done.min(expected);
                    self.progress.set(Some((shown as f64, Some(expected as f64))));
                    self.message.set(run_progress_text(&label, done, expected, now_ms() - sent_ms));
                }
            }
            FromWorker::Evaluated { id, outcome, ms, backend } => {
                self.job_done(id, || match outcome {
                    Ok(report) => {
                        let checked: usize = report.families.iter().map(|f| f.checked).sum();
                        let said =
                            format!("Report card: {checked} items checked in {:.0} s.", ms / 1e3);
                        self.status(Phase::Done, said);
                        self.report.set(Some(ReportState::Done { report, ms, backend }));
                    }
                    Err(message) => {
                        self.status(Phase::Error, format!("The report card failed: {message}"));
                        self.report.set(Some(ReportState::Failed(message)));
                    }
                })
            }
            FromWorker::ComponentsDone { id, outcome, ms } => self.job_done(id, || match outcome {
                Ok(result) => {
                    let said = format!(
                        "Components of the logit of {:?} in {:.1} s.",
                        result.target.text,
                        ms / 1e3
                    );
                    self.status(Phase::Done, said);
                    self.components.set(Some(ComponentsState::Done { result, ms }));
                }
                Err(message) => {
                    self.status(Phase::Error, format!("The components failed: {message}"));
                    self.components.set(Some(ComponentsState::Failed(message)));
                }
            }),
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

    /// Whether run `id`'s messages are the ones to show.
    fn is_current(self, id: u64) -> bool {
        self.runs.with_value(|r| r.is_current(id))
    }

    fn quiet_reload(self) -> bool {
        self.runs.with_value(RunQueue::quiet_reload)
    }

    /// Stops the worker's work for a run that a newer one (pending) supersedes: through its
    /// stop flag, after which the newer run starts as soon as the worker reports; or, without
    /// one, by replacing the worker, and the newer run starts once the model is loaded again.
    fn supersede(self) {
        self.stop_measuring();
        let through = self.runs.with_value(RunQueue::latest_id);
        if self.stop_worker(through) {
            return;
        }
        self.runs.update_value(RunQueue::replace_quietly);
        self.start_worker();
    }

    /// Asks the worker to stop every run up to `through`; false when it has no stop flag.
    fn stop_worker(self, through: u64) -> bool {
        self.bridge.with_value(|b| b.as_ref().is_some_and(|bridge| bridge.stop(through)))
    }

    fn worker_stoppable(self) -> bool {
        self.bridge.with_value(|b| b.as_ref().is_some_and(WorkerBridge::stoppable))
    }

    /// The worker finished everything it was asked; start the run that waited, if any.
    fn worker_free(self) {
        if self.runs.try_update_value(RunQueue::free).unwrap_or(false) {
            self.run();
        }
    }

    /// Runs the current settings: now, after stopping the worker's work for an older run, or
    /// after that work (maps in a worker without a stop flag).
    pub fn run(self) {
        self.debounce.set_value(None);
        let stoppable = self.worker_stoppable();
        let start = self.runs.try_update_value(|r| r.request(stoppable)).unwrap_or(Start::Queued);
        let settings = self.settings.get_untracked();
        let pending = self.pending.get_value();
        let label = match pending {
            Some(Job::Report(_)) => REPORT_LABEL,
            Some(Job::Components) => COMPONENTS_LABEL,
            None => {
                methods::by_name(&settings.method).map(|m| m.label()).unwrap_or(&settings.method)
            }
        };
        match start {
            Start::Now(id) => {
                self.progress.set(None);
                self.sent.set_value(Some((label.to_string(), now_ms())));
                self.status(Phase::Running, format!("Computing {label}…"));
                match pending {
                    Some(Job::Report(plan)) => {
                        self.pending.set_value(None);
                        self.report.set(Some(ReportState::Running));
                        self.send(&ToWorker::Evaluate { id, plan });
                    }
                    Some(Job::Components) => {
                        self.pending.set_value(None);
                        self.components.set(Some(ComponentsState::Running));
                        self.send(&ToWorker::Components { id, request: settings.request() });
                    }
                    None => {
                        let (request, compare) = (settings.request(), settings.compare.clone());
                        self.send(&ToWorker::Run { id, request, compare });
                    }
                }
            }
            Start::Supersede => {
                self.supersede();
                self.status(Phase::Running, format!("Computing {label}…"));
            }
            Start::Queued => {}
        }
    }

    /// A report card's or the components' answer to run `id`: shown by `show` while it is the
    /// current run; then the worker moves on.
    fn job_done(self, id: u64, show: impl FnOnce()) {
        let (current, after) =
            self.runs.try_update_value(|r| r.maps_done(id, 0)).unwrap_or((false, AfterMaps::Free));
        if current {
            self.progress.set(None);
            show();
        }
        match after {
            AfterMaps::Supersede => self.supersede(),
            AfterMaps::Free | AfterMaps::Wait => self.worker_free(),
        }
    }

    /// Runs the report card of the chosen plan, as the next run.
    pub fn evaluate(self) {
        self.debounce.set_value(None);
        self.pending.set_value(Some(Job::Report(self.report_plan.get_untracked())));
        self.run();
    }

    /// Computes which components wrote the prediction of the text and target, as the next run.
    pub fn explain_components(self) {
        self.debounce.set_value(None);
        self.pending.set_value(Some(Job::Components));
        self.run();
    }

    /// Computes on `choice` from now on (in this browser): a new worker loads the model again
    /// (from the model cache) and the text reruns there.
    pub fn choose_backend(self, choice: BackendChoice) {
        if choice == self.backend.get_untracked() {
            return;
        }
        self.backend.set(choice);
        save_backend(choice);
        self.debounce.set_value(None);
        self.runs.update_value(|r| {
            r.load_model();
        });
        self.stop_measuring();
        self.status(
            Phase::Loading,
            format!("Computing on: {}; loading the model again…", choice.label()),
        );
        self.start_worker();
    }

    /// Loads another model; the text then reruns on it. An idle worker keeps its model until the
    /// new one has loaded, so a failed load leaves it usable; a busy one is replaced, as Cancel
    /// does, and the new worker loads the new model.
    pub fn load_model(self, source: ModelSource) {
        self.debounce.set_value(None);
        let idle = self.runs.try_update_value(RunQueue::load_model).unwrap_or(false);
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
        let stoppable = self.worker_stoppable();
        let cancel = self.runs.try_update_value(|r| r.cancel(stoppable)).unwrap_or(Cancel::Nothing);
        if cancel == Cancel::Nothing {
            return;
        }
        self.debounce.set_value(None);
        self.stop_measuring();
        match cancel {
            Cancel::Stop { through } => {
                self.stop_worker(through);
                self.progress.set(None);
                self.status(Phase::Ready, CANCELLED);
            }
            _ => {
                self.start_worker();
                self.status(Phase::Loading, "Run cancelled; restarting the worker…");
            }
        }
    }

    /// Measurements (and a report card) still running will never arrive.
    fn stop_measuring(self) {
        if self.report.with_untracked(|r| r == &Some(ReportState::Running)) {
            self.report.set(Some(ReportState::Stopped));
        }
        if self.components.with_untracked(|c| c == &Some(ComponentsState::Running)) {
            self.components.set(Some(ComponentsState::Stopped));
        }
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
