//! The page's bookkeeping of runs, as a plain state machine: at most one run in the worker, a
//! newer run waits or supersedes the older, a stale result is never shown, and a worker that dies
//! is replaced a bounded number of times. The page (`web::page::app`) calls these methods on each
//! event and carries out what they return (send a run, stop or replace the worker); the unit
//! tests drive the same sequences natively.

/// What to do with a run the person asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Send run `id` now.
    Now(u64),
    /// The worker loads the model, or computes maps and cannot be stopped: the run starts when it
    /// is free.
    Queued,
    /// The worker works for an older run: stop it (or, measuring faithfulness without a stop
    /// flag, replace it), then run.
    Supersede,
}

/// What follows a run's maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterMaps {
    /// Faithfulness messages follow.
    Wait,
    /// The worker is free.
    Free,
    /// A newer run waits while the worker would measure faithfulness for this one: drop that.
    Supersede,
}

/// What Cancel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// Nothing runs or waits.
    Nothing,
    /// Stop the worker's runs up to `through` with its stop flag; it keeps the model.
    Stop { through: u64 },
    /// The worker has no stop flag: replace it (it loads the model again).
    Replace,
}

/// Why the worker was replaced, said once the model is back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replaced {
    Cancelled,
    /// It died (`why`) and was restarted.
    Crashed(String),
}

/// What a model load that ended says to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// A run waited for the model: start it.
    pub run_now: bool,
    pub replaced: Option<Replaced>,
    /// The worker was replaced only to drop work for an older run: say nothing of the reload.
    pub quiet: bool,
}

/// Crashes in this window count towards [`MAX_RESTARTS`].
pub const CRASH_WINDOW_MS: f64 = 60_000.0;
/// Restarts within [`CRASH_WINDOW_MS`] before the page gives up and asks for a reload: a model
/// or a text that crashes the worker every time must not restart it forever.
pub const MAX_RESTARTS: usize = 3;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunQueue {
    model_ready: bool,
    latest_id: u64,
    /// The worker is computing: a run's maps, or the faithfulness measurements after them.
    busy: bool,
    /// Faithfulness messages still to come from the run in the worker.
    measurements_due: usize,
    /// A run was asked for while the worker was busy or loading: start it when it is free.
    pending: bool,
    /// The worker was replaced; say why once the model is back.
    replaced: Option<Replaced>,
    /// The worker is being replaced to drop work that a newer run supersedes: the model's
    /// reloading is not shown, the newer run is.
    quiet_reload: bool,
    /// When the worker died recently (page time, ms).
    crashes: Vec<f64>,
}

impl RunQueue {
    /// The page's first state: the example runs as soon as the model has loaded.
    pub fn new() -> Self {
        Self { pending: true, ..Self::default() }
    }

    /// The id of the latest run asked for.
    pub fn latest_id(&self) -> u64 {
        self.latest_id
    }

    /// Whether run `id`'s messages are the ones to show: it is the latest run and no newer one
    /// waits for the worker.
    pub fn is_current(&self, id: u64) -> bool {
        id == self.latest_id && !self.pending
    }

    pub fn quiet_reload(&self) -> bool {
        self.quiet_reload
    }

    /// Whether Cancel has a run to stop (computing, or waiting for the worker).
    pub fn running(&self) -> bool {
        self.busy || self.pending
    }

    /// The person asks for a run; `stoppable`: the worker has a stop flag.
    pub fn request(&mut self, stoppable: bool) -> Start {
        if self.model_ready && !self.busy {
            self.busy = true;
            self.latest_id += 1;
            return Start::Now(self.latest_id);
        }
        self.pending = true;
        match self.busy && (self.measurements_due > 0 || stoppable) {
            true => Start::Supersede,
            false => Start::Queued,
        }
    }

    /// Superseding without a stop flag replaces the worker quietly.
    pub fn replace_quietly(&mut self) {
        self.quiet_reload = true;
    }

    /// A new worker starts (the old one, if any, is terminated): it has no model and no work.
    pub fn worker_started(&mut self) {
        self.model_ready = false;
        self.busy = false;
        self.measurements_due = 0;
    }

    /// The worker has loaded a model.
    pub fn model_loaded(&mut self) -> Loaded {
        self.model_ready = true;
        Loaded {
            run_now: std::mem::take(&mut self.pending),
            replaced: self.replaced.take(),
            quiet: std::mem::take(&mut self.quiet_reload),
        }
    }

    /// A load failed; `model_kept`: the worker still holds the model it had. The run that waited
    /// for the new model waits for an edit or Run instead.
    pub fn load_failed(&mut self, model_kept: bool) {
        self.model_ready |= model_kept;
        self.pending = false;
    }

    /// Another model is to load. Returns whether the worker is idle (it keeps its model until
    /// the new one has loaded); a busy one is replaced.
    pub fn load_model(&mut self) -> bool {
        let idle = self.model_ready && !self.busy;
        self.model_ready = false;
        self.pending = true;
        self.quiet_reload = false;
        idle
    }

    /// Run `id`'s maps arrived, with `measuring` faithfulness messages to follow. Returns whether
    /// they are current, and what follows.
    pub fn maps_done(&mut self, id: u64, measuring: usize) -> (bool, AfterMaps) {
        self.measurements_due = measuring;
        let current = self.is_current(id);
        let after = match (self.pending && measuring > 0, measuring) {
            (true, _) => AfterMaps::Supersede,
            (false, 0) => AfterMaps::Free,
            (false, _) => AfterMaps::Wait,
        };
        (current, after)
    }

    /// One faithfulness message of run `id` arrived. Returns whether it is current, and whether
    /// it was the last (the worker is then free).
    pub fn measured(&mut self, id: u64) -> (bool, bool) {
        self.measurements_due = self.measurements_due.saturating_sub(1);
        (self.is_current(id), self.measurements_due == 0)
    }

    /// The worker finished everything it was asked. Returns whether a run waited (start it).
    pub fn free(&mut self) -> bool {
        self.busy = false;
        std::mem::take(&mut self.pending)
    }

    /// Cancel; `stoppable`: the worker has a stop flag.
    pub fn cancel(&mut self, stoppable: bool) -> Cancel {
        if !self.running() {
            return Cancel::Nothing;
        }
        self.pending = false;
        if stoppable {
            // What the stopped run still reports is not current; the worker is free after it.
            let through = self.latest_id;
            self.latest_id += 1;
            return Cancel::Stop { through };
        }
        self.replaced = Some(Replaced::Cancelled);
        self.quiet_reload = false;
        Cancel::Replace
    }

    /// The worker died (`why`) at page time `now_ms`. Returns whether to restart it (it then
    /// loads the model it held; the run that was computing is not run again, so a run that
    /// kills the worker cannot loop), or `false` past [`MAX_RESTARTS`] in [`CRASH_WINDOW_MS`].
    pub fn crashed(&mut self, why: &str, now_ms: f64) -> bool {
        self.crashes.retain(|t| now_ms - t < CRASH_WINDOW_MS);
        self.crashes.push(now_ms);
        let crashes = std::mem::take(&mut self.crashes);
        *self = RunQueue { latest_id: self.latest_id, crashes, ..RunQueue::default() };
        let restart = self.crashes.len() <= MAX_RESTARTS;
        if restart {
            self.replaced = Some(Replaced::Crashed(why.to_string()));
        }
        restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue whose worker has loaded its model and run the example.
    fn ready() -> RunQueue {
        let mut q = RunQueue::new();
        q.worker_started();
        let loaded = q.model_loaded();
        assert!(loaded.run_now, "the example waits for the model");
        assert_eq!(q.request(false), Start::Now(1));
        assert_eq!(q.maps_done(1, 0), (true, AfterMaps::Free));
        assert!(!q.free());
        q
    }

    #[test]
    fn a_run_asked_for_while_one_computes_waits_and_then_starts() {
        let mut q = ready();
        assert_eq!(q.request(false), Start::Now(2));
        assert_eq!(q.request(false), Start::Queued);
        // Run 2's maps are stale: a newer run waits.
        assert_eq!(q.maps_done(2, 0), (false, AfterMaps::Free));
        assert!(q.free(), "the waiting run starts");
        assert_eq!(q.request(false), Start::Now(3));
        assert_eq!(q.maps_done(3, 0), (true, AfterMaps::Free));
    }

    #[test]
    fn a_stoppable_worker_is_superseded_and_its_messages_are_stale() {
        let mut q = ready();
        assert_eq!(q.request(true), Start::Now(2));
        assert_eq!(q.request(true), Start::Supersede);
        assert!(!q.is_current(2));
        // The stopped run fails; the worker is free, and the newer run starts.
        assert!(q.free());
        assert_eq!(q.request(true), Start::Now(3));
        assert!(q.is_current(3));
    }

    #[test]
    fn faithfulness_for_an_older_run_is_dropped_when_a_newer_one_waits() {
        let mut q = ready();
        assert_eq!(q.request(false), Start::Now(2));
        assert_eq!(q.maps_done(2, 2), (true, AfterMaps::Wait));
        assert_eq!(q.measured(2), (true, false));
        assert_eq!(q.request(false), Start::Supersede, "measuring can be dropped");
        q.replace_quietly();
        q.worker_started();
        let loaded = q.model_loaded();
        assert_eq!(loaded, Loaded { run_now: true, replaced: None, quiet: true });
        assert_eq!(q.request(false), Start::Now(3));
    }

    #[test]
    fn cancel_stops_through_the_flag_or_replaces_the_worker() {
        let mut q = ready();
        assert_eq!(q.cancel(true), Cancel::Nothing);
        assert_eq!(q.request(true), Start::Now(2));
        assert_eq!(q.cancel(true), Cancel::Stop { through: 2 });
        assert!(!q.is_current(2), "the stopped run's messages are stale");
        assert!(!q.free());
        assert_eq!(q.request(false), Start::Now(4));
        assert_eq!(q.cancel(false), Cancel::Replace);
        q.worker_started();
        let loaded = q.model_loaded();
        assert_eq!(loaded.replaced, Some(Replaced::Cancelled));
        assert!(!loaded.run_now);
    }

    #[test]
    fn loading_a_model_keeps_an_idle_worker_and_reruns_after() {
        let mut q = ready();
        assert!(q.load_model(), "idle: the worker keeps its model while the new one loads");
        assert_eq!(q.request(false), Start::Queued);
        q.load_failed(true);
        assert_eq!(q.request(false), Start::Now(2), "the kept model runs");
        assert!(!q.load_model(), "busy: replaced");
        q.worker_started();
        assert!(q.model_loaded().run_now);
    }

    #[test]
    fn a_crashing_worker_restarts_a_bounded_number_of_times() {
        let mut q = ready();
        assert_eq!(q.request(false), Start::Now(2));
        for k in 0..MAX_RESTARTS {
            assert!(q.crashed("trap", 1000.0 * k as f64), "restart {k}");
            q.worker_started();
            let loaded = q.model_loaded();
            assert_eq!(loaded.replaced, Some(Replaced::Crashed("trap".into())));
            assert!(!loaded.run_now, "the run that crashed it is not run again");
        }
        assert!(!q.crashed("trap", 5000.0), "one crash too many within the window");
        // Much later the page tries again.
        assert!(q.crashed("trap", 5000.0 + CRASH_WINDOW_MS));
        assert_eq!(q.latest_id(), 2, "run ids go on, so old messages stay stale");
    }
}
