//! Reading a GGUF file from bytes: metadata look-ups with clear errors, and quantized tensors.
//! candle's reader does the parsing (with bounds checks on every length field); this module
//! turns its errors into ones a user can act on.

use crate::engine::error::{EngineError, Result};
use crate::engine::model::weights::{
    encoding_name, is_supported_encoding, QuantizedMatrix, WeightStorage, SUPPORTED_ENCODINGS,
};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Tensor};
use std::io::Cursor;
use std::sync::Arc;

pub struct GgufFile {
    content: Content,
    file: Arc<Vec<u8>>,
    /// How the matrices handed out keep their values.
    storage: WeightStorage,
}

impl GgufFile {
    pub fn parse(file: Arc<Vec<u8>>) -> Result<Self> {
        if file.len() < 4 || &file[..4] != b"GGUF" {
            return Err(EngineError::NotGguf { first_bytes: describe_start(&file) });
        }
        if let Some((tensor, type_id)) = first_unsupported_tensor(&file) {
            return Err(EngineError::UnsupportedEncoding {
                tensor,
                encoding: encoding_name(type_id),
                supported: SUPPORTED_ENCODINGS.iter().map(|(_, name)| *name).collect(),
            });
        }
        if let Some(alignment) = unusable_alignment(&file) {
            return Err(EngineError::CorruptGguf(format!(
                "its general.alignment is {alignment}, not a power of two"
            )));
        }
        let content = Content::read(&mut Cursor::new(file.as_slice()))
            .map_err(|e| EngineError::CorruptGguf(without_backtrace(e)))?;
        Ok(Self { content, file, storage: WeightStorage::Encoded })
    }

    /// The matrices handed out from now on are kept as `storage` says.
    pub fn with_weight_storage(self, storage: WeightStorage) -> Self {
        Self { storage, ..self }
    }

    pub fn architecture(&self) -> Result<String> {
        self.string("general.architecture")
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| EngineError::MissingMetadata(key.to_string()))
    }

    pub fn string(&self, key: &str) -> Result<String> {
        self.require(key)?.to_string().cloned().map_err(|_| wrong_type(key, "a string"))
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        let value = self.require(key)?;
        let n = match value {
            Value::U8(v) => *v as u64,
            Value::U16(v) => *v as u64,
            Value::U32(v) => *v as u64,
            Value::U64(v) => *v,
            Value::I8(v) if *v >= 0 => *v as u64,
            Value::I16(v) if *v >= 0 => *v as u64,
            Value::I32(v) if *v >= 0 => *v as u64,
            Value::I64(v) if *v >= 0 => *v as u64,
            _ => return Err(wrong_type(key, "a non-negative integer")),
        };
        usize::try_from(n).map_err(|_| wrong_type(key, "an integer that fits in memory"))
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.get(key).is_some() {
            self.usize(key)
        } else {
            Ok(default)
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.require(key)? {
            Value::F32(v) => Ok(*v as f64),
            Value::F64(v) => Ok(*v),
            _ => Err(wrong_type(key, "a float")),
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        if self.get(key).is_some() {
            self.f64(key)
        } else {
            Ok(default)
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.to_bool().map_err(|_| wrong_type(key, "a boolean")),
        }
    }

    pub fn array(&self, key: &str) -> Result<&Vec<Value>> {
        self.require(key)?.to_vec().map_err(|_| wrong_type(key, "an array"))
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// A 2-D tensor, `rows × cols` in candle's order (for a projection: out × in), kept quantized
    /// (or, with [`WeightStorage::Decoded`], decoded).
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QuantizedMatrix> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| EngineError::MissingTensor(name.to_string()))?;
        let found = info.shape.dims();
        let expected = if found.len() == 1 { vec![cols] } else { vec![rows, cols] };
        if found != expected.as_slice() {
            return Err(EngineError::BadTensorShape {
                name: name.to_string(),
                expected,
                found: found.to_vec(),
            });
        }
        let start = usize::try_from(self.content.tensor_data_offset.saturating_add(info.offset))
            .map_err(|_| {
                EngineError::CorruptGguf(format!("tensor {name} starts past the end of the file"))
            })?;
        QuantizedMatrix::new(self.file.clone(), start, info.ggml_dtype, rows, cols)
            .map_err(|e| EngineError::CorruptGguf(format!("tensor {name}: {e}")))?
            .stored(self.storage)
    }

    /// A 1-D tensor (norm weights, biases) as a dense `(len,)` tensor.
    pub fn vector(&self, name: &str, len: usize, dtype: DType) -> Result<Tensor> {
        Ok(self.matrix(name, 1, len)?.dequantize(dtype)?.reshape(len)?)
    }
}

/// The first tensor whose encoding the engine cannot decode, with its ggml type id. This walks
/// the header itself because candle's reader stops at the first type id it does not know without
/// naming the tensor. `None` also when the header cannot be walked: candle's reader then reports
/// the damage.
fn first_unsupported_tensor(bytes: &[u8]) -> Option<(String, u32)> {
    let mut header = HeaderCursor { bytes, at: 4 };
    let version = header.u32()?;
    let tensors = header.length(version)?;
    let entries = header.length(version)?;
    for _ in 0..entries {
        header.string(version)?;
        let value_type = header.u32()?;
        header.skip_value(value_type, version, 0)?;
    }
    for _ in 0..tensors {
        let name = header.string(version)?;
        let dims = header.u32()? as usize;
        header.skip(dims.checked_mul(if version == 1 { 4 } else { 8 })?)?;
        let type_id = header.u32()?;
        header.skip(8)?; // data offset
        if !is_supported_encoding(type_id) {
            return Some((String::from_utf8_lossy(name).into_owned(), type_id));
        }
    }
    None
}

/// A `general.alignment` that is not a power of two: llama.cpp refuses those, and candle's reader
/// divides by it, so 0 panics there. Every entry is checked, as candle keeps the last. `None` also
/// when the metadata cannot be walked: candle's reader then reports the damage.
fn unusable_alignment(bytes: &[u8]) -> Option<u64> {
    let mut header = HeaderCursor { bytes, at: 4 };
    let version = header.u32()?;
    header.length(version)?; // tensor count
    let entries = header.length(version)?;
    for _ in 0..entries {
        let key = header.string(version)?;
        let value_type = header.u32()?;
        // Integers (u8 … i32, u64, i64), read as unsigned: a negative one is no power of two.
        if key == b"general.alignment" && matches!(value_type, 0..=5 | 10 | 11) {
            let le_bytes = header.take(fixed_value_size(value_type)?)?;
            let alignment =
                le_bytes.iter().rev().fold(0u64, |value, byte| value << 8 | *byte as u64);
            if !alignment.is_power_of_two() {
                return Some(alignment);
            }
        } else {
            header.skip_value(value_type, version, 0)?;
        }
    }
    None
}

/// Reads a GGUF header forwards, bounds-checked: every read past the end gives `None`.
struct HeaderCursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> HeaderCursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len())?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Some(taken)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// Counts and string lengths: 32-bit in GGUF version 1, 64-bit after.
    fn length(&mut self, version: u32) -> Option<usize> {
        match version {
            1 => Some(self.u32()? as usize),
            _ => usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok(),
        }
    }

    fn string(&mut self, version: u32) -> Option<&'a [u8]> {
        let len = self.length(version)?;
        self.take(len)
    }

    /// Skips one metadata value of GGUF value type `value_type`.
    fn skip_value(&mut self, value_type: u32, version: u32, depth: usize) -> Option<()> {
        const STRING: u32 = 8;
        const ARRAY: u32 = 9;
        match value_type {
            STRING => self.string(version).map(|_| ()),
            ARRAY if depth < 4 => {
                let element_type = self.u32()?;
                let len = self.length(version)?;
                match fixed_value_size(element_type) {
                    Some(size) => self.skip(len.checked_mul(size)?),
                    // Each element takes at least one byte, so the loop ends within the file.
                    None => {
                        (0..len).try_for_each(|_| self.skip_value(element_type, version, depth + 1))
                    }
                }
            }
            _ => self.skip(fixed_value_size(value_type)?),
        }
    }
}

/// Bytes of a fixed-size GGUF metadata value type (u8 … f64, bool).
fn fixed_value_size(value_type: u32) -> Option<usize> {
    match value_type {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// candle's message for `e`, without the backtrace candle attaches when `RUST_BACKTRACE` is set:
/// the message is shown to users.
fn without_backtrace(e: candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => inner.to_string(),
        e => e.to_string(),
    }
}

fn wrong_type(key: &str, what: &str) -> EngineError {
    EngineError::CorruptGguf(format!("metadata \"{key}\" is not {what}"))
}

/// A short, printable description of a file's first bytes, for the "not GGUF" message.
fn describe_start(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing (the file is empty)".to_string();
    }
    let head = &bytes[..bytes.len().min(8)];
    if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("\"{}\"", String::from_utf8_lossy(head))
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02X}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}
