//! The CLI's forward projections, `x · Wᵀ`, on CPUs with AVX-512, reading both operands where
//! they lie. gemm copies ("packs") one operand into panels on every call, here the weight, which
//! a call uses for as few as 16–64 rows of `x`: at these shapes the copy cost about a third of
//! the multiplications (a perf profile of saliency at 64 tokens: 20 % of the CLI's time in gemm's
//! packing, 31 % in its kernels).
//!
//! Each result is the dot product of a row of `x` and a row of `W`, both contiguous. A tile of
//! 4 × 4 results keeps 16 sums of 16 lanes in registers over the whole row and adds up each
//! sum's lanes once, at the end. Rows missing from a tile at the edge are computed from its last
//! row again and not stored; the end of a row that does not fill 16 lanes is masked out of the
//! loads.
//!
//! The backward pass, `dy · W`, stays with gemm: it packs `W`'s rows there with contiguous
//! copies, and a kernel of 8 × 32 or 4 × 64 tiles reading `W` in place measured slower at 64
//! tokens (saliency's backward 197–245 ms against gemm's 151–158 ms).

use std::arch::x86_64::*;

/// Whether this CPU runs this kernel (checked once by the standard library, then cached).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// The most rows of `x` for which this kernel beats gemm. Past them gemm's copy of `W` pays for
/// itself, and its larger tiles win: the forward pass at 512 tokens took 1.47 s with gemm
/// against 1.65 s here, occlusion's batches at 64 tokens 9.1 s against 13.1 s (a text of 16
/// tokens: 68 ms here against 95–116 ms with gemm; 64 tokens: 192–195 ms against 208–209 ms).
pub const MAX_ROWS: usize = 64;

const LANES: usize = 16;

/// `out[i·out_stride + j] = Σ_r lhs[i·lhs_stride + r] · rhs[j·rhs_stride + r]` for `i < m`,
/// `j < n`, `r < k`: `out = lhs · rhsᵀ` with both operands' rows contiguous. With `accumulate`
/// the products are added to `out`.
///
/// # Safety
/// [`available`] is true, and rows `i < m` of `out`, `n` values each from `out + i·out_stride`,
/// are writable and nothing else reads or writes them during the call.
#[target_feature(enable = "avx512f")]
pub unsafe fn multiply_by_rows(out: *mut f32, out_stride: usize, lhs: &[f32], lhs_stride: usize, rhs: &[f32], rhs_stride: usize, m: usize, n: usize, k: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * lhs_stride + k <= lhs.len(), "avx512-matmul: lhs out of bounds");
    assert!((n - 1) * rhs_stride + k <= rhs.len(), "avx512-matmul: rhs out of bounds");
    // The outer loop keeps 4 rows of `rhs` (a weight's, the larger operand) in the L1 cache while
    // every row of `lhs` passes.
    for j in (0..n).step_by(4) {
        let rhs_rows: [*const f32; 4] = std::array::from_fn(|t| rhs.as_ptr().add((j + t).min(n - 1) * rhs_stride));
        for i in (0..m).step_by(4) {
            let lhs_rows: [*const f32; 4] = std::array::from_fn(|t| lhs.as_ptr().add((i + t).min(m - 1) * lhs_stride));
            let mut sums = [0.0f32; 16];
            _mm512_storeu_ps(sums.as_mut_ptr(), dot_tile(lhs_rows, rhs_rows, k));
            for (t, row_sums) in sums.chunks_exact(4).enumerate().take(m - i) {
                let row = out.add((i + t) * out_stride + j);
                for (u, &sum) in row_sums.iter().enumerate().take(n - j) {
                    *row.add(u) = if accumulate { *row.add(u) + sum } else { sum };
                }
            }
        }
    }
}

/// The 16 dot products of 4 rows of `lhs` with 4 rows of `rhs` (`k` values each): lane `4t + u`
/// holds `lhs_rows[t] · rhs_rows[u]`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dot_tile(lhs_rows: [*const f32; 4], rhs_rows: [*const f32; 4], k: usize) -> __m512 {
    let mut sums = [[_mm512_setzero_ps(); 4]; 4];
    let mut r = 0;
    while r < k {
        // The last step reads only the row's remaining values (masked lanes are not read).
        let mask = lane_mask(k - r);
        let mut left = [_mm512_setzero_ps(); 4];
        for t in 0..4 {
            left[t] = _mm512_maskz_loadu_ps(mask, lhs_rows[t].add(r));
        }
        for u in 0..4 {
            let right = _mm512_maskz_loadu_ps(mask, rhs_rows[u].add(r));
            for t in 0..4 {
                sums[t][u] = _mm512_fmadd_ps(left[t], right, sums[t][u]);
            }
        }
        r += LANES;
    }
    add_lanes(sums)
}

/// Each of 16 vectors' lanes added up, in one vector: lane `4t + u` is the sum of `v[t][u]`. A
/// tree of 15 additions (with shuffles), rather than 16 separate reductions of 15 each.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn add_lanes(v: [[__m512; 4]; 4]) -> __m512 {
    let mut quads = [_mm512_setzero_ps(); 4];
    for t in 0..4 {
        let (ab, cd) = (add_pairs(v[t][0], v[t][1]), add_pairs(v[t][2], v[t][3]));
        // Per block: [Σa, Σb, Σc, Σd] over that block's 4 lanes of each.
        quads[t] = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(ab, cd), _mm512_shuffle_ps::<0xEE>(ab, cd));
    }
    // Blocks: [q0 (0 + 2), q0 (1 + 3), q1 (0 + 2), q1 (1 + 3)], and the same for q2, q3.
    let first = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(quads[0], quads[1]), _mm512_shuffle_f32x4::<0xEE>(quads[0], quads[1]));
    let second = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(quads[2], quads[3]), _mm512_shuffle_f32x4::<0xEE>(quads[2], quads[3]));
    // Blocks: [q0, q1, q2, q3], each summed over its 4 blocks.
    _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(first, second), _mm512_shuffle_f32x4::<0xDD>(first, second))
}

/// Per 128-bit block (4 lanes) of `a` and `b`: [a0 + a2, b0 + b2, a1 + a3, b1 + b3].
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn add_pairs(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
}

/// The first `count` lanes (all 16 from 16 on).
#[inline]
fn lane_mask(count: usize) -> __mmask16 {
    match count >= LANES {
        true => !0,
        false => ((1u32 << count) - 1) as __mmask16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dense::kernel_check::{check, values};
    use crate::engine::stats::SplitMix64;

    /// Edges of tiles in rows and columns (1–3 beyond whole tiles), `k` not a multiple of 16, `k`
    /// of 0 and 1, strided operands, overwriting and adding to `out`.
    #[test]
    fn equals_the_plain_triple_loop() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: the kernel is not used here, and not tested");
            return;
        }
        let mut rng = SplitMix64::new(5);
        for (m, k, n) in [(1, 1, 1), (4, 16, 4), (5, 3, 9), (7, 0, 5), (9, 17, 33), (64, 40, 23), (13, 576, 48), (2, 31, 1), (1, 1536, 70)] {
            let (lhs_stride, rhs_stride) = (k + 3, k + 5);
            let lhs = values(m * lhs_stride, &mut rng);
            // n rows of k values, each padded.
            let rhs = values(n * rhs_stride, &mut rng);
            check(m, k, n, &lhs, lhs_stride, |r, c| rhs[c * rhs_stride + r], "by rows", |out, out_stride, accumulate| {
                // SAFETY: checked available above; `out` holds m rows of out_stride ≥ n values.
                unsafe { multiply_by_rows(out.as_mut_ptr(), out_stride, &lhs, lhs_stride, &rhs, rhs_stride, m, n, k, accumulate) };
            });
        }
    }
}
