//! A computed result as the page shows it, and the check that makes it safe to show.
//!
//! A [`RunOutput`] reaches the views from the worker, from a link's snapshot or from an imported
//! file. Whatever its origin it goes through [`check`] first, which returns a [`Checked`] value:
//! the views read it (`Deref`) and rely on what the check proved, so they index and subtract
//! without testing lengths again. Nothing else makes a `Checked` value.

use crate::engine::api::continuation::Continuation;
use crate::engine::api::{Attribution, Prediction};
use crate::engine::attribution::faithfulness::Faithfulness;
use crate::engine::attribution::methods;
use crate::engine::model::tokenizer::Token;
use crate::state::settings::{MAX_TOKENS, MAX_TOKEN_TEXT_BYTES};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

/// Most next-token predictions a result may list.
pub const MAX_PREDICTIONS: usize = 100;
/// Most points a deletion curve may have (the engine measures at most 11).
pub const MAX_CURVE_POINTS: usize = 101;
/// Most steps a path method may report (the engine's bound).
pub const MAX_PATH_GRADIENTS: usize = 1024;

/// Everything one run computes before the faithfulness check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    /// The request's method, with the continuation when one was given.
    pub attribution: Attribution,
    /// f(baseline), when the method reports completeness (integrated gradients).
    pub baseline_value: Option<f64>,
    /// Each compared method's scores on the same problem, in the order asked for.
    pub compared: Vec<MethodScores>,
    /// Spearman's rank correlation for each pair of `compared`.
    pub agreements: Vec<Agreement>,
}

impl RunOutput {
    /// A result with nothing but its attribution (a link's snapshot, an imported file).
    pub fn of(attribution: Attribution) -> Self {
        Self { attribution, baseline_value: None, compared: Vec::new(), agreements: Vec::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodScores {
    pub method: String,
    pub signed: bool,
    pub scores: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub a: String,
    pub b: String,
    /// `None` when undefined (a constant map).
    pub spearman: Option<f64>,
}

/// A value that passed its check. Read it through `Deref`; only [`check`] makes one.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked<T>(T);

impl<T> Deref for Checked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Checked<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Why a result cannot be shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResultError {
    /// Two parts that must match do not (lengths, ids).
    Inconsistent(&'static str),
    TooLong(usize),
    UnknownMethod(String),
    /// A number that must be finite (or within a range) is not.
    BadNumber(&'static str),
    /// A list longer than any result has.
    TooMany(&'static str),
}

impl fmt::Display for ResultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultError::Inconsistent(what) => {
                write!(f, "the result it holds is inconsistent ({what} do not match)")
            }
            ResultError::TooLong(n) => write!(
                f,
                "the result it holds has {n} tokens, more than the {MAX_TOKENS} this page explains"
            ),
            ResultError::UnknownMethod(m) => {
                write!(f, "the result it holds names an unknown method \"{m}\"")
            }
            ResultError::BadNumber(what) => {
                write!(f, "the result it holds has an impossible value ({what})")
            }
            ResultError::TooMany(what) => write!(f, "the result it holds has too many {what}"),
        }
    }
}

type Check = Result<(), ResultError>;

fn require(ok: bool, error: ResultError) -> Check {
    if ok {
        Ok(())
    } else {
        Err(error)
    }
}

fn finite(x: f64, what: &'static str) -> Check {
    require(x.is_finite(), ResultError::BadNumber(what))
}

fn all_finite(scores: &[f32], what: &'static str) -> Check {
    require(scores.iter().all(|s| s.is_finite()), ResultError::BadNumber(what))
}

fn probability(p: f64, what: &'static str) -> Check {
    require((0.0..=1.0).contains(&p), ResultError::BadNumber(what))
}

fn tokens_ok(tokens: &[Token]) -> Check {
    require(
        tokens.iter().all(|t| t.text.len() <= MAX_TOKEN_TEXT_BYTES && t.byte_len <= t.text.len()),
        ResultError::TooMany("bytes in a token's text"),
    )
}

fn prediction_ok(p: &Prediction) -> Check {
    require(p.text.len() <= MAX_TOKEN_TEXT_BYTES, ResultError::TooMany("bytes in a token's text"))?;
    probability(p.prob as f64, "a probability")
}

/// The method `name` names, which must say the same about its scores' sign.
fn method_ok(name: &str, signed: bool) -> Check {
    let method = methods::by_name(name)
        .map_err(|_| ResultError::UnknownMethod(name.chars().take(40).collect()))?;
    require(method.signed() == signed, ResultError::Inconsistent("the method and its sign"))
}

/// Checks everything the views read of `output`: one score per token and every score finite,
/// token counts within the page's limit, known methods with their own sign, a continuation whose
/// rows fit its tokens, compared maps and their agreements, and a faithfulness report whose
/// numbers are probabilities and fractions.
pub fn check(output: RunOutput) -> Result<Checked<RunOutput>, ResultError> {
    check_attribution(&output.attribution)?;
    let n = output.attribution.tokens.len();
    if let Some(b) = output.baseline_value {
        finite(b, "f(baseline)")?;
    }
    let compared = &output.compared;
    require(compared.len() <= methods::METHODS.len(), ResultError::TooMany("compared methods"))?;
    for (i, m) in compared.iter().enumerate() {
        method_ok(&m.method, m.signed)?;
        require(
            !compared[..i].iter().any(|o| o.method == m.method),
            ResultError::Inconsistent("compared methods (a method twice) and their maps"),
        )?;
        require(m.scores.len() == n, ResultError::Inconsistent("compared scores and tokens"))?;
        all_finite(&m.scores, "a compared score")?;
    }
    let pairs = compared.len() * compared.len().saturating_sub(1) / 2;
    require(output.agreements.len() == pairs, ResultError::Inconsistent("agreements and pairs"))?;
    let pair = |a: &str, b: &str| {
        let index = |name: &str| compared.iter().position(|m| m.method == name);
        matches!((index(a), index(b)), (Some(i), Some(j)) if i < j)
    };
    for g in &output.agreements {
        require(pair(&g.a, &g.b), ResultError::Inconsistent("agreements and compared methods"))?;
        if let Some(rho) = g.spearman {
            require((-1.0..=1.0).contains(&rho), ResultError::BadNumber("a rank correlation"))?;
        }
    }
    Ok(Checked(output))
}

fn check_attribution(a: &Attribution) -> Check {
    let n = a.tokens.len();
    let total = n + a.continuation.as_ref().map_or(0, |c| c.tokens.len().saturating_sub(n));
    require(total <= MAX_TOKENS, ResultError::TooLong(total))?;
    require(n > 0, ResultError::Inconsistent("tokens (there are none) and scores"))?;
    tokens_ok(&a.tokens)?;
    method_ok(&a.method, a.signed)?;
    require(a.scores.len() == n, ResultError::Inconsistent("scores and tokens"))?;
    all_finite(&a.scores, "a score")?;
    require(
        a.signed || a.scores.iter().all(|s| *s >= 0.0),
        ResultError::BadNumber("a negative score of an unsigned method"),
    )?;
    finite(a.value, "the explained value")?;
    prediction_ok(&a.target)?;
    if let Some(foil) = &a.foil {
        prediction_ok(foil)?;
        require(foil.id != a.target.id, ResultError::Inconsistent("the target and the foil"))?;
    }
    require(a.top_k.len() <= MAX_PREDICTIONS, ResultError::TooMany("predictions"))?;
    a.top_k.iter().try_for_each(prediction_ok)?;
    if let Some(error) = a.completeness_error {
        require(error.is_finite() && error >= 0.0, ResultError::BadNumber("completeness error"))?;
    }
    if let Some(g) = a.path_gradients {
        require(g <= MAX_PATH_GRADIENTS, ResultError::BadNumber("gradients taken"))?;
    }
    if let Some(errors) = &a.standard_errors {
        require(errors.len() == n, ResultError::Inconsistent("standard errors and tokens"))?;
        require(
            errors.iter().all(|e| e.is_finite() && *e >= 0.0),
            ResultError::BadNumber("a standard error"),
        )?;
    }
    if let Some(evaluations) = a.evaluations {
        require(
            evaluations <= methods::MAX_BUDGET,
            ResultError::BadNumber("coalitions evaluated"),
        )?;
    }
    if let Some(report) = &a.faithfulness {
        check_faithfulness(report)?;
    }
    if let Some(c) = &a.continuation {
        check_continuation(c, &a.tokens)?;
    }
    Ok(())
}

/// Row j of a continuation explains token `output_start + j` from the tokens before it, and the
/// tokens before the continuation are the attribution's own.
fn check_continuation(c: &Continuation, prefix: &[Token]) -> Check {
    let inconsistent = ResultError::Inconsistent("continuation rows and tokens");
    require(
        c.output_start == prefix.len() && c.tokens.len() > c.output_start,
        inconsistent.clone(),
    )?;
    require(
        c.tokens[..c.output_start].iter().zip(prefix).all(|(a, b)| a.id == b.id),
        ResultError::Inconsistent("continuation tokens and the text's tokens"),
    )?;
    tokens_ok(&c.tokens)?;
    require(c.rows.len() == c.tokens.len() - c.output_start, inconsistent.clone())?;
    for (j, row) in c.rows.iter().enumerate() {
        require(row.scores.len() == c.output_start + j, inconsistent.clone())?;
        all_finite(&row.scores, "a continuation score")?;
        prediction_ok(&row.target)?;
        require(row.target.id == c.tokens[c.output_start + j].id, inconsistent.clone())?;
    }
    Ok(())
}

fn check_faithfulness(f: &Faithfulness) -> Check {
    let curve = &f.deletion_curve;
    require(
        !curve.is_empty() && curve.len() <= MAX_CURVE_POINTS,
        ResultError::TooMany("curve points"),
    )?;
    for (fraction, p) in curve {
        probability(*fraction as f64, "a fraction of tokens")?;
        probability(*p, "a probability on the deletion curve")?;
    }
    require(
        curve.windows(2).all(|w| w[0].0 < w[1].0),
        ResultError::Inconsistent("deletion curve fractions (not increasing) and tokens"),
    )?;
    for (x, what) in [
        (f.comprehensiveness, "comprehensiveness"),
        (f.sufficiency, "sufficiency"),
        (f.random_comprehensiveness, "random comprehensiveness"),
        (f.random_sufficiency, "random sufficiency"),
    ] {
        // Differences of two probabilities.
        require((-1.0..=1.0).contains(&x), ResultError::BadNumber(what))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::api::continuation::ContinuationRow;
    use crate::engine::attribution::methods::MethodParams;
    use crate::engine::BackendKind;
    use crate::engine::TargetKind;

    fn token(id: u32) -> Token {
        Token { id, text: format!("t{id}"), byte_len: 2, special: false }
    }

    fn prediction(id: u32) -> Prediction {
        Prediction { id, text: format!("t{id}"), prob: 0.25 }
    }

    /// Three tokens and a two-token continuation, as the engine makes them.
    fn output() -> RunOutput {
        let tokens: Vec<Token> = (0..3).map(token).collect();
        let continuation = Continuation {
            tokens: (0..5).map(token).collect(),
            output_start: 3,
            rows: vec![
                ContinuationRow { target: prediction(3), scores: vec![0.1; 3] },
                ContinuationRow { target: prediction(4), scores: vec![0.1; 4] },
            ],
        };
        RunOutput::of(Attribution {
            tokens,
            target: prediction(7),
            foil: None,
            target_kind: TargetKind::Prob,
            value: 0.25,
            top_k: vec![prediction(7)],
            method: "saliency".into(),
            params: MethodParams::default(),
            signed: false,
            scores: vec![0.5, 0.25, 1.0],
            completeness_error: None,
            path_gradients: None,
            standard_errors: None,
            evaluations: None,
            faithfulness: Some(Faithfulness {
                deletion_curve: vec![(0.0, 0.25), (0.5, 0.1), (1.0, 0.0)],
                comprehensiveness: 0.2,
                sufficiency: 0.1,
                random_comprehensiveness: 0.05,
                random_sufficiency: 0.2,
            }),
            continuation: Some(continuation),
            backend: BackendKind::Gpu,
        })
    }

    fn c(o: &mut RunOutput) -> &mut Continuation {
        o.attribution.continuation.as_mut().unwrap()
    }

    fn f(o: &mut RunOutput) -> &mut Faithfulness {
        o.attribution.faithfulness.as_mut().unwrap()
    }

    fn refused(edit: impl Fn(&mut RunOutput)) -> ResultError {
        let mut o = output();
        edit(&mut o);
        check(o).unwrap_err()
    }

    #[test]
    fn what_the_views_read_is_checked() {
        assert!(check(output()).is_ok());
        let rows = ResultError::Inconsistent("continuation rows and tokens");
        assert_eq!(refused(|o| c(o).output_start = 2), rows);
        assert_eq!(refused(|o| c(o).output_start = 9), rows);
        assert_eq!(refused(|o| drop(c(o).rows.pop())), rows);
        assert_eq!(refused(|o| c(o).rows[1].scores.push(0.0)), rows);
        assert_eq!(refused(|o| c(o).tokens.truncate(3)), rows);
        assert_eq!(
            refused(|o| c(o).tokens[0].id = 99),
            ResultError::Inconsistent("continuation tokens and the text's tokens")
        );
        assert_eq!(refused(|o| f(o).deletion_curve.clear()), ResultError::TooMany("curve points"));
        assert_eq!(
            refused(|o| f(o).deletion_curve[1].1 = 7.0),
            ResultError::BadNumber("a probability on the deletion curve")
        );
        assert_eq!(refused(|o| f(o).sufficiency = f64::NAN), ResultError::BadNumber("sufficiency"));
        assert_eq!(
            refused(|o| o.attribution.scores[1] = f32::INFINITY),
            ResultError::BadNumber("a score")
        );
        assert_eq!(
            refused(|o| o.compared = vec![
                MethodScores {
                    method: "saliency".into(),
                    signed: false,
                    scores: vec![0.0; 3]
                };
                2
            ]),
            ResultError::Inconsistent("compared methods (a method twice) and their maps")
        );
        assert_eq!(
            refused(|o| o.agreements.push(Agreement {
                a: "x".into(),
                b: "y".into(),
                spearman: None
            })),
            ResultError::Inconsistent("agreements and pairs")
        );
    }
}
