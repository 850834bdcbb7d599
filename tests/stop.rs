//! A stop request (`parallel::stop_flag`) ends a computation with `EngineError::Stopped`, before
//! it starts or in the middle of it, and once cleared leaves the next run's numbers untouched.
//! One test function: the flag is process-wide, and this file is its own test process.

mod common;
use candle_core::DType;
use salient::engine::runtime::parallel::stop_flag;
use salient::engine::{attribute, EngineError, Model, Request};
use std::sync::atomic::Ordering;
use std::time::Duration;

const TEXT: &str = "The Eiffel Tower is located in the city of";

#[test]
fn a_stop_request_ends_a_run_and_clearing_it_restores_the_results() {
    let model = common::load_model(DType::F32);
    let saliency = Request::new(TEXT, "saliency");
    let before = attribute(&model, &saliency).expect("an unstopped run");

    stop_flag().store(1, Ordering::SeqCst);
    match attribute(&model, &saliency) {
        Err(EngineError::Stopped) => {}
        other => {
            panic!("a run started after a stop request must stop: {:?}", other.map(|a| a.scores))
        }
    }
    // Errors that are not the stop keep their own message while the flag is set (the page
    // leaves it set until its next run, and may load a model meanwhile).
    let message = Model::load(b"not a model".to_vec()).err().expect("not a GGUF file").to_string();
    assert!(message.contains("not a GGUF model"), "{message}");
    let internal = EngineError::from(candle_core::Error::Msg("a shape mismatch".into()));
    assert!(matches!(internal, EngineError::Internal(_)), "{internal:?}");
    stop_flag().store(0, Ordering::SeqCst);
    assert_eq!(attribute(&model, &saliency).expect("the flag is cleared").scores, before.scores);

    // In the middle: integrated gradients with many steps runs for seconds; stop it after its
    // forward pass has begun, from another thread, as the page does.
    let mut slow = Request::new(TEXT, "integrated_gradients");
    slow.params.steps = 256;
    let outcome = std::thread::scope(|scope| {
        let run = scope.spawn(|| attribute(&model, &slow));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!run.is_finished(), "integrated gradients with 256 steps ended within 200 ms");
        stop_flag().store(1, Ordering::SeqCst);
        run.join().expect("the run does not panic")
    });
    stop_flag().store(0, Ordering::SeqCst);
    match outcome {
        Err(EngineError::Stopped) => {}
        other => {
            panic!("a stop during the run must end it with Stopped: {:?}", other.map(|a| a.scores))
        }
    }
    assert_eq!(attribute(&model, &saliency).expect("the flag is cleared").scores, before.scores);
}
