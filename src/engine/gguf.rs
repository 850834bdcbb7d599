//! Reading a GGUF file from bytes: metadata look-ups with clear errors, and quantized tensors.
//! candle's reader does the parsing (with bounds checks on every length field); this module
//! turns its errors into ones a user can act on.

use super::error::{EngineError, Result};
use super::weights::QuantizedMatrix;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Tensor};
use std::io::Cursor;
use std::sync::Arc;

pub struct GgufFile {
    content: Content,
    file: Arc<Vec<u8>>,
}

impl GgufFile {
    pub fn parse(file: Arc<Vec<u8>>) -> Result<Self> {
        if file.len() < 4 || &file[..4] != b"GGUF" {
            return Err(EngineError::NotGguf { first_bytes: describe_start(&file) });
        }
        let content = Content::read(&mut Cursor::new(file.as_slice()))
            .map_err(|e| EngineError::CorruptGguf(e.to_string()))?;
        Ok(Self { content, file })
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
        if self.get(key).is_some() { self.usize(key) } else { Ok(default) }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.require(key)? {
            Value::F32(v) => Ok(*v as f64),
            Value::F64(v) => Ok(*v),
            _ => Err(wrong_type(key, "a float")),
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        if self.get(key).is_some() { self.f64(key) } else { Ok(default) }
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

    /// A 2-D tensor, `rows × cols` in candle's order (for a projection: out × in), kept quantized.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QuantizedMatrix> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| EngineError::MissingTensor(name.to_string()))?;
        let found = info.shape.dims();
        let expected = if found.len() == 1 { vec![cols] } else { vec![rows, cols] };
        if found != expected.as_slice() {
            return Err(EngineError::BadTensorShape { name: name.to_string(), expected, found: found.to_vec() });
        }
        let start = usize::try_from(self.content.tensor_data_offset.saturating_add(info.offset))
            .map_err(|_| EngineError::CorruptGguf(format!("tensor {name} starts past the end of the file")))?;
        QuantizedMatrix::new(self.file.clone(), start, info.ggml_dtype, rows, cols)
            .map_err(|e| EngineError::CorruptGguf(format!("tensor {name}: {e}")))
    }

    /// A 1-D tensor (norm weights, biases) as a dense `(len,)` tensor.
    pub fn vector(&self, name: &str, len: usize, dtype: DType) -> Result<Tensor> {
        Ok(self.matrix(name, 1, len)?.dequantize(dtype)?.reshape(len)?)
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
