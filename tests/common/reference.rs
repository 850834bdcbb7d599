//! Slow forward passes in plain f64 loops, written from the model definitions alone (nothing from
//! the engine or candle): what the engine's decoders must compute, one position and one head at
//! a time.

use super::gguf_builder::{Family, TinyConfig, LAYER_NORM_EPS, RMS_EPS, ROPE_THETA};

/// A weight by GGUF tensor name, widened to f64; `None` when the file has no such tensor.
pub type Weights<'a> = dyn Fn(&str) -> Option<Vec<f64>> + 'a;

/// Per layer, per head, the `(seq, seq)` attention probabilities; and the last position's logits.
/// Also, per layer and head, what the head writes into the stream at the last position (its
/// slice of the output projection times its values, the value bias left out), and the last
/// position's stream before the final norm.
pub struct Reference {
    pub attentions: Vec<Vec<Vec<Vec<f64>>>>,
    pub head_outputs: Vec<Vec<Vec<f64>>>,
    pub last_stream: Vec<f64>,
    pub last_logits: Vec<f64>,
}

/// Deliberate departures from a family's definition, to show that a comparison can fail.
#[derive(Clone, Copy, Debug, Default)]
pub struct Variant {
    /// Rotate the other layout's pairs (llama ↔ qwen2).
    pub flip_rope: bool,
    /// Leave every bias out.
    pub drop_biases: bool,
}

pub const EXACT: Variant = Variant { flip_rope: false, drop_biases: false };

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `w` (`rows × x.len()`, row-major) times `x`, plus `bias` when given.
fn affine(w: &[f64], bias: Option<&[f64]>, x: &[f64]) -> Vec<f64> {
    let mut y: Vec<f64> = w.chunks_exact(x.len()).map(|row| dot(row, x)).collect();
    if let Some(bias) = bias {
        y.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    y
}

fn rms_norm(x: &[f64], gain: &[f64]) -> Vec<f64> {
    let rms = (dot(x, x) / x.len() as f64 + RMS_EPS as f64).sqrt();
    x.iter().zip(gain).map(|(v, g)| v / rms * g).collect()
}

fn layer_norm(x: &[f64], gain: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let variance = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let normed: Vec<f64> = x
        .iter()
        .zip(gain)
        .map(|(v, g)| (v - mean) / (variance + LAYER_NORM_EPS as f64).sqrt() * g)
        .collect();
    match bias {
        Some(b) => normed.iter().zip(b).map(|(v, b)| v + b).collect(),
        None => normed,
    }
}

/// Rotary positions on one head's vector: pair i turns by position · θ^(−2i/head_dim). The pairs
/// are (2i, 2i+1) when `interleaved`, else (i, i + head_dim/2).
fn rotate(head: &mut [f64], position: usize, interleaved: bool) {
    let dim = head.len();
    for i in 0..dim / 2 {
        let angle = position as f64 * (ROPE_THETA as f64).powf(-2.0 * i as f64 / dim as f64);
        let (a, b) = if interleaved { (2 * i, 2 * i + 1) } else { (i, i + dim / 2) };
        let (x, y) = (head[a], head[b]);
        head[a] = x * angle.cos() - y * angle.sin();
        head[b] = x * angle.sin() + y * angle.cos();
    }
}

/// Causal attention, grouped: query head `h` reads key/value head `h / (heads / kv_heads)`.
/// Returns each head's probabilities `(seq, seq)` and the mixed values `(seq, heads · head_dim)`.
fn attention(
    q: &[Vec<f64>],
    k: &[Vec<f64>],
    v: &[Vec<f64>],
    heads: usize,
    kv_heads: usize,
) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
    let seq = q.len();
    let head_dim = q[0].len() / heads;
    let mut probs = vec![vec![vec![0.0; seq]; seq]; heads];
    let mut mixed = vec![vec![0.0; heads * head_dim]; seq];
    for head in 0..heads {
        let kv = head / (heads / kv_heads);
        let part = |rows: &[Vec<f64>], i: usize, h: usize| {
            rows[i][h * head_dim..(h + 1) * head_dim].to_vec()
        };
        for i in 0..seq {
            let logits: Vec<f64> = (0..=i)
                .map(|j| dot(&part(q, i, head), &part(k, j, kv)) / (head_dim as f64).sqrt())
                .collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            for (j, e) in exps.iter().enumerate() {
                probs[head][i][j] = e / total;
                for (d, value) in part(v, j, kv).iter().enumerate() {
                    mixed[i][head * head_dim + d] += e / total * value;
                }
            }
        }
    }
    (probs, mixed)
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// GPT-2's GELU (tanh approximation).
fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

fn add_into(x: &mut [f64], y: &[f64]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// The forward pass of a `family` model with `config` on token embeddings `embeds` (one row per
/// position), reading weights from `weights`.
pub fn forward(
    family: Family,
    config: &TinyConfig,
    weights: &Weights,
    embeds: &[Vec<f64>],
    variant: Variant,
) -> Reference {
    let TinyConfig { layers, width, heads, kv_heads, .. } = *config;
    let head_dim = width / heads;
    let require = |name: &str| weights(name).unwrap_or_else(|| panic!("no tensor {name}"));
    let bias = |name: &str| if variant.drop_biases { None } else { weights(name) };
    let mut x = embeds.to_vec();
    if family == Family::Gpt2 {
        let positions = require("position_embd.weight");
        for (p, row) in x.iter_mut().enumerate() {
            add_into(row, &positions[p * width..(p + 1) * width]);
        }
    }
    let interleaved = (family == Family::Llama) != variant.flip_rope;
    let (mut attentions, mut head_outputs) = (Vec::new(), Vec::new());
    for layer in 0..layers {
        let name = |n: &str| format!("blk.{layer}.{n}");
        let linear = |n: &str, row: &[f64]| {
            affine(
                &require(&name(&format!("{n}.weight"))),
                bias(&name(&format!("{n}.bias"))).as_deref(),
                row,
            )
        };
        let norm = |n: &str, row: &[f64]| match family {
            Family::Gpt2 => layer_norm(
                row,
                &require(&name(&format!("{n}.weight"))),
                bias(&name(&format!("{n}.bias"))).as_deref(),
            ),
            _ => rms_norm(row, &require(&name(&format!("{n}.weight")))),
        };
        let h: Vec<Vec<f64>> = x.iter().map(|row| norm("attn_norm", row)).collect();
        let (q, k, v): (Vec<_>, Vec<_>, Vec<_>) = match family {
            Family::Gpt2 => {
                let qkv: Vec<Vec<f64>> = h.iter().map(|row| linear("attn_qkv", row)).collect();
                let third =
                    |t: usize| qkv.iter().map(|r| r[t * width..(t + 1) * width].to_vec()).collect();
                (third(0), third(1), third(2))
            }
            _ => {
                let rotated = |n: &str, row: &[f64], position: usize| {
                    let mut out = linear(n, row);
                    out.chunks_exact_mut(head_dim)
                        .for_each(|head| rotate(head, position, interleaved));
                    out
                };
                (
                    h.iter().enumerate().map(|(p, row)| rotated("attn_q", row, p)).collect(),
                    h.iter().enumerate().map(|(p, row)| rotated("attn_k", row, p)).collect(),
                    h.iter().map(|row| linear("attn_v", row)).collect(),
                )
            }
        };
        let (probs, mixed) = attention(&q, &k, &v, heads, kv_heads);
        let value_bias = match family {
            Family::Gpt2 => bias(&name("attn_qkv.bias")).map(|b| b[2 * width..].to_vec()),
            _ => bias(&name("attn_v.bias")),
        };
        let output = require(&name("attn_output.weight"));
        let last = &mixed[mixed.len() - 1];
        head_outputs.push(
            (0..heads)
                .map(|head| {
                    let kv = head / (heads / kv_heads);
                    (0..width)
                        .map(|o| {
                            (0..head_dim)
                                .map(|d| {
                                    let b =
                                        value_bias.as_ref().map_or(0.0, |b| b[kv * head_dim + d]);
                                    output[o * width + head * head_dim + d]
                                        * (last[head * head_dim + d] - b)
                                })
                                .sum()
                        })
                        .collect()
                })
                .collect(),
        );
        for (row, m) in x.iter_mut().zip(&mixed) {
            add_into(row, &linear("attn_output", m));
            let h = norm("ffn_norm", row);
            let inner: Vec<f64> = match family {
                Family::Gpt2 => linear("ffn_up", &h).into_iter().map(gelu).collect(),
                _ => linear("ffn_gate", &h)
                    .iter()
                    .zip(linear("ffn_up", &h))
                    .map(|(g, u)| silu(*g) * u)
                    .collect(),
            };
            add_into(row, &linear("ffn_down", &inner));
        }
        attentions.push(probs);
    }
    let last_stream = x[x.len() - 1].clone();
    let last = &last_stream;
    let last = match family {
        Family::Gpt2 => {
            layer_norm(last, &require("output_norm.weight"), bias("output_norm.bias").as_deref())
        }
        _ => rms_norm(last, &require("output_norm.weight")),
    };
    // Tied models have no output matrix: the token embedding is the output projection.
    let output = weights("output.weight").unwrap_or_else(|| require("token_embd.weight"));
    Reference { attentions, head_outputs, last_stream, last_logits: affine(&output, None, &last) }
}
