//! The GGUF encodings the GPU decodes, one WGSL file each (`encodings/`), listed here one line
//! each: the kernels join the encoding's `block_dot` before their own code.

use candle_core::quantized::GgmlDType;

/// Encoding → (bytes per block of 32 values, WGSL).
const ENCODINGS: &[(GgmlDType, u32, &str)] = &[
    (GgmlDType::Q4_1, 20, include_str!("encodings/q4_1.wgsl")),
    (GgmlDType::Q8_0, 34, include_str!("encodings/q8_0.wgsl")),
];

/// `dtype`'s block size in bytes and its WGSL, if the GPU decodes it.
pub fn encoding(dtype: GgmlDType) -> Option<(u32, &'static str)> {
    ENCODINGS.iter().find(|(d, _, _)| *d == dtype).map(|(_, bytes, wgsl)| (*bytes, *wgsl))
}
