//! Scores → colours, the same rule for the map and its legend.

/// Scores scaled by the largest |score| (so the strongest token is 1, or -1 when signed).
pub fn normalise(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().fold(0f32, |m, s| m.max(s.abs()));
    if max == 0.0 || !max.is_finite() {
        return vec![0.0; scores.len()];
    }
    scores.iter().map(|s| s / max).collect()
}

/// Background for a normalised score: white → orange for unsigned maps; blue ← white → red for
/// signed ones. Lightness stays ≥ 50% so dark text stays readable.
pub fn colour(norm: f32, signed: bool) -> String {
    let strength = norm.abs().clamp(0.0, 1.0);
    let hue = if signed && norm < 0.0 { 215 } else if signed { 0 } else { 28 };
    format!("hsl({hue} 100% {:.1}%)", 100.0 - 50.0 * strength)
}

/// CSS gradient for the legend bar.
pub fn legend_gradient(signed: bool) -> String {
    let stops: Vec<String> = if signed {
        [-1.0, -0.5, 0.0, 0.5, 1.0].iter().map(|n| colour(*n, true)).collect()
    } else {
        [0.0, 0.5, 1.0].iter().map(|n| colour(*n, false)).collect()
    };
    format!("linear-gradient(to right, {})", stops.join(", "))
}
