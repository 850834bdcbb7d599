//! Four f32 lanes: wasm's `v128` in the page (simd128), plain arrays elsewhere, so that code
//! written on them (the page's matrix kernel, the SwiGLU activation) is tested natively. V8 does
//! not vectorise scalar loops, so the page's hot elementwise code is written on these.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    pub type Lanes = v128;

    #[inline(always)]
    pub fn splat(value: f32) -> Lanes {
        f32x4_splat(value)
    }

    /// # Safety
    /// Four values from `at` are readable (any alignment).
    #[inline(always)]
    pub unsafe fn load(at: *const f32) -> Lanes {
        v128_load(at.cast())
    }

    /// # Safety
    /// Four values from `at` are writable (any alignment).
    #[inline(always)]
    pub unsafe fn store(at: *mut f32, value: Lanes) {
        v128_store(at.cast(), value)
    }

    /// `a · b + sum`, fused where the build has relaxed SIMD (a browser may then round once or
    /// twice, both within f32's accuracy).
    #[inline(always)]
    pub fn mul_add(a: Lanes, b: Lanes, sum: Lanes) -> Lanes {
        #[cfg(target_feature = "relaxed-simd")]
        return f32x4_relaxed_madd(a, b, sum);
        #[cfg(not(target_feature = "relaxed-simd"))]
        return f32x4_add(f32x4_mul(a, b), sum);
    }

    #[inline(always)]
    pub fn add(a: Lanes, b: Lanes) -> Lanes {
        f32x4_add(a, b)
    }

    #[inline(always)]
    pub fn sub(a: Lanes, b: Lanes) -> Lanes {
        f32x4_sub(a, b)
    }

    #[inline(always)]
    pub fn mul(a: Lanes, b: Lanes) -> Lanes {
        f32x4_mul(a, b)
    }

    #[inline(always)]
    pub fn div(a: Lanes, b: Lanes) -> Lanes {
        f32x4_div(a, b)
    }

    /// `value` kept within `low..=high`.
    #[inline(always)]
    pub fn clamp(value: Lanes, low: f32, high: f32) -> Lanes {
        f32x4_min(f32x4_max(value, f32x4_splat(low)), f32x4_splat(high))
    }

    /// Rounded to the nearest integer, ties to even.
    #[inline(always)]
    pub fn nearest(value: Lanes) -> Lanes {
        f32x4_nearest(value)
    }

    /// `2^n` for integers `n` in −126..=127 (as floats): `n + 127` in the exponent's bits.
    #[inline(always)]
    pub fn pow2(n: Lanes) -> Lanes {
        i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23)
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    pub type Lanes = [f32; 4];

    fn each(a: Lanes, f: impl Fn(f32) -> f32) -> Lanes {
        a.map(f)
    }

    fn pairs(a: Lanes, b: Lanes, f: impl Fn(f32, f32) -> f32) -> Lanes {
        std::array::from_fn(|i| f(a[i], b[i]))
    }

    pub fn splat(value: f32) -> Lanes {
        [value; 4]
    }

    /// # Safety
    /// Four values from `at` are readable.
    pub unsafe fn load(at: *const f32) -> Lanes {
        std::ptr::read_unaligned(at.cast())
    }

    /// # Safety
    /// Four values from `at` are writable.
    pub unsafe fn store(at: *mut f32, value: Lanes) {
        std::ptr::write_unaligned(at.cast(), value)
    }

    /// Natively only the page's matrix kernel's tests use it.
    #[cfg(test)]
    pub fn mul_add(a: Lanes, b: Lanes, sum: Lanes) -> Lanes {
        std::array::from_fn(|i| a[i] * b[i] + sum[i])
    }

    pub fn add(a: Lanes, b: Lanes) -> Lanes {
        pairs(a, b, |x, y| x + y)
    }

    pub fn sub(a: Lanes, b: Lanes) -> Lanes {
        pairs(a, b, |x, y| x - y)
    }

    pub fn mul(a: Lanes, b: Lanes) -> Lanes {
        pairs(a, b, |x, y| x * y)
    }

    pub fn div(a: Lanes, b: Lanes) -> Lanes {
        pairs(a, b, |x, y| x / y)
    }

    pub fn clamp(value: Lanes, low: f32, high: f32) -> Lanes {
        each(value, |x| x.max(low).min(high))
    }

    /// Rounded to the nearest integer, ties to even, for |value| < 2²² (`exp`'s arguments):
    /// adding 1.5·2²³ leaves no fraction bits, so the addition itself rounds (to even, the
    /// default mode), and it vectorises. `round_ties_even` calls libm's `rintf` per value on
    /// x86-64 without SSE4.1: 4.5 % of the CLI's saliency time.
    pub fn nearest(value: Lanes) -> Lanes {
        const SHIFT: f32 = 12_582_912.0;
        each(value, |x| (x + SHIFT) - SHIFT)
    }

    pub fn pow2(n: Lanes) -> Lanes {
        each(n, |n| f32::from_bits(((n as i32 + 127) as u32) << 23))
    }
}

pub use imp::*;

pub fn zero() -> Lanes {
    splat(0.0)
}

/// The first four values of `values`.
#[inline(always)]
pub fn read(values: &[f32]) -> Lanes {
    assert!(values.len() >= 4, "lanes: fewer than four values to read");
    // SAFETY: just checked.
    unsafe { load(values.as_ptr()) }
}

/// Writes `value` to the first four places of `values`.
#[inline(always)]
pub fn write(values: &mut [f32], value: Lanes) {
    assert!(values.len() >= 4, "lanes: fewer than four places to write");
    // SAFETY: just checked.
    unsafe { store(values.as_mut_ptr(), value) }
}

/// `e^x` within about 2 ulp for `x` in −87..=88, and `e^−87` or `e^88` beyond (Cephes'
/// single-precision method: `x = n·ln 2 + r` with `|r| ≤ ½ ln 2`, a degree-7 polynomial in `r`,
/// times `2^n`). libm's scalar `expf` was 5 % of the page's time, and serial.
#[inline(always)]
pub fn exp(x: Lanes) -> Lanes {
    // ln 2 in two parts: n · LN2_HIGH is exact for the n that occur.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    const TERMS: [f32; 6] =
        [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
    let x = clamp(x, -87.0, 88.0);
    let n = nearest(mul(x, splat(std::f32::consts::LOG2_E)));
    let r = sub(sub(x, mul(n, splat(LN2_HIGH))), mul(n, splat(LN2_LOW)));
    let p = TERMS[1..].iter().fold(splat(TERMS[0]), |p, &term| add(mul(p, r), splat(term)));
    let e_r = add(add(mul(mul(p, r), r), r), splat(1.0));
    mul(e_r, pow2(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp_of(x: f32) -> f32 {
        let mut out = [0.0; 4];
        write(&mut out, exp(splat(x)));
        out[0]
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_true_value() {
        let mut worst = 0.0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let (got, want) = (exp_of(x) as f64, (x as f64).exp());
            // The spacing of f32 values at the true value.
            let near = want as f32;
            let ulp = (f32::from_bits(near.to_bits() + 1) - near) as f64;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn nearest_rounds_ties_to_even() {
        for i in -400_000..=400_000 {
            // Quarters up to ±100 000, every tie among them, and values just beside the ties.
            for x in [i as f32 / 4.0, i as f32 / 4.0 + 1e-3, (i as f32 / 4.0).next_down()] {
                let mut out = [0.0; 4];
                write(&mut out, nearest(splat(x)));
                assert_eq!(out[0], x.round_ties_even(), "nearest({x})");
            }
        }
    }

    #[test]
    fn exp_saturates_beyond_its_range() {
        assert_eq!(exp_of(-1000.0), exp_of(-87.0));
        assert_eq!(exp_of(1000.0), exp_of(88.0));
        assert!(exp_of(88.0).is_finite() && exp_of(-87.0) > 0.0);
        assert_eq!(exp_of(0.0), 1.0);
    }
}
