//! Scores → colours, the same rule for every map, its legend and the matrix.

use crate::state::settings::{Normalisation, ViewSettings};

/// The colour scale of one map (or one matrix row).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// Signed scores get the diverging scale (blue ← white → red), unsigned the sequential one.
    pub signed: bool,
    /// The score that normalises to 1: the largest |score| shown, or 1 for raw scores.
    reference: f32,
    intensity: f32,
}

impl Scale {
    pub fn new(scores: &[f32], signed: bool, view: &ViewSettings) -> Self {
        let reference = match view.normalisation {
            Normalisation::MaxAbs => scores.iter().fold(0f32, |m, s| m.max(s.abs())),
            Normalisation::None => 1.0,
        };
        Self { signed, reference, intensity: view.intensity.max(f32::EPSILON) }
    }

    /// The score on the normalised scale, within [−1, 1] (signed) or [0, 1] (unsigned).
    pub fn norm(&self, score: f32) -> f32 {
        if self.reference == 0.0 || !self.reference.is_finite() || !score.is_finite() {
            return 0.0;
        }
        let low = if self.signed { -1.0 } else { 0.0 };
        (score / self.reference).clamp(low, 1.0)
    }

    pub fn colour(&self, score: f32) -> String {
        colour(self.norm(score) * self.intensity, self.signed)
    }

    /// The scores at the ends and the middle of the colour range: beyond the ends the colour
    /// stays full.
    pub fn ticks(&self) -> [f32; 3] {
        let full = self.reference / self.intensity;
        if self.signed {
            [-full, 0.0, full]
        } else {
            [0.0, full / 2.0, full]
        }
    }

    /// CSS gradient for the legend bar.
    pub fn gradient(&self) -> String {
        let stops: &[f32] =
            if self.signed { &[-1.0, -0.5, 0.0, 0.5, 1.0] } else { &[0.0, 0.5, 1.0] };
        let stops: Vec<String> = stops.iter().map(|n| colour(*n, self.signed)).collect();
        format!("linear-gradient(to right, {})", stops.join(", "))
    }
}

/// Background for a normalised score: orange for unsigned maps, blue (lowers) or red (raises) for
/// signed ones, as transparent as the score is small, so a zero is the page's own background,
/// light or dark. Over white this is the tint of lightness 100 − 50·|norm| %, so dark text stays
/// readable.
fn colour(norm: f32, signed: bool) -> String {
    let strength = norm.abs().clamp(0.0, 1.0);
    let hue = if signed && norm < 0.0 {
        215
    } else if signed {
        0
    } else {
        28
    };
    format!("hsl({hue} 100% 50% / {strength:.3})")
}
