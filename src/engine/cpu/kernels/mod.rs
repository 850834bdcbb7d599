//! The matrix kernels the ops call.

// The CLI's matrix kernels on CPUs with AVX-512 (chosen at run time; gemm elsewhere).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_matmul;
pub(crate) mod dense;
pub(crate) mod lanes;
// The page's matrix kernel; natively only its tests (gemm computes there).
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) mod panel_matmul;
