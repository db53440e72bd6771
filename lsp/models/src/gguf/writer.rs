//! A small GGUF writer for tests and fixtures: metadata plus tensor infos, with the tensor data
//! left as zeros.
//!
//! [`GgufWriter::write_to_path`] writes the header and then extends the file to its full length
//! with `File::set_len`, so on file systems with sparse files a header for a multi-gigabyte
//! model costs only the header's bytes on disk. [`GgufWriter::header_bytes`] gives the header
//! alone (up to the start of the data section), handy for truncation tests.
//!
//! ```
//! use hearth_models::gguf::{writer::GgufWriter, GgmlType, GgufFile};
//! let directory = tempfile::tempdir().unwrap();
//! let path = directory.path().join("tiny.gguf");
//! let mut writer = GgufWriter::new();
//! writer
//!     .add_string("general.architecture", "llama")
//!     .add_u32("llama.block_count", 1)
//!     .add_tensor("blk.0.attn_q.weight", &[64, 64], GgmlType::Q8_0);
//! writer.write_to_path(&path).unwrap();
//! let gguf = GgufFile::open(&path).unwrap();
//! assert_eq!(gguf.tensors[0].byte_size, 64 * 64 / 32 * 34);
//! ```

use super::{align_up, GgmlType, GgufValueType, MetadataValue, DEFAULT_ALIGNMENT, GGUF_MAGIC};
use std::io::Write;
use std::path::Path;

/// A tensor to describe in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterTensor {
    pub name: String,
    pub dimensions: Vec<u64>,
    pub ggml_type: GgmlType,
}

/// Sizes of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenGguf {
    pub header_bytes: u64,
    pub data_start: u64,
    pub data_bytes: u64,
    pub file_size: u64,
}

/// Builds a GGUF file. Version 3 and alignment 32 unless changed.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<WriterTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Writes `version` into the header (any number, to test rejection of unknown versions).
    pub fn set_version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Uses `alignment` (a power of two) and records it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> &mut Self {
        self.alignment = u64::from(alignment.max(1));
        self.add_metadata("general.alignment", MetadataValue::U32(alignment))
    }

    pub fn add_metadata(&mut self, key: &str, value: MetadataValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    pub fn add_string(&mut self, key: &str, value: &str) -> &mut Self {
        self.add_metadata(key, MetadataValue::String(value.to_string()))
    }

    pub fn add_u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.add_metadata(key, MetadataValue::U32(value))
    }

    pub fn add_u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.add_metadata(key, MetadataValue::U64(value))
    }

    pub fn add_i32(&mut self, key: &str, value: i32) -> &mut Self {
        self.add_metadata(key, MetadataValue::I32(value))
    }

    pub fn add_f32(&mut self, key: &str, value: f32) -> &mut Self {
        self.add_metadata(key, MetadataValue::F32(value))
    }

    pub fn add_bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.add_metadata(key, MetadataValue::Bool(value))
    }

    pub fn add_string_array<S: AsRef<str>>(&mut self, key: &str, values: &[S]) -> &mut Self {
        let values = values
            .iter()
            .map(|value| MetadataValue::String(value.as_ref().to_string()))
            .collect();
        self.add_metadata(
            key,
            MetadataValue::Array {
                element_type: GgufValueType::String,
                values,
            },
        )
    }

    pub fn add_u32_array(&mut self, key: &str, values: &[u32]) -> &mut Self {
        let values = values.iter().copied().map(MetadataValue::U32).collect();
        self.add_metadata(
            key,
            MetadataValue::Array {
                element_type: GgufValueType::U32,
                values,
            },
        )
    }

    pub fn add_i32_array(&mut self, key: &str, values: &[i32]) -> &mut Self {
        let values = values.iter().copied().map(MetadataValue::I32).collect();
        self.add_metadata(
            key,
            MetadataValue::Array {
                element_type: GgufValueType::I32,
                values,
            },
        )
    }

    /// Describes a tensor; `dimensions[0]` is the row length (ggml order).
    pub fn add_tensor(&mut self, name: &str, dimensions: &[u64], ggml_type: GgmlType) -> &mut Self {
        self.tensors.push(WriterTensor {
            name: name.to_string(),
            dimensions: dimensions.to_vec(),
            ggml_type,
        });
        self
    }

    /// Offsets (relative to the data section) of each tensor, and the data section's size.
    fn tensor_layout(&self) -> (Vec<u64>, u64) {
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut cursor = 0u64;
        for tensor in &self.tensors {
            cursor = align_up(cursor, self.alignment);
            offsets.push(cursor);
            let element_count: u64 = tensor.dimensions.iter().product();
            cursor += tensor.ggml_type.bytes_for_elements(element_count);
        }
        (offsets, cursor)
    }

    /// The header, padded to the start of the data section.
    pub fn header_bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&GGUF_MAGIC);
        bytes.extend_from_slice(&self.version.to_le_bytes());
        bytes.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_string(&mut bytes, key);
            bytes.extend_from_slice(&value.value_type().id().to_le_bytes());
            write_value(&mut bytes, value)?;
        }
        let (offsets, _) = self.tensor_layout();
        for (tensor, offset) in self.tensors.iter().zip(offsets) {
            write_string(&mut bytes, &tensor.name);
            bytes.extend_from_slice(&(tensor.dimensions.len() as u32).to_le_bytes());
            for dimension in &tensor.dimensions {
                bytes.extend_from_slice(&dimension.to_le_bytes());
            }
            bytes.extend_from_slice(&tensor.ggml_type.id().to_le_bytes());
            bytes.extend_from_slice(&offset.to_le_bytes());
        }
        let padded_length = align_up(bytes.len() as u64, self.alignment);
        bytes.resize(padded_length as usize, 0);
        Ok(bytes)
    }

    /// Writes the header and zero-filled (sparse where possible) tensor data to `path`.
    pub fn write_to_path(&self, path: impl AsRef<Path>) -> std::io::Result<WrittenGguf> {
        let header = self.header_bytes()?;
        let (_, data_bytes) = self.tensor_layout();
        let mut file = std::fs::File::create(path)?;
        file.write_all(&header)?;
        let data_start = header.len() as u64;
        let file_size = data_start + data_bytes;
        file.set_len(file_size)?;
        file.flush()?;
        Ok(WrittenGguf {
            header_bytes: data_start,
            data_start,
            data_bytes,
            file_size,
        })
    }
}

fn write_string(bytes: &mut Vec<u8>, text: &str) {
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
}

fn write_value(bytes: &mut Vec<u8>, value: &MetadataValue) -> std::io::Result<()> {
    match value {
        MetadataValue::U8(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::I8(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::U16(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::I16(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::U32(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::I32(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::F32(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::U64(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::I64(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::F64(value) => bytes.extend_from_slice(&value.to_le_bytes()),
        MetadataValue::Bool(value) => bytes.push(u8::from(*value)),
        MetadataValue::String(text) => write_string(bytes, text),
        MetadataValue::Array { element_type, values } => {
            bytes.extend_from_slice(&element_type.id().to_le_bytes());
            bytes.extend_from_slice(&(values.len() as u64).to_le_bytes());
            for element in values {
                if element.value_type() != *element_type {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "array of {element_type:?} holds a {:?} element",
                            element.value_type()
                        ),
                    ));
                }
                write_value(bytes, element)?;
            }
        }
        MetadataValue::LazyArray(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a lazy array read from another file cannot be written; load it first",
            ))
        }
    }
    Ok(())
}
