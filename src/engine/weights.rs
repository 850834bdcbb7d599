//! Quantized weight matrices that stay quantized: they borrow their bytes from the model file and
//! are dequantized a block of rows at a time, only while a product needs them.

use super::error::{EngineError, Result};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

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
        if cols % dtype.block_size() != 0 {
            return Err(EngineError::CorruptGguf(format!(
                "a row of {cols} values does not fill whole {dtype:?} blocks"
            )));
        }
        let end = rows.checked_mul(matrix.row_bytes()).and_then(|n| n.checked_add(start));
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
        let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, self.dtype)?;
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
