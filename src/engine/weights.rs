//! Quantized weight matrices that stay quantized: they borrow their bytes from the model file and
//! are dequantized a block of rows at a time, only while a product needs them.

use super::error::{EngineError, Result};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

/// The encodings the engine decodes, as ggml type ids (ggml.h) and names. candle dequantizes each,
/// and tests/quant_types.rs checks every one against candle's own dequantization.
pub const SUPPORTED_ENCODINGS: [(u32, &str); 13] = [
    (0, "F32"),
    (1, "F16"),
    (30, "BF16"),
    (8, "Q8_0"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (6, "Q5_0"),
    (7, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K"),
    (12, "Q4_K"),
    (13, "Q5_K"),
    (14, "Q6_K"),
];

/// The other ggml type ids a GGUF may hold, named for the "unsupported encoding" message.
const OTHER_ENCODINGS: [(u32, &str); 19] = [
    (9, "Q8_1"),
    (15, "Q8_K"),
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (34, "TQ1_0"),
    (35, "TQ2_0"),
    (39, "MXFP4"),
];

pub fn is_supported_encoding(type_id: u32) -> bool {
    SUPPORTED_ENCODINGS.iter().any(|(id, _)| *id == type_id)
}

/// ggml's name for a tensor type id.
pub fn encoding_name(type_id: u32) -> String {
    SUPPORTED_ENCODINGS
        .iter()
        .chain(&OTHER_ENCODINGS)
        .find(|(id, _)| *id == type_id)
        .map_or_else(|| format!("ggml type {type_id}"), |(_, name)| name.to_string())
}

/// Dequantize at most this many f32 bytes at once (bounds memory for the vocabulary matrix).
const DEQUANTIZE_CHUNK_BYTES: usize = 16 << 20;

/// A 2-D GGUF tensor, `rows × cols` (for a projection: out × in), in the file's own encoding.
#[derive(Clone)]
pub struct QuantizedMatrix {
    file: Arc<Vec<u8>>,
    start: usize,
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
}

impl QuantizedMatrix {
    pub fn new(file: Arc<Vec<u8>>, start: usize, dtype: GgmlDType, rows: usize, cols: usize) -> Result<Self> {
        let matrix = Self { file, start, dtype, rows, cols };
        // No model has an empty weight, and sizes derived from one (a zero width) divide by zero.
        if rows == 0 || cols == 0 {
            return Err(EngineError::CorruptGguf(format!("a tensor of {rows} × {cols} values is empty")));
        }
        if cols % dtype.block_size() != 0 {
            return Err(EngineError::CorruptGguf(format!(
                "a row of {cols} values does not fill whole {dtype:?} blocks"
            )));
        }
        // Checked: the sizes come from the file, and a wrapped product would pass the bound.
        let row_bytes = (cols / dtype.block_size()).checked_mul(dtype.type_size());
        let end = row_bytes.and_then(|r| rows.checked_mul(r)).and_then(|n| n.checked_add(start));
        match end {
            Some(end) if end <= matrix.file.len() => Ok(matrix),
            _ => Err(EngineError::CorruptGguf("a tensor reaches past the end of the file".into())),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_size() * self.dtype.type_size()
    }

    /// Rows `range` as a dense `(len, cols)` tensor of `dtype`.
    pub fn dequantize_rows(&self, range: Range<usize>, dtype: DType) -> Result<Tensor> {
        assert!(range.start <= range.end && range.end <= self.rows, "row range out of bounds");
        let bytes = &self.file[self.start + range.start * self.row_bytes()..self.start + range.end * self.row_bytes()];
        let mut scratch = Vec::new();
        let storage = QStorage::from_data(Cow::Borrowed(aligned(bytes, &mut scratch)), &Device::Cpu, self.dtype)?;
        let dense = QTensor::new(storage, (range.len(), self.cols))?.dequantize(&Device::Cpu)?;
        Ok(dense.to_dtype(dtype)?)
    }

    /// Row ranges small enough to dequantize at once.
    pub fn row_chunks(&self) -> impl Iterator<Item = Range<usize>> {
        let per_chunk = (DEQUANTIZE_CHUNK_BYTES / (self.cols * 4)).max(1);
        let rows = self.rows;
        (0..rows).step_by(per_chunk).map(move |start| start..(start + per_chunk).min(rows))
    }

    /// The given rows stacked, `(ids.len(), cols)`: an embedding look-up.
    pub fn gather_rows(&self, ids: &[u32], dtype: DType) -> Result<Tensor> {
        let rows = ids
            .iter()
            .map(|&id| {
                let id = id as usize;
                if id >= self.rows {
                    return Err(EngineError::InvalidRequest(format!("token id {id} is outside the vocabulary")));
                }
                self.dequantize_rows(id..id + 1, dtype)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }

    /// The whole matrix, dense. Only for small tensors (norm weights) and tests.
    pub fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        self.dequantize_rows(0..self.rows, dtype)
    }
}

/// Alignment candle needs to read a tensor's bytes as blocks in place (f32 needs 4; 8 covers
/// every block type). It asserts it, so an odd `general.alignment` or tensor offset would panic.
const BLOCK_ALIGN: usize = 8;

/// `bytes`, or a copy of them in `scratch` when they do not start at a `BLOCK_ALIGN` address.
fn aligned<'a>(bytes: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if bytes.as_ptr().align_offset(BLOCK_ALIGN) == 0 {
        return bytes;
    }
    scratch.resize(bytes.len() + BLOCK_ALIGN, 0);
    let at = scratch.as_ptr().align_offset(BLOCK_ALIGN);
    scratch[at..at + bytes.len()].copy_from_slice(bytes);
    &scratch[at..at + bytes.len()]
}
