//! The page: load a model, edit a text, see which tokens the prediction leaned on.

use super::bridge::WorkerBridge;
use super::heat::{colour, legend_gradient, normalise};
use super::protocol::{FromWorker, ModelSummary, Timings, ToWorker};
use crate::engine::methods::METHODS;
use crate::engine::token_text::visible;
use crate::engine::{Attribution, Request, TargetChoice, TargetSpec};
use leptos::prelude::*;

const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const EXAMPLE_TEXT: &str = "The Eiffel Tower is located in the city of";
const DEBOUNCE_MS: u32 = 400;
const TOP_K: usize = 5;
/// Longest text the page attributes. The backward pass keeps every layer's activations, so
/// memory grows with length (measured: 0.36 GB of wasm memory at 64 tokens, 2.6 GB at 512);
/// past this a tab could run out of memory, so the page says so instead.
const MAX_TOKENS: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Loading,
    Ready,
    Running,
    Done,
    Error,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Ready => "ready",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Error => "error",
        }
    }
}

/// Everything the page shows; all handles are `Copy`, so closures capture the whole struct.
#[derive(Clone, Copy)]
struct Ui {
    phase: RwSignal<Phase>,
    message: RwSignal<String>,
    progress: RwSignal<Option<(f64, Option<f64>)>>,
    model: RwSignal<Option<ModelSummary>>,
    text: RwSignal<String>,
    method: RwSignal<String>,
    target: RwSignal<TargetChoice>,
    result: RwSignal<Option<Attribution>>,
    timings: RwSignal<Option<Timings>>,
    load_ms: RwSignal<Option<f64>>,
    runs: StoredValue<RunState, LocalStorage>,
    bridge: StoredValue<Option<WorkerBridge>, LocalStorage>,
    debounce: StoredValue<Option<gloo::timers::callback::Timeout>, LocalStorage>,
}

/// Bookkeeping that keeps at most one run in the worker and never shows a stale result.
#[derive(Default)]
struct RunState {
    model_ready: bool,
    latest_id: u64,
    busy: bool,
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
            text: RwSignal::new(EXAMPLE_TEXT.into()),
            method: RwSignal::new(METHODS[0].name().into()),
            target: RwSignal::new(TargetChoice::TopPrediction),
            result: RwSignal::new(None),
            timings: RwSignal::new(None),
            load_ms: RwSignal::new(None),
            // The example runs as soon as the model is loaded.
            runs: StoredValue::new_local(RunState { pending: true, ..RunState::default() }),
            bridge: StoredValue::new_local(None),
            debounce: StoredValue::new_local(None),
        }
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
        });
        self.bridge.set_value(None); // terminates the old worker, if any
        let on_message = move |m| self.on_worker_message(m);
        let on_crash = move |why: String| {
            self.bridge.set_value(None);
            self.runs.update_value(|r| *r = RunState { latest_id: r.latest_id, ..RunState::default() });
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
            FromWorker::Done { id, attribution, timings } => {
                if self.finish(id) {
                    let target = attribution.target.clone();
                    self.result.set(Some(attribution));
                    self.status(
                        Phase::Done,
                        format!("Explained {:?} (p = {:.3}) in {:.0} ms.", target.text, target.prob, timings.total_ms),
                    );
                    self.timings.set(Some(timings));
                }
            }
            FromWorker::RunFailed { id, message } => {
                if self.finish(id) {
                    self.result.set(None);
                    self.status(Phase::Error, message);
                }
            }
        }
    }

    /// A run ended. True when its result is the one to show (no newer run was asked for).
    fn finish(self, id: u64) -> bool {
        let (latest, pending) = self.runs.try_update_value(|r| {
            r.busy = false;
            (r.latest_id, std::mem::take(&mut r.pending))
        }).unwrap_or((0, false));
        if pending {
            self.run();
            return false;
        }
        id == latest
    }

    /// Runs the current text, target and method (or queues it while the worker is busy).
    fn run(self) {
        self.debounce.set_value(None);
        let id = self.runs.try_update_value(|r| {
            if !r.model_ready || r.busy {
                r.pending = true;
                return None;
            }
            r.busy = true;
            r.latest_id += 1;
            Some(r.latest_id)
        }).flatten();
        let Some(id) = id else { return };
        let request = Request {
            target: TargetSpec::of(self.target.get_untracked()),
            top_k: TOP_K,
            max_tokens: Some(MAX_TOKENS),
            ..Request::new(self.text.get_untracked(), &self.method.get_untracked())
        };
        self.status(Phase::Running, format!("Computing {}…", self.method.get_untracked()));
        self.send(&ToWorker::Run { id, request });
    }

    fn run_after_pause(self) {
        let timeout = gloo::timers::callback::Timeout::new(DEBOUNCE_MS, move || self.run());
        self.debounce.set_value(Some(timeout));
    }

    /// Stops the running computation by replacing the worker; the text and settings stay.
    fn cancel(self) {
        let busy = self.runs.with_value(|r| r.busy || r.pending);
        if !busy {
            return;
        }
        self.debounce.set_value(None);
        self.runs.update_value(|r| {
            r.pending = false;
            r.cancelled = true;
        });
        self.start_worker();
        self.status(Phase::Loading, "Run cancelled; restarting the worker…");
    }
}

fn megabytes(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

#[component]
pub fn App() -> impl IntoView {
    let ui = Ui::new();
    ui.start_worker();
    view! {
        <header>
            <h1>"Salient"</h1>
            <p class="tagline">"Which tokens did the model lean on? Gradient attribution, computed in your browser."</p>
        </header>
        <main>
            <Status ui=ui/>
            <Editor ui=ui/>
            <Predictions ui=ui/>
            <HeatMap ui=ui/>
            <Legend ui=ui/>
            <TimingsPanel ui=ui/>
        </main>
        <footer>
            <ModelLine ui=ui/>
        </footer>
    }
}

#[component]
fn Status(ui: Ui) -> impl IntoView {
    let loaded = move || ui.progress.get().map(|(l, _)| l);
    let total = move || ui.progress.get().and_then(|(_, t)| t);
    view! {
        <div class="status" data-testid="status" data-state=move || ui.phase.get().as_str() role="status" aria-live="polite">
            {move || ui.message.get()}
        </div>
        <Show when=move || ui.progress.get().is_some()>
            <progress
                data-testid="progress"
                data-loaded=move || loaded().unwrap_or(0.0).to_string()
                data-total=move || total().map(|t| t.to_string()).unwrap_or_default()
                max=move || total().unwrap_or(1.0).to_string()
                value=move || total().map(|_| loaded().unwrap_or(0.0).to_string())
            ></progress>
        </Show>
    }
}

#[component]
fn Editor(ui: Ui) -> impl IntoView {
    let on_input = move |ev| {
        ui.text.set(event_target_value(&ev));
        ui.run_after_pause();
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
            ev.prevent_default();
            ui.run();
        }
    };
    let on_method = move |ev| {
        ui.method.set(event_target_value(&ev));
        ui.run();
    };
    view! {
        <section class="editor">
            <label for="editor">"Text (the model predicts the token that comes next)"</label>
            <textarea id="editor" data-testid="editor" rows="4" spellcheck="false"
                prop:value=move || ui.text.get() on:input=on_input on:keydown=on_key></textarea>
            <div class="controls">
                <label>"Method "
                    <select data-testid="method" on:change=on_method prop:value=move || ui.method.get()>
                        {METHODS.iter().map(|m| view! { <option value=m.name()>{m.label()}</option> }).collect_view()}
                    </select>
                </label>
                <button data-testid="run" on:click=move |_| ui.run() title="Ctrl+Enter">"Run"</button>
                <button data-testid="cancel" on:click=move |_| ui.cancel()
                    disabled=move || ui.phase.get() != Phase::Running>"Cancel"</button>
            </div>
        </section>
    }
}

#[component]
fn Predictions(ui: Ui) -> impl IntoView {
    let choose = move |id: u32| {
        ui.target.set(TargetChoice::Id(id));
        ui.run();
    };
    let on_target_key = move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Enter" {
            let value = event_target_value(&ev);
            if !value.is_empty() {
                ui.target.set(TargetChoice::Text(value));
                ui.run();
            }
        }
    };
    let target = move || ui.result.get().map(|r| r.target);
    let explicit = move || ui.target.get() != TargetChoice::TopPrediction;
    view! {
        <section class="predictions">
            <h2>"Next-token predictions"</h2>
            <ol data-testid="topk" class="topk">
                {move || ui.result.get().map(|r| {
                    let target_id = r.target.id;
                    r.top_k.into_iter().map(|p| {
                        let id = p.id;
                        view! {
                            <li>
                                <button data-testid="prediction" data-token-id=id.to_string() data-prob=p.prob.to_string()
                                    class:chosen=id == target_id on:click=move |_| choose(id)
                                    title=format!("id {id}: click to explain this token")>
                                    <span class="tok">{visible(&p.text)}</span>
                                    <span class="prob">{format!("{:.1}%", 100.0 * p.prob)}</span>
                                </button>
                            </li>
                        }
                    }).collect_view()
                })}
            </ol>
            <div class="target-row">
                <span data-testid="target" data-token-id=move || target().map(|t| t.id.to_string()).unwrap_or_default()>
                    "Explaining: "
                    {move || target().map(|t| view! {
                        <strong class="tok">{visible(&t.text)}</strong>
                        {format!(" (id {}, p = {:.4})", t.id, t.prob)}
                    })}
                    {move || (!explicit()).then_some(" — the top prediction")}
                </span>
                <Show when=explicit>
                    <button class="link" on:click=move |_| { ui.target.set(TargetChoice::TopPrediction); ui.run(); }>
                        "use the top prediction"
                    </button>
                </Show>
                <input data-testid="target-input" placeholder="or type a token, e.g. \" London\", and press Enter"
                    on:keydown=on_target_key/>
            </div>
        </section>
    }
}

#[component]
fn HeatMap(ui: Ui) -> impl IntoView {
    view! {
        <section class="heatmap" aria-label="Input tokens coloured by attribution">
            {move || ui.result.get().map(|r| {
                let norms = normalise(&r.scores);
                let signed = r.signed;
                r.tokens.into_iter().zip(r.scores).zip(norms).enumerate().map(|(i, ((token, score), norm))| {
                    let shown = if token.text.ends_with('\n') { format!("{}\n", token.text.trim_end_matches('\n').to_string() + "↵") } else { token.text.clone() };
                    view! {
                        <span class="token" class:special=token.special data-testid="token" data-index=i.to_string()
                            data-token-id=token.id.to_string() data-score=score.to_string() data-norm=norm.to_string()
                            style=format!("background:{}", colour(norm, signed)) tabindex="0">
                            {shown}
                            <span class="tip" role="tooltip">
                                <code>{visible(&token.text)}</code>
                                <span>{format!("id {} · score {:.4e}", token.id, score)}</span>
                            </span>
                        </span>
                    }
                }).collect_view()
            })}
        </section>
    }
}

#[component]
fn Legend(ui: Ui) -> impl IntoView {
    view! {
        {move || ui.result.get().map(|r| {
            let max = r.scores.iter().fold(0f32, |m, s| m.max(s.abs()));
            let label = METHODS.iter().find(|m| m.name() == r.method).map(|m| m.label()).unwrap_or("");
            let low = if r.signed { format!("{:.3e}", -max) } else { "0".to_string() };
            view! {
                <div class="legend" data-testid="legend">
                    <span>{low}</span>
                    <span class="bar" style=format!("background:{}", legend_gradient(r.signed))></span>
                    <span>{format!("{max:.3e}")}</span>
                    <span class="what">{format!("{label} of p({:?}); colour = score / max", r.target.text)}</span>
                </div>
            }
        })}
    }
}

#[component]
fn TimingsPanel(ui: Ui) -> impl IntoView {
    let attr = move |f: fn(&Timings) -> f64| move || ui.timings.get().map(|t| format!("{:.1}", f(&t))).unwrap_or_default();
    view! {
        <div class="timings" data-testid="timings"
            data-load-ms=move || ui.load_ms.get().map(|v| format!("{v:.1}")).unwrap_or_default()
            data-forward-ms=attr(|t| t.forward_ms) data-attribute-ms=attr(|t| t.attribute_ms)
            data-total-ms=attr(|t| t.total_ms) data-wasm-memory=attr(|t| t.wasm_memory)>
            {move || ui.timings.get().map(|t| format!(
                "forward {:.0} ms · attribution {:.0} ms · total {:.0} ms · worker memory {}",
                t.forward_ms, t.attribute_ms, t.total_ms, megabytes(t.wasm_memory)))}
        </div>
    }
}

#[component]
fn ModelLine(ui: Ui) -> impl IntoView {
    view! {
        <p class="model-line">
            {move || ui.model.get().map(|m| format!(
                "Model: {} · {} · {} layers · width {} · vocabulary {} · context {} tokens · {}",
                m.name, m.config.architecture, m.config.layers, m.config.width, m.config.vocab,
                m.config.context_length, megabytes(m.bytes as f64)))}
            " · Everything runs in this tab; nothing is sent anywhere."
        </p>
    }
}
