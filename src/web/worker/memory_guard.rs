//! The worker's memory checks, from the estimates in `attribution::memory`: a model file must fit
//! before it is downloaded, a loaded model must leave room for a useful text, and each run must
//! fit before it starts. A wasm worker that runs out of memory aborts in the middle of its work,
//! so refusing with a message that says what would fit is the better outcome.

use crate::engine::attribution::memory::{
    estimate_load_bytes, estimate_run_bytes, max_tokens_within, USABLE_WASM_MEMORY,
};
use crate::engine::attribution::methods;
use crate::engine::runtime::context::GraphBudget;
use crate::engine::{Model, Request};
use crate::state::format::human_bytes;
use crate::state::settings::MAX_TOKENS;

/// A model that cannot explain even a sentence this long is refused: the page is no use with it.
const MIN_USEFUL_TOKENS: usize = 16;

/// Where a new model file fits.
#[derive(Debug, PartialEq)]
pub enum Room {
    /// Next to the loaded model, which can stay until the new one has loaded.
    BesideLoaded,
    /// Only once the loaded model is freed.
    AfterFreeing,
}

/// The largest model file that could load at all: a download of unknown size stops past it.
pub fn largest_file() -> u64 {
    USABLE_WASM_MEMORY - estimate_load_bytes(0)
}

/// Whether a file of `file_bytes` (when the server said) can load while a model of `loaded_bytes`
/// is in memory.
pub fn room_for_file(file_bytes: Option<u64>, loaded_bytes: Option<usize>) -> Result<Room, String> {
    let Some(file_bytes) = file_bytes else {
        return Ok(Room::AfterFreeing); // unknown size: give it all the room there is
    };
    let needed = estimate_load_bytes(file_bytes);
    let beside = needed.saturating_add(loaded_bytes.map_or(0, |b| b as u64));
    if loaded_bytes.is_some() && beside <= USABLE_WASM_MEMORY {
        Ok(Room::BesideLoaded)
    } else if needed <= USABLE_WASM_MEMORY {
        Ok(Room::AfterFreeing)
    } else {
        Err(format!(
            "This model file is {} and needs about {} of memory before any text, more than the {} this \
             page's worker can use (wasm32 memory stops at 4 GiB). Pick a smaller or more strongly quantized file.",
            human_bytes(file_bytes),
            human_bytes(needed),
            human_bytes(USABLE_WASM_MEMORY)
        ))
    }
}

/// The longest text (up to the page's limit) whose saliency run fits with `model` in the page's
/// graph budget, or why the model is of no use here.
pub fn fitting_tokens(model: &Model) -> Result<usize, String> {
    let budget = GraphBudget::default();
    let up_to = MAX_TOKENS.min(model.config().context_length);
    let fits = max_tokens_within(
        model.config(),
        model.file_bytes() as u64,
        USABLE_WASM_MEMORY,
        up_to,
        budget,
        |_| 0,
    );
    if fits < MIN_USEFUL_TOKENS.min(up_to) {
        let needed = estimate_run_bytes(
            model.config(),
            model.file_bytes() as u64,
            MIN_USEFUL_TOKENS,
            0,
            budget,
        );
        return Err(format!(
            "This model needs about {} of memory to explain even {MIN_USEFUL_TOKENS} tokens, more than the {} \
             this page's worker can use (wasm32 memory stops at 4 GiB). Pick a smaller model.",
            human_bytes(needed),
            human_bytes(USABLE_WASM_MEMORY)
        ));
    }
    Ok(fits)
}

/// Whether `request` (with the `compare` methods run on the same text) fits in memory. Texts that
/// do not tokenize pass: the run itself then says what is wrong with them.
pub fn check_run(
    model: &Model,
    request: &Request,
    compare: &[String],
    budget: GraphBudget,
) -> Result<(), String> {
    let Ok(text) = model.tokenize_input(&request.text, None) else { return Ok(()) };
    let continuation = match &request.continuation {
        Some(c) => model.tokenizer.tokenize_continuation(c).map(|t| t.len()).unwrap_or(0),
        None => 0,
    };
    let tokens = text.len() + continuation;
    // The largest gradient batch of the run: the method's or a compared method's (a
    // continuation's prefixes are explained one after another, each no longer than the whole).
    let batch_rows = |n: usize| {
        let rows = |name: &str| {
            methods::by_name(name)
                .map_or(0, |m| m.batch_rows(&request.params, model.config(), n, budget))
        };
        compare.iter().map(|m| rows(m)).chain([rows(&request.method)]).max().unwrap_or(0)
    };
    let file_bytes = model.file_bytes() as u64;
    let needed = estimate_run_bytes(model.config(), file_bytes, tokens, batch_rows(tokens), budget);
    if needed <= USABLE_WASM_MEMORY {
        return Ok(());
    }
    let fits = max_tokens_within(
        model.config(),
        file_bytes,
        USABLE_WASM_MEMORY,
        tokens,
        budget,
        batch_rows,
    );
    let label = methods::by_name(&request.method).map_or(request.method.as_str(), |m| m.label());
    let compared =
        if compare.iter().any(|m| *m != request.method) { " and the compared methods" } else { "" };
    Err(format!(
        "This run needs about {} of memory ({tokens} tokens with {label}{compared}), more than the {} this \
         page's worker can use. At most {fits} tokens fit: shorten the text{}.",
        human_bytes(needed),
        human_bytes(USABLE_WASM_MEMORY),
        // Saliency is worth naming only when its single gradient would fit where the batch does not.
        match batch_rows(tokens) > 1 && estimate_run_bytes(model.config(), file_bytes, tokens, 0, budget) <= USABLE_WASM_MEMORY {
            true => " or use a method that needs no batches, such as saliency",
            false => "",
        }
    ))
}
