//! The text of the exports a person downloads: CSV (one row per token), a standalone HTML snippet
//! (inline styles, no script) and SVG (which the page also draws onto a PNG). Colours come from
//! [`Scale`] with the page's view settings, as on the page. All token text is escaped: it may
//! come from a link or a file.

use super::colour::Scale;
use super::format::short;
use super::view::{method_label, quantity};
use crate::engine::model::token_text::visible;
use crate::engine::model::tokenizer::Token;
use crate::engine::Attribution;

/// `text` safe inside HTML or XML text and attribute values. Characters XML forbids (C0 controls
/// other than tab, newline and return; U+FFFE, U+FFFF) become U+FFFD, so the SVG always parses.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A text cell of a CSV file, quoted. Spreadsheets run a cell that starts with `=`, `+`, `-` or
/// `@` (or a tab or carriage return before one) as a formula, so such a cell gets a leading
/// apostrophe, which they show as text and do not run.
pub fn csv_text(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = text.replace('"', "\"\"");
    match formula {
        true => format!("\"'{quoted}\""),
        false => format!("\"{quoted}\""),
    }
}

/// What an export shows: the next-token map of the shown result, coloured as on the page.
pub struct Shown<'a> {
    pub attribution: &'a Attribution,
    pub scale: Scale,
    /// "Gradient saliency (L2 norm) of p(" Paris")".
    pub title: String,
    /// The model and the Salient version.
    pub credit: String,
}

impl<'a> Shown<'a> {
    /// `model`: the model's name, when one is loaded.
    pub fn new(attribution: &'a Attribution, scale: Scale, model: Option<&str>) -> Self {
        let foil = attribution.foil.as_ref().map(|f| f.text.as_str());
        let title = format!(
            "{} of {}",
            method_label(&attribution.method),
            quantity(attribution.target_kind, &attribution.target.text, foil)
        );
        let model = model.map(|m| format!("{m} · ")).unwrap_or_default();
        let credit = format!("{model}Salient {}", env!("CARGO_PKG_VERSION"));
        Self { attribution, scale, title, credit }
    }

    fn tooltip(&self, i: usize, token: &Token, score: f32) -> String {
        let error = self.error(i).map(|e| format!(" ± {e:.1e}")).unwrap_or_default();
        format!("token {i} {} · id {} · score {score:.4e}{error}", visible(&token.text), token.id)
    }

    fn tokens(&self) -> impl Iterator<Item = (usize, &Token, f32)> {
        let a = self.attribution;
        a.tokens.iter().zip(&a.scores).enumerate().map(|(i, (t, s))| (i, t, *s))
    }

    /// Token `i`'s standard error, for the sampling methods.
    fn error(&self, i: usize) -> Option<f32> {
        self.attribution.standard_errors.as_ref()?.get(i).copied()
    }
}

/// `index,token_id,token_text,score,normalised`, and `standard_error` for the sampling methods:
/// `normalised` is the score on the colour scale (as coloured on the page). Text is always quoted
/// and never read as a formula.
pub fn csv(shown: &Shown) -> String {
    let errors = shown.attribution.standard_errors.is_some();
    let mut out = String::from("index,token_id,token_text,score,normalised");
    out.push_str(if errors { ",standard_error\n" } else { "\n" });
    for (i, token, score) in shown.tokens() {
        let (text, norm) = (csv_text(&token.text), shown.scale.norm(score));
        out.push_str(&format!("{i},{},{text},{score},{norm}", token.id));
        match shown.error(i) {
            Some(error) => out.push_str(&format!(",{error}\n")),
            None => out.push('\n'),
        }
    }
    out
}

/// A legend as inline-styled HTML: the colour bar, its ends and middle, and what is explained.
fn html_legend(shown: &Shown) -> String {
    let ticks =
        shown.scale.ticks().map(|t| format!("<span>{}</span>", escape(&short(t as f64)))).join("");
    format!(
        "<div style=\"display:flex;gap:12px;align-items:flex-start;margin-top:8px;font:13px system-ui,sans-serif;color:#5f6368\">\
         <span style=\"display:flex;flex-direction:column;width:176px\">\
         <span style=\"display:block;height:12px;border:1px solid #d9dce1;border-radius:3px;background:{}\"></span>\
         <span style=\"display:flex;justify-content:space-between;font-size:11px\">{ticks}</span></span>\
         <span><strong style=\"color:#1d1d1f\">{}</strong><br>{}</span></div>",
        shown.scale.gradient(),
        escape(&shown.title),
        escape(&shown.credit)
    )
}

/// A standalone snippet: tokens as spans with their colour and a tooltip, then the legend.
pub fn html(shown: &Shown) -> String {
    let spans: String = shown
        .tokens()
        .map(|(i, token, score)| {
            format!(
                "<span style=\"background:{};border-radius:3px\" title=\"{}\">{}</span>",
                shown.scale.colour(score),
                escape(&shown.tooltip(i, token, score)),
                escape(&token.text)
            )
        })
        .collect();
    format!(
        "<figure style=\"margin:0;max-width:760px\">\n<div style=\"font:16px/2 ui-monospace,Menlo,monospace;white-space:pre-wrap;\
         word-break:break-word;padding:8px 12px;border:1px solid #d9dce1;border-radius:6px;background:#fff;color:#1d1d1f\">{spans}</div>\n{}\n</figure>\n",
        html_legend(shown)
    )
}

const SVG_WIDTH: f32 = 760.0;
const SVG_PAD: f32 = 12.0;
const FONT_PX: f32 = 16.0;
/// Monospace advance (0.6 em); East Asian wide characters and emoji take two.
const CELL_PX: f32 = 9.6;
const LINE_PX: f32 = 28.0;

fn cells(text: &str) -> f32 {
    let wide = |c: char| {
        matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF | 0x20000..=0x3FFFD)
    };
    text.chars().map(|c| if wide(c) { 2.0 } else { 1.0 }).sum()
}

/// The map as SVG: one `<rect>` and `<text>` per piece of token (a newline ends a line, shown as
/// ↵ as on the page; spaces as no-break spaces, which SVG keeps), wrapped at the width; then the
/// legend. Returns it with its size.
pub fn svg(shown: &Shown) -> (String, f32, f32) {
    let (mut x, mut y) = (SVG_PAD, SVG_PAD);
    let mut body = String::new();
    for (i, token, score) in shown.tokens() {
        let (colour, title) = (shown.scale.colour(score), escape(&shown.tooltip(i, token, score)));
        for (k, piece) in token.text.replace('\n', "↵\n").split('\n').enumerate() {
            if k > 0 {
                (x, y) = (SVG_PAD, y + LINE_PX);
            }
            let width = cells(piece) * CELL_PX;
            if piece.is_empty() {
                continue;
            }
            if x + width > SVG_WIDTH - SVG_PAD && x > SVG_PAD {
                (x, y) = (SVG_PAD, y + LINE_PX);
            }
            body.push_str(&format!(
                "<g><title>{title}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{colour}\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\">{}</text></g>\n",
                LINE_PX - 4.0,
                y + FONT_PX + 2.0,
                // SVG collapses leading and repeated spaces (`xml:space` is not honoured everywhere).
                escape(piece).replace(' ', "\u{a0}")
            ));
            x += width;
        }
    }
    let legend_y = y + LINE_PX + 10.0;
    let ticks = shown.scale.ticks();
    let stops: String = ticks
        .iter()
        .enumerate()
        .map(|(k, t)| {
            format!(
                "<stop offset=\"{}\" stop-color=\"{}\"/>",
                k as f32 / 2.0,
                shown.scale.colour(*t)
            )
        })
        .collect();
    let labels: String = ticks
        .iter()
        .zip([("start", 0.0), ("middle", 88.0), ("end", 176.0)])
        .map(|(t, (anchor, dx))| {
            format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                SVG_PAD + dx,
                legend_y + 26.0,
                escape(&short(*t as f64))
            )
        })
        .collect();
    let height = legend_y + 70.0;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {SVG_WIDTH} {height:.0}\">\n\
         <defs><linearGradient id=\"salient-scale\">{stops}</linearGradient></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <g font-family=\"ui-monospace, Menlo, Consolas, monospace\" font-size=\"{FONT_PX}\" fill=\"#1d1d1f\">\n{body}</g>\n\
         <g font-family=\"system-ui, sans-serif\" font-size=\"11\" fill=\"#5f6368\">\
         <rect x=\"{SVG_PAD}\" y=\"{legend_y:.1}\" width=\"176\" height=\"12\" rx=\"3\" fill=\"url(#salient-scale)\" stroke=\"#d9dce1\"/>{labels}\
         <text x=\"{SVG_PAD}\" y=\"{:.1}\" font-size=\"13\" fill=\"#1d1d1f\" font-weight=\"600\">{}</text>\
         <text x=\"{SVG_PAD}\" y=\"{:.1}\" font-size=\"12\">{}</text></g>\n</svg>\n",
        legend_y + 46.0,
        escape(&shown.title),
        legend_y + 62.0,
        escape(&shown.credit)
    );
    (svg, SVG_WIDTH, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_cells_are_never_formulas() {
        for (text, cell) in [
            ("=1+1", "\"'=1+1\""),
            ("+SUM(A1)", "\"'+SUM(A1)\""),
            ("-2", "\"'-2\""),
            ("@cmd", "\"'@cmd\""),
            ("\t=x", "\"'\t=x\""),
            (" =x", "\" =x\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("", "\"\""),
        ] {
            assert_eq!(csv_text(text), cell, "{text:?}");
        }
    }
}
