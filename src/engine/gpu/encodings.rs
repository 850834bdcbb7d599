//! The GGUF encodings the GPU decodes, one WGSL file each (`encodings/`), listed here one line
//! each: a kernel that reads weights joins `common.wgsl` and the encoding's `decode32` before its
//! own code. A matrix in any other encoding is decoded on the CPU and sent as F32.

use candle_core::quantized::GgmlDType;

/// An encoding as the kernels read it.
pub struct Encoding {
    pub dtype: GgmlDType,
    /// The name its kernels are compiled under.
    pub name: &'static str,
    /// Values per block and bytes per block.
    pub block: (usize, usize),
    pub wgsl: &'static str,
}

impl Encoding {
    /// Bytes of a row of `cols` values.
    pub fn row_bytes(&self, cols: usize) -> usize {
        cols.div_ceil(self.block.0) * self.block.1
    }

    /// The encoding's decoder, for a kernel's source.
    pub fn decoder(&self) -> String {
        format!("{}\n{}", include_str!("encodings/common.wgsl"), self.wgsl)
    }
}

const ENCODINGS: &[Encoding] = &[
    Encoding {
        dtype: GgmlDType::F32,
        name: "f32",
        block: (1, 4),
        wgsl: include_str!("encodings/f32.wgsl"),
    },
    Encoding {
        dtype: GgmlDType::F16,
        name: "f16",
        block: (1, 2),
        wgsl: include_str!("encodings/f16.wgsl"),
    },
    Encoding {
        dtype: GgmlDType::Q4_0,
        name: "q4_0",
        block: (32, 18),
        wgsl: include_str!("encodings/q4_0.wgsl"),
    },
    Encoding {
        dtype: GgmlDType::Q4_1,
        name: "q4_1",
        block: (32, 20),
        wgsl: include_str!("encodings/q4_1.wgsl"),
    },
    Encoding {
        dtype: GgmlDType::Q8_0,
        name: "q8_0",
        block: (32, 34),
        wgsl: include_str!("encodings/q8_0.wgsl"),
    },
    Encoding {
        dtype: GgmlDType::Q4K,
        name: "q4_k",
        block: (256, 144),
        wgsl: include_str!("encodings/q4_k.wgsl"),
    },
    Encoding {
        dtype: GgmlDType::Q6K,
        name: "q6_k",
        block: (256, 210),
        wgsl: include_str!("encodings/q6_k.wgsl"),
    },
];

/// How the GPU reads `dtype`, if it decodes it.
pub fn encoding(dtype: GgmlDType) -> Option<&'static Encoding> {
    ENCODINGS.iter().find(|e| e.dtype == dtype)
}

/// F32: what a matrix in an encoding the GPU does not decode is sent as.
pub fn f32() -> &'static Encoding {
    &ENCODINGS[0]
}
