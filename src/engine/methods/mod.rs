//! Attribution methods, one file each, behind one small trait, listed in one registry.

mod saliency;

use super::error::{EngineError, Result};
use super::problem::Problem;

pub trait AttributionMethod: Sync {
    /// The name used in the page's select, the CLI's `--method` and exports.
    fn name(&self) -> &'static str;
    /// A human label for the page.
    fn label(&self) -> &'static str;
    /// Signed scores get a diverging colour scale, unsigned ones a sequential scale.
    fn signed(&self) -> bool;
    /// One score per input token.
    fn attribute(&self, problem: &Problem) -> Result<Vec<f32>>;
}

/// Every method, in the order the page lists them.
pub const METHODS: &[&dyn AttributionMethod] = &[&saliency::Saliency];

pub fn by_name(name: &str) -> Result<&'static dyn AttributionMethod> {
    METHODS.iter().copied().find(|m| m.name() == name).ok_or_else(|| EngineError::UnknownMethod {
        found: name.to_string(),
        known: METHODS.iter().map(|m| m.name()).collect(),
    })
}
