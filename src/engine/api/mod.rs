//! The engine's front door: text + target + method in, tokens + prediction + scores out; and what
//! a request asks beyond one method's scores (a continuation explained token by token).

pub mod continuation;
pub mod request;

use crate::engine::attribution::faithfulness::{self, Faithfulness};
use crate::engine::attribution::methods::{self, MethodParams};
use crate::engine::attribution::objective::TargetKind;
pub use crate::engine::attribution::problem::Prediction;
use crate::engine::attribution::problem::{top_indices, Backend, BackendKind, Problem};
use crate::engine::error::Result;
use crate::engine::model::tokenizer::Token;
use crate::engine::model::Model;
use crate::engine::runtime::context::RunContext;
use crate::engine::runtime::progress;
use crate::engine::runtime::ready::now;
use continuation::{attribute_continuation, Continuation};
pub use request::Request;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub tokens: Vec<Token>,
    pub target: Prediction,
    /// Contrastive runs: the token the target is compared with.
    pub foil: Option<Prediction>,
    pub target_kind: TargetKind,
    /// The explained quantity at the input, f(x).
    pub value: f64,
    pub top_k: Vec<Prediction>,
    pub method: String,
    pub params: MethodParams,
    /// Whether scores can be negative (diverging colour scale) or not (sequential).
    pub signed: bool,
    /// One score per token, in token order.
    pub scores: Vec<f32>,
    /// Path and Shapley methods: |Σ scores − (f(x) − f(baseline))| / |f(x) − f(baseline)|.
    pub completeness_error: Option<f64>,
    /// Path methods: how many gradients the path integral took.
    #[serde(default)]
    pub path_gradients: Option<usize>,
    /// Sampling methods: each score's standard error.
    #[serde(default)]
    pub standard_errors: Option<Vec<f32>>,
    /// Perturbation methods: how many coalitions they evaluated.
    #[serde(default)]
    pub evaluations: Option<usize>,
    /// When the request asked for it: how faithful the scores are.
    #[serde(default)]
    pub faithfulness: Option<Faithfulness>,
    /// When the request gave a continuation: one attribution per continuation token.
    #[serde(default)]
    pub continuation: Option<Continuation>,
    /// Where it was computed (results from before the GPU backend: the CPU).
    #[serde(default)]
    pub backend: BackendKind,
}

/// Runs `request` on `model` in `context`: the problem's forward pass, the method, and what the
/// request asks for beyond the scores.
pub async fn run(model: &Model, request: &Request, context: &RunContext) -> Result<Attribution> {
    run_on(Backend::Cpu, model, request, context).await
}

/// [`run`] with its passes on `backend`.
pub async fn run_on(
    backend: Backend,
    model: &Model,
    request: &Request,
    context: &RunContext,
) -> Result<Attribution> {
    methods::by_name(&request.method)?; // an unknown method fails before the forward pass
    let tokens = model.tokenize_input(&request.text, request.max_tokens)?;
    let problem = Problem::on(backend, model, tokens, &request.target, context).await?;
    explain_request(&problem, request).await
}

/// [`run`] on the CPU, for callers that cannot await (the CLI, tests, the page's pool threads).
pub fn attribute(model: &Model, request: &Request, context: &RunContext) -> Result<Attribution> {
    now(run(model, request, context))
}

/// The work (in [`progress`] units) of `request` on a text of `seq` tokens: `Problem::new`'s
/// forward pass, then [`explain_request`]'s method and continuation rows, each row a problem of its
/// own. The faithfulness check is left out: its passes depend on the scores.
pub fn expected_work(model: &Model, seq: usize, request: &Request) -> Result<u64> {
    let method = methods::by_name(&request.method)?;
    let problem_and_method = |seq| progress::forward(1, seq) + method.work(seq, &request.params);
    let continuation = match &request.continuation {
        Some(text) => model.tokenizer.tokenize_continuation(text)?.len(),
        None => 0,
    };
    // Row k explains continuation token k from the text and the k tokens before it.
    let rows: u64 = (seq..seq + continuation).map(problem_and_method).sum();
    Ok(problem_and_method(seq) + rows)
}

/// [`explain`] plus what `request` asks for beyond the scores (faithfulness, a continuation).
/// `problem` must be `request`'s problem.
pub async fn explain_request(problem: &Problem<'_>, request: &Request) -> Result<Attribution> {
    let mut result = explain(problem, &request.method, &request.params, request.top_k).await?;
    if request.faithfulness {
        let params = &request.params;
        result.faithfulness = Some(
            faithfulness::measure(problem, &result.scores, params.baseline, params.seed).await?,
        );
    }
    if let Some(continuation) = &request.continuation {
        result.continuation = Some(
            attribute_continuation(
                problem.backend(),
                problem.model,
                request,
                continuation,
                problem.context(),
            )
            .await?,
        );
    }
    Ok(result)
}

/// The second half of [`run`], for callers that time the forward pass apart or run several
/// methods on one problem.
pub async fn explain(
    problem: &Problem<'_>,
    method: &str,
    params: &MethodParams,
    top_k: usize,
) -> Result<Attribution> {
    let method = methods::by_name(method)?;
    let prediction = |id: u32| Prediction::of(problem, id);
    let top_k =
        top_indices(&problem.probs, top_k).into_iter().map(prediction).collect::<Result<_>>()?;
    let scores = method.attribute(problem, params).await?;
    debug_assert_eq!(scores.values.len(), problem.len());
    Ok(Attribution {
        target: prediction(problem.objective.target)?,
        foil: problem.objective.foil.map(prediction).transpose()?,
        target_kind: problem.objective.kind,
        value: problem.input_value()?,
        top_k,
        method: method.name().to_string(),
        params: params.clone(),
        signed: method.signed(),
        scores: scores.values,
        completeness_error: scores.completeness_error,
        path_gradients: scores.gradients,
        standard_errors: scores.standard_errors,
        evaluations: scores.evaluations,
        faithfulness: None,
        continuation: None,
        tokens: problem.tokens.clone(),
        backend: problem.backend().kind(),
    })
}
