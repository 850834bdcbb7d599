//! A stop request (the run context's `StopToken`) ends a computation with `EngineError::Stopped`,
//! before it starts or in the middle of it, and once cleared leaves the next run's numbers
//! untouched; a stop asked of one run leaves another run, with its own context, alone.

mod common;
use candle_core::DType;
use salient::engine::RunContext;
use salient::engine::{attribute, EngineError, Model, Request};
use std::sync::atomic::Ordering;
use std::time::Duration;

const TEXT: &str = "The Eiffel Tower is located in the city of";

#[test]
fn a_stop_request_ends_a_run_and_clearing_it_restores_the_results() {
    let model = common::load_model(DType::F32);
    let saliency = Request::new(TEXT, "saliency");
    let context = RunContext::default();
    let before = attribute(&model, &saliency, &context).expect("an unstopped run");

    context.stop.request();
    // Another run, with its own context, is not stopped.
    let other = attribute(&model, &saliency, &RunContext::default()).expect("another run");
    assert_eq!(other.scores, before.scores);
    match attribute(&model, &saliency, &context) {
        Err(EngineError::Stopped) => {}
        other => {
            panic!("a run started after a stop request must stop: {:?}", other.map(|a| a.scores))
        }
    }
    // Errors that are not the stop keep their own message while a stop is asked (the page leaves
    // it asked until its next run, and may load a model meanwhile).
    let message = Model::load(b"not a model".to_vec()).err().expect("not a GGUF file").to_string();
    assert!(message.contains("not a GGUF model"), "{message}");
    let internal = EngineError::from(candle_core::Error::Msg("a shape mismatch".into()));
    assert!(matches!(internal, EngineError::Internal(_)), "{internal:?}");
    context.stop.atomic().store(0, Ordering::SeqCst);
    assert_eq!(attribute(&model, &saliency, &context).expect("cleared").scores, before.scores);

    // In the middle: integrated gradients with many steps runs for seconds; stop it after its
    // forward pass has begun, from another thread, as the page does.
    let mut slow = Request::new(TEXT, "integrated_gradients");
    slow.params.steps = 256;
    let outcome = std::thread::scope(|scope| {
        let run = scope.spawn(|| attribute(&model, &slow, &context));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!run.is_finished(), "integrated gradients with 256 steps ended within 200 ms");
        context.stop.request();
        run.join().expect("the run does not panic")
    });
    context.stop.atomic().store(0, Ordering::SeqCst);
    match outcome {
        Err(EngineError::Stopped) => {}
        other => {
            panic!("a stop during the run must end it with Stopped: {:?}", other.map(|a| a.scores))
        }
    }
    assert_eq!(attribute(&model, &saliency, &context).expect("cleared").scores, before.scores);
}
