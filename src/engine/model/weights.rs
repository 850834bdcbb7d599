//! Quantized weight matrices. In the page they stay quantized: they borrow their bytes from the
//! model file and are dequantized a block of rows at a time, only while a product needs them. The
//! CLI decodes them once, at load ([`WeightStorage::Decoded`]), into the panels its AVX-512
//! kernels read where the CPU has them.

use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
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

/// Rows per panel of the AVX-512 kernels' layout (`avx512_matmul`): panel `p` holds rows
/// `16p..16p + 16` column by column, value `(r, c)` at `((r / 16) · cols + c) · 16 + r % 16`, and
/// the last panel's missing rows are zeros. Row groups and the blocks of a product start at a
/// multiple of it, so that each block is whole panels.
pub const PANEL: usize = 16;

/// The length of `rows × cols` values as panels (rows rounded up to whole panels).
pub fn packed_len(rows: usize, cols: usize) -> usize {
    rows.div_ceil(PANEL) * PANEL * cols
}

/// `rows × cols` row-major values packed into `out` (`packed_len(rows, cols)` values).
pub fn pack_into(values: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    assert!(
        values.len() == rows * cols && out.len() == packed_len(rows, cols),
        "weights: pack sizes"
    );
    if cols == 0 {
        return;
    }
    for (p, panel) in out.chunks_exact_mut(PANEL * cols).enumerate() {
        for (lane, row) in values.chunks_exact(cols).skip(p * PANEL).take(PANEL).enumerate() {
            for (c, &value) in row.iter().enumerate() {
                panel[c * PANEL + lane] = value;
            }
        }
        // The last panel's missing rows are zeros, whatever `out` held.
        for lane in rows.saturating_sub(p * PANEL).min(PANEL)..PANEL {
            for c in 0..cols {
                panel[c * PANEL + lane] = 0.0;
            }
        }
    }
}

/// `rows × cols` row-major values as panels.
pub fn pack(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; packed_len(rows, cols)];
    pack_into(values, rows, cols, &mut out);
    out
}

/// Rows `range` of a matrix of `cols` columns packed in `panels`, row-major.
pub fn unpack(panels: &[f32], cols: usize, range: Range<usize>) -> Vec<f32> {
    let mut out = Vec::with_capacity(range.len() * cols);
    for r in range {
        let panel = &panels[r / PANEL * PANEL * cols..][..PANEL * cols];
        out.extend((0..cols).map(|c| panel[c * PANEL + r % PANEL]));
    }
    out
}

/// Dequantize at most this many f32 bytes at once (bounds memory for the vocabulary matrix).
const DEQUANTIZE_CHUNK_BYTES: usize = 16 << 20;

/// How a model keeps its weight matrices between products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightStorage {
    /// In the file's encoding only, each product decoding the rows it needs, a group at a time:
    /// the least memory (the page).
    #[default]
    Encoded,
    /// Decoded to f32 once, at load, and kept instead of the file's bytes: no product decodes
    /// anything (a gradient decoded every weight twice), for 4 bytes per weight (the default
    /// model: 0.54 GB, against its 98 MB file). Natively memory is plentiful.
    Decoded,
    /// Decoded like `Decoded`, kept as panels ([`PANEL`]): the layout the CPU's AVX-512 kernels
    /// read (the CLI chooses it where the CPU has them).
    Panels,
}

impl WeightStorage {
    pub const ALL: [Self; 3] = [Self::Encoded, Self::Decoded, Self::Panels];

    pub fn name(self) -> &'static str {
        match self {
            Self::Encoded => "encoded",
            Self::Decoded => "decoded",
            Self::Panels => "panels",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A 2-D GGUF tensor, `rows × cols` (for a projection: out × in), in the file's own encoding, or
/// with [`WeightStorage::Decoded`] as f32 values.
#[derive(Clone)]
pub struct QuantizedMatrix {
    values: Values,
    rows: usize,
    cols: usize,
}

#[derive(Clone)]
enum Values {
    /// Decoded a block of rows at a time.
    Encoded(Encoded),
    /// All `rows × cols` values, row-major. The file's bytes are not held: once every matrix is
    /// decoded, the model no longer keeps the file.
    Decoded(Arc<Vec<f32>>),
    /// All values as panels ([`PANEL`]): `Decoded` where the CPU runs the kernels that read them.
    Panels(Arc<Vec<f32>>),
}

impl QuantizedMatrix {
    pub fn new(
        file: Arc<Vec<u8>>,
        start: usize,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        // No model has an empty weight, and sizes derived from one (a zero width) divide by zero.
        if rows == 0 || cols == 0 {
            return Err(EngineError::CorruptGguf(format!(
                "a tensor of {rows} × {cols} values is empty"
            )));
        }
        if !cols.is_multiple_of(dtype.block_size()) {
            return Err(EngineError::CorruptGguf(format!(
                "a row of {cols} values does not fill whole {dtype:?} blocks"
            )));
        }
        // Checked: the sizes come from the file, and a wrapped product would pass the bound.
        let row_bytes = (cols / dtype.block_size()).checked_mul(dtype.type_size());
        let end = row_bytes.and_then(|r| rows.checked_mul(r)).and_then(|n| n.checked_add(start));
        match end {
            Some(end) if end <= file.len() => {
                Ok(Self { values: Values::Encoded(Encoded { file, start, dtype }), rows, cols })
            }
            _ => Err(EngineError::CorruptGguf("a tensor reaches past the end of the file".into())),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The matrix's bytes as the file encodes them, and the encoding; `None` once decoded.
    pub fn encoded_bytes(&self) -> Option<(&[u8], GgmlDType)> {
        let Values::Encoded(encoded) = &self.values else { return None };
        let row_bytes = self.cols / encoded.dtype.block_size() * encoded.dtype.type_size();
        Some((&encoded.file[encoded.start..encoded.start + self.rows * row_bytes], encoded.dtype))
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// This matrix as `storage` says: decoded, every row now (a row group at a time on each
    /// thread, straight into the kept values), row-major or as panels.
    pub fn stored(self, storage: WeightStorage) -> Result<Self> {
        let Values::Encoded(encoded) = &self.values else { return Ok(self) };
        let panels = match storage {
            WeightStorage::Encoded => return Ok(self),
            WeightStorage::Decoded => false,
            WeightStorage::Panels => true,
        };
        // Blocks of whole panels: a block's panels are the values from its first row's on.
        let stored_len =
            |rows: usize| if panels { packed_len(rows, self.cols) } else { rows * self.cols };
        let mut values = vec![0.0; stored_len(self.rows)];
        let mut rest = values.as_mut_slice();
        let mut blocks = Vec::new();
        for rows in
            self.row_groups().flat_map(|group| parallel::split(group, parallel::threads(), PANEL))
        {
            let (out, tail) = std::mem::take(&mut rest)
                .split_at_mut(stored_len(rows.end) - rows.start * self.cols);
            blocks.push((rows, out));
            rest = tail;
        }
        // Decoding at load is not part of any run: nothing stops it.
        let decoded =
            parallel::map(&StopToken::new(), blocks, |(rows, out): (Range<usize>, &mut [f32])| {
                let values = encoded.decode(rows.clone(), self.cols)?;
                match panels {
                    true => pack_into(&values, rows.len(), self.cols, out),
                    false => out.copy_from_slice(&values),
                }
                Ok(())
            });
        decoded.map_err(|_| EngineError::Stopped)?.into_iter().collect::<Result<()>>()?;
        let values = Arc::new(values);
        Ok(Self {
            values: if panels { Values::Panels(values) } else { Values::Decoded(values) },
            ..self
        })
    }

    /// Rows `range` as a dense `(len, cols)` tensor of `dtype`.
    pub fn dequantize_rows(&self, range: Range<usize>, dtype: DType) -> Result<Tensor> {
        let rows = range.len();
        Ok(Tensor::from_vec(
            self.dequantize_rows_f32(range)?.into_owned(),
            (rows, self.cols),
            &Device::Cpu,
        )?
        .to_dtype(dtype)?)
    }

    /// Rows `range`, row-major: `len × cols` values, borrowed when the matrix is kept decoded.
    pub fn dequantize_rows_f32(&self, range: Range<usize>) -> Result<Cow<'_, [f32]>> {
        assert!(range.start <= range.end && range.end <= self.rows, "row range out of bounds");
        match &self.values {
            Values::Decoded(values) => {
                Ok(Cow::Borrowed(&values[range.start * self.cols..range.end * self.cols]))
            }
            Values::Panels(values) => Ok(Cow::Owned(unpack(values, self.cols, range))),
            Values::Encoded(encoded) => Ok(Cow::Owned(encoded.decode(range, self.cols)?)),
        }
    }

    /// Rows `range` (from a multiple of [`PANEL`]) as panels: borrowed when the matrix is kept
    /// so, else decoded (or borrowed) and packed. The last panel's lanes past `range` hold zeros
    /// or, borrowed, the rows that follow; the kernels read only `range.len()` rows.
    pub fn panels(&self, range: Range<usize>) -> Result<Cow<'_, [f32]>> {
        assert!(
            range.start.is_multiple_of(PANEL) && range.start <= range.end && range.end <= self.rows,
            "panel rows out of bounds"
        );
        match &self.values {
            Values::Panels(values) => Ok(Cow::Borrowed(
                &values[range.start * self.cols..packed_len(range.end, self.cols)],
            )),
            _ => Ok(Cow::Owned(pack(
                &self.dequantize_rows_f32(range.clone())?,
                range.len(),
                self.cols,
            ))),
        }
    }

    /// Consecutive row ranges, each at most [`DEQUANTIZE_CHUNK_BYTES`] once dequantized (at least
    /// one panel's rows) and starting at a multiple of [`PANEL`], covering the matrix: a product
    /// dequantizes one group at a time.
    pub fn row_groups(&self) -> impl Iterator<Item = Range<usize>> {
        let per_group = (DEQUANTIZE_CHUNK_BYTES / (self.cols * 4) / PANEL).max(1) * PANEL;
        let rows = self.rows;
        (0..rows).step_by(per_group).map(move |start| start..(start + per_group).min(rows))
    }

    /// The given rows stacked, `(ids.len(), cols)`: an embedding look-up.
    pub fn gather_rows(&self, ids: &[u32], dtype: DType) -> Result<Tensor> {
        let rows = ids
            .iter()
            .map(|&id| {
                let id = id as usize;
                if id >= self.rows {
                    return Err(EngineError::InvalidRequest(format!(
                        "token id {id} is outside the vocabulary"
                    )));
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

/// A matrix's values where the file holds them: from byte `start`, in `dtype`.
#[derive(Clone)]
struct Encoded {
    file: Arc<Vec<u8>>,
    start: usize,
    dtype: GgmlDType,
}

impl Encoded {
    /// Rows `range` of `cols` values each, decoded.
    fn decode(&self, range: Range<usize>, cols: usize) -> Result<Vec<f32>> {
        let row_bytes = cols / self.dtype.block_size() * self.dtype.type_size();
        let bytes =
            &self.file[self.start + range.start * row_bytes..self.start + range.end * row_bytes];
        if let Some(values) = decode_common_blocks(self.dtype, bytes) {
            return Ok(values);
        }
        let mut scratch = Vec::new();
        let storage = QStorage::from_data(
            Cow::Borrowed(aligned(bytes, &mut scratch)),
            &Device::Cpu,
            self.dtype,
        )?;
        let dense = QTensor::new(storage, (range.len(), cols))?.dequantize(&Device::Cpu)?;
        Ok(dense.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
    }
}

/// The encodings of most small models' weights, decoded here rather than by candle: straight into
/// an uninitialised buffer (candle zeroes one first), in loops over whole blocks that the compiler
/// vectorises (simd128 in the page, AVX2 natively). Each value is computed with the same
/// operations in the same order as candle's `to_float`, so the results are bit for bit the same.
/// `None` for any other encoding.
fn decode_common_blocks(dtype: GgmlDType, bytes: &[u8]) -> Option<Vec<f32>> {
    let scale =
        |block: &[u8], at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
    let decode = |block_bytes: usize, decode_block: &dyn Fn(&[u8], &mut [f32; 32])| {
        let mut values = Vec::with_capacity(bytes.len() / block_bytes * 32);
        let mut block_values = [0f32; 32];
        for block in bytes.chunks_exact(block_bytes) {
            decode_block(block, &mut block_values);
            values.extend_from_slice(&block_values);
        }
        values
    };
    match dtype {
        // f16 scale, then 32 signed bytes.
        GgmlDType::Q8_0 => Some(decode(34, &|block, out| {
            let d = scale(block, 0);
            for (o, &q) in out.iter_mut().zip(&block[2..34]) {
                *o = q as i8 as f32 * d;
            }
        })),
        // f16 scale, then 16 bytes of two 4-bit values offset by 8: low nibbles are values 0–15,
        // high nibbles 16–31.
        GgmlDType::Q4_0 => Some(decode(18, &|block, out| {
            let d = scale(block, 0);
            let (low, high) = out.split_at_mut(16);
            for ((l, h), &q) in low.iter_mut().zip(high.iter_mut()).zip(&block[2..18]) {
                *l = ((q & 0x0F) as i16 - 8) as f32 * d;
                *h = ((q >> 4) as i16 - 8) as f32 * d;
            }
        })),
        // f16 scale and f16 minimum, then nibbles as in Q4_0 without the offset.
        GgmlDType::Q4_1 => Some(decode(20, &|block, out| {
            let (d, m) = (scale(block, 0), scale(block, 2));
            let (low, high) = out.split_at_mut(16);
            for ((l, h), &q) in low.iter_mut().zip(high.iter_mut()).zip(&block[4..20]) {
                *l = (q & 0x0F) as f32 * d + m;
                *h = (q >> 4) as f32 * d + m;
            }
        })),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime::random::SplitMix64;

    /// Kept row-major (a CPU without the panel kernels), as panels, or encoded, a matrix gives
    /// the same rows, panels and embedding rows.
    #[test]
    fn every_storage_gives_the_same_values() {
        let (rows, cols) = (37, 8);
        let w: Vec<f32> = (0..rows * cols).map(|i| i as f32 / 7.0 - 20.0).collect();
        let bytes = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let encoded = QuantizedMatrix::new(Arc::new(bytes), 0, GgmlDType::F32, rows, cols).unwrap();
        let kept = |values: Values| QuantizedMatrix { values, ..encoded.clone() };
        let storages = [
            encoded.clone(),
            kept(Values::Decoded(Arc::new(w.clone()))),
            kept(Values::Panels(Arc::new(pack(&w, rows, cols)))),
        ];
        for matrix in &storages {
            for range in [0..rows, 5..21, 36..37] {
                assert_eq!(
                    *matrix.dequantize_rows_f32(range.clone()).unwrap(),
                    w[range.start * cols..range.end * cols]
                );
            }
            for range in [0..rows, 16..37, 32..33] {
                let panels = matrix.panels(range.clone()).unwrap();
                assert_eq!(panels.len(), packed_len(range.len(), cols));
                assert_eq!(
                    unpack(&panels, cols, 0..range.len()),
                    w[range.start * cols..range.end * cols]
                );
            }
            let gathered = matrix
                .gather_rows(&[3, 36, 3], DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(
                gathered,
                [&w[3 * cols..4 * cols], &w[36 * cols..], &w[3 * cols..4 * cols]].concat()
            );
        }
    }

    /// Packing keeps every value where the kernels read it, and the last panel's missing rows
    /// are zeros even in a buffer that held other values.
    #[test]
    fn packing_round_trips() {
        let mut rng = SplitMix64::new(9);
        for (rows, cols) in [(1, 1), (16, 3), (17, 5), (40, 2)] {
            let w: Vec<f32> =
                (0..rows * cols).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect();
            let mut panels = vec![f32::NAN; packed_len(rows, cols)];
            pack_into(&w, rows, cols, &mut panels);
            assert_eq!(panels, pack(&w, rows, cols));
            assert_eq!(unpack(&panels, cols, 0..rows), w);
            assert_eq!(unpack(&panels, cols, 1..rows), w[cols..]);
            for r in 0..rows.div_ceil(PANEL) * PANEL {
                for c in 0..cols {
                    let want = if r < rows { w[r * cols + c] } else { 0.0 };
                    assert_eq!(
                        panels[(r / PANEL * cols + c) * PANEL + r % PANEL],
                        want,
                        "({r}, {c}) of {rows} × {cols}"
                    );
                }
            }
        }
    }

    /// candle's dequantization of `bytes` as `dtype`, the reference for the decoders above.
    fn candle_values(dtype: GgmlDType, bytes: &[u8], values: usize) -> Vec<f32> {
        let mut scratch = Vec::new();
        let storage =
            QStorage::from_data(Cow::Borrowed(aligned(bytes, &mut scratch)), &Device::Cpu, dtype)
                .unwrap();
        let tensor = QTensor::new(storage, (values,)).unwrap().dequantize(&Device::Cpu).unwrap();
        tensor.to_vec1::<f32>().unwrap()
    }

    #[test]
    fn own_decoders_equal_candle_s_bit_for_bit() {
        let mut rng = SplitMix64::new(7);
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1] {
            let blocks = 257;
            let mut bytes: Vec<u8> =
                (0..blocks * dtype.type_size()).map(|_| rng.next_u64() as u8).collect();
            // Scales of every kind, including subnormal, infinite and NaN f16s, and ordinary ones.
            for (b, block) in bytes.chunks_exact_mut(dtype.type_size()).enumerate() {
                if b % 4 != 0 {
                    block[1] = (block[1] & 0x83) | 0x30; // |scale| around 2^-3 .. 2^1
                }
            }
            let ours = decode_common_blocks(dtype, &bytes).unwrap();
            let theirs = candle_values(dtype, &bytes, blocks * 32);
            assert_eq!(ours.len(), theirs.len());
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{dtype:?} value {i}: {a} vs {b}");
            }
        }
        assert!(decode_common_blocks(GgmlDType::Q6K, &[0; 210]).is_none());
    }
}
