//! `multiply_adds(n)`: n rounds of multiply-adds on [`VALUES`] independent values of four f32 lanes,
//! what wasm's 128-bit SIMD can compute at most: `n · flops_per_round()` FLOPs. Built with relaxed
//! SIMD the multiply-add is one fused instruction (as in the page's `threads-relaxed` build),
//! else a multiply and an add (as in its other builds).
#![no_std]

use core::arch::wasm32::*;

/// Independent values: enough to cover the multiply-add's latency on every port that runs it, few
/// enough (with the two operands) for the 16 vector registers V8 allocates on x86-64.
const VALUES: usize = 12;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// `a · b + c`.
#[inline(always)]
fn multiply_add(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    return f32x4_relaxed_madd(a, b, c);
    #[cfg(not(target_feature = "relaxed-simd"))]
    return f32x4_add(f32x4_mul(a, b), c);
}

/// FLOPs of one round of [`multiply_adds`]: a multiply and an add on each lane of each value.
#[no_mangle]
pub extern "C" fn flops_per_round() -> u32 {
    (VALUES * 4 * 2) as u32
}

/// The values after `rounds` rounds, added up, so that none of the work can be left out. `seed`
/// comes from the caller, so none of it can be computed ahead either.
#[no_mangle]
pub extern "C" fn multiply_adds(rounds: u32, seed: f32) -> f32 {
    // Each round multiplies every value and adds to it: the product depends on the value, so the
    // multiplications cannot be moved out of the loop (as `a · b + sum` with constant `a · b` could
    // in the build without fused multiply-adds).
    let (factor, step) = (f32x4_splat(0.999_999), f32x4_splat(seed * 1e-6));
    let mut values = [f32x4_splat(seed); VALUES];
    for _ in 0..rounds {
        for value in values.iter_mut() {
            *value = multiply_add(*value, factor, step);
        }
    }
    let total = values.iter().fold(f32x4_splat(0.0), |total, &value| f32x4_add(total, value));
    f32x4_extract_lane::<0>(total) + f32x4_extract_lane::<1>(total) + f32x4_extract_lane::<2>(total) + f32x4_extract_lane::<3>(total)
}
