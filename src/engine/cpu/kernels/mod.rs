//! The matrix kernels the ops call, and the one place that says which runs on this target.

use crate::engine::model::weights::WeightStorage;

/// How to keep weights decoded for these kernels: as panels where the CPU has the AVX-512
/// kernels that read them (a third faster natively), else row-major.
pub fn decoded_storage() -> WeightStorage {
    #[cfg(target_arch = "x86_64")]
    if avx512_matmul::available() {
        return WeightStorage::Panels;
    }
    WeightStorage::Decoded
}

// The CLI's matrix kernels on CPUs with AVX-512 (chosen at run time; gemm elsewhere).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_matmul;
pub(crate) mod dense;
pub(crate) mod lanes;
// The page's matrix kernel; natively only its tests (gemm computes there).
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) mod panel_matmul;
