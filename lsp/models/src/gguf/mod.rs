//! A GGUF (v2/v3, little-endian) header reader.
//!
//! [`GgufFile::open`] reads the metadata key/values and the tensor infos, never the tensor data.
//! Arrays with more than [`EAGER_ARRAY_LIMIT`] elements (token lists, merges) are skipped while
//! reading and recorded as [`LazyArray`]s; [`GgufFile::array_values`] and
//! [`GgufFile::string_array`] fetch them from the file on demand.
//!
//! Every malformed input gives a [`GgufError`]; counts and lengths are checked against the bytes
//! left in the file before anything is allocated.

mod ggml_type;
pub mod writer;

pub use ggml_type::GgmlType;

use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays up to this many elements are read while opening; longer ones are read on demand.
pub const EAGER_ARRAY_LIMIT: u64 = 1024;
/// ggml tensors have at most four dimensions.
pub const MAX_TENSOR_DIMENSIONS: u32 = 4;
/// Longest string accepted (a chat template or a key is far shorter).
pub const MAX_STRING_BYTES: u64 = 256 * 1024 * 1024;
/// Deepest array nesting accepted (ggml itself writes no nested arrays).
pub const MAX_ARRAY_NESTING: u32 = 4;
/// Most elements accepted in one array (the largest vocabularies have under a million tokens).
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 32;
/// Most metadata entries accepted (real files have tens).
pub const MAX_METADATA_ENTRIES: u64 = 1 << 20;
/// Most tensors accepted (the largest models have tens of thousands).
pub const MAX_TENSORS: u64 = 1 << 24;

/// What went wrong reading a GGUF file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("model file not found: {path}")]
    NotFound { path: PathBuf },
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF file: it starts with {found:02x?} instead of \"GGUF\"")]
    NotGguf { path: PathBuf, found: Vec<u8> },
    #[error("{path} is a big-endian GGUF file; only little-endian files are supported")]
    BigEndian { path: PathBuf },
    #[error("{path} uses GGUF version {version}; supported versions are 2 and 3")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error(
        "{path} is truncated: it ends at byte {file_size} but {what} needs {needed} bytes at byte {offset} (incomplete download?)"
    )]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        file_size: u64,
    },
    #[error(
        "{path} is truncated: tensor {tensor} needs data up to byte {needed_end} but the file has {file_size} bytes (incomplete download?)"
    )]
    TruncatedTensorData {
        path: PathBuf,
        tensor: String,
        needed_end: u64,
        file_size: u64,
    },
    #[error("{path} is corrupt at byte {offset}: {detail}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("{path}: metadata key {key} appears twice")]
    DuplicateKey { path: PathBuf, key: String },
    #[error("{path}: tensor {tensor} has ggml type id {type_id}, which this reader does not know")]
    UnknownTensorType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
    },
    #[error("{path}: metadata key {key} is missing or is not an array of {expected}")]
    NotAnArray {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
}

/// The type tag of a metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GgufValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufValueType {
    /// The type with GGUF type id `id`.
    pub fn from_id(id: u32) -> Option<GgufValueType> {
        Some(match id {
            0 => GgufValueType::U8,
            1 => GgufValueType::I8,
            2 => GgufValueType::U16,
            3 => GgufValueType::I16,
            4 => GgufValueType::U32,
            5 => GgufValueType::I32,
            6 => GgufValueType::F32,
            7 => GgufValueType::Bool,
            8 => GgufValueType::String,
            9 => GgufValueType::Array,
            10 => GgufValueType::U64,
            11 => GgufValueType::I64,
            12 => GgufValueType::F64,
            _ => return None,
        })
    }

    /// The GGUF type id.
    pub fn id(self) -> u32 {
        match self {
            GgufValueType::U8 => 0,
            GgufValueType::I8 => 1,
            GgufValueType::U16 => 2,
            GgufValueType::I16 => 3,
            GgufValueType::U32 => 4,
            GgufValueType::I32 => 5,
            GgufValueType::F32 => 6,
            GgufValueType::Bool => 7,
            GgufValueType::String => 8,
            GgufValueType::Array => 9,
            GgufValueType::U64 => 10,
            GgufValueType::I64 => 11,
            GgufValueType::F64 => 12,
        }
    }

    /// Smallest encoded size of one value of this type (a string is at least its 8-byte
    /// length, an array its 4-byte type and 8-byte count).
    pub fn minimum_encoded_bytes(self) -> u64 {
        match self {
            GgufValueType::U8 | GgufValueType::I8 | GgufValueType::Bool => 1,
            GgufValueType::U16 | GgufValueType::I16 => 2,
            GgufValueType::U32 | GgufValueType::I32 | GgufValueType::F32 => 4,
            GgufValueType::U64 | GgufValueType::I64 | GgufValueType::F64 => 8,
            GgufValueType::String => 8,
            GgufValueType::Array => 12,
        }
    }

    fn fixed_size(self) -> Option<u64> {
        match self {
            GgufValueType::String | GgufValueType::Array => None,
            other => Some(other.minimum_encoded_bytes()),
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// An array that was read (at most [`EAGER_ARRAY_LIMIT`] elements, or built for writing).
    Array {
        element_type: GgufValueType,
        values: Vec<MetadataValue>,
    },
    /// A long array left in the file; fetch it with [`GgufFile::array_values`].
    LazyArray(LazyArray),
}

/// Where a long array lives in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LazyArray {
    pub element_type: GgufValueType,
    pub len: u64,
    /// File offset of the first element.
    pub data_offset: u64,
}

impl MetadataValue {
    /// The value as an unsigned integer, for any integer type holding a non-negative value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(value) => Some(value.into()),
            MetadataValue::U16(value) => Some(value.into()),
            MetadataValue::U32(value) => Some(value.into()),
            MetadataValue::U64(value) => Some(value),
            MetadataValue::I8(value) => u64::try_from(value).ok(),
            MetadataValue::I16(value) => u64::try_from(value).ok(),
            MetadataValue::I32(value) => u64::try_from(value).ok(),
            MetadataValue::I64(value) => u64::try_from(value).ok(),
            _ => None,
        }
    }

    /// The value as a float, for any numeric type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(value) => Some(value.into()),
            MetadataValue::F64(value) => Some(value),
            MetadataValue::I8(value) => Some(value.into()),
            MetadataValue::I16(value) => Some(value.into()),
            MetadataValue::I32(value) => Some(value.into()),
            MetadataValue::I64(value) => Some(value as f64),
            _ => self.as_u64().map(|value| value as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(value) => Some(value),
            _ => None,
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(value) => Some(value),
            _ => None,
        }
    }

    /// The type tag.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            MetadataValue::U8(_) => GgufValueType::U8,
            MetadataValue::I8(_) => GgufValueType::I8,
            MetadataValue::U16(_) => GgufValueType::U16,
            MetadataValue::I16(_) => GgufValueType::I16,
            MetadataValue::U32(_) => GgufValueType::U32,
            MetadataValue::I32(_) => GgufValueType::I32,
            MetadataValue::F32(_) => GgufValueType::F32,
            MetadataValue::Bool(_) => GgufValueType::Bool,
            MetadataValue::String(_) => GgufValueType::String,
            MetadataValue::U64(_) => GgufValueType::U64,
            MetadataValue::I64(_) => GgufValueType::I64,
            MetadataValue::F64(_) => GgufValueType::F64,
            MetadataValue::Array { .. } | MetadataValue::LazyArray(_) => GgufValueType::Array,
        }
    }

    /// Number of elements for arrays (loaded or lazy); `None` for scalars.
    pub fn array_len(&self) -> Option<u64> {
        match self {
            MetadataValue::Array { values, .. } => Some(values.len() as u64),
            MetadataValue::LazyArray(lazy) => Some(lazy.len),
            _ => None,
        }
    }
}

/// One tensor info from the header (the data itself is not read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dimensions[0]` is the row length (the fastest-varying dimension).
    pub dimensions: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data relative to [`GgufFile::data_start`].
    pub offset: u64,
    pub element_count: u64,
    pub byte_size: u64,
}

/// A parsed GGUF header.
#[derive(Debug, Clone, Serialize)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub file_size: u64,
    pub alignment: u64,
    /// Absolute file offset of the tensor data section.
    pub data_start: u64,
    /// Metadata in file order.
    pub metadata: Vec<(String, MetadataValue)>,
    pub tensors: Vec<TensorInfo>,
    #[serde(skip)]
    metadata_index: HashMap<String, usize>,
}

impl GgufFile {
    /// Reads the header of the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| open_error(path, source))?;
        let file_size = file.metadata().map_err(|source| io_error(path, source))?.len();
        let mut reader = HeaderReader {
            inner: BufReader::with_capacity(64 * 1024, file),
            position: 0,
            file_size,
            path,
        };
        reader.read_header()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index.get(key).map(|&index| &self.metadata[index].1)
    }

    /// `key` as an unsigned integer.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(MetadataValue::as_u64)
    }

    /// `key` as a float.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(MetadataValue::as_f64)
    }

    /// `key` as a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetadataValue::as_str)
    }

    /// The elements of the array under `key`, reading them from the file if they were skipped.
    pub fn array_values(&self, key: &str) -> Result<Vec<MetadataValue>, GgufError> {
        match self.get(key) {
            Some(MetadataValue::Array { values, .. }) => Ok(values.clone()),
            Some(MetadataValue::LazyArray(lazy)) => self.read_lazy_array(lazy),
            _ => Err(GgufError::NotAnArray {
                path: self.path.clone(),
                key: key.to_string(),
                expected: "values",
            }),
        }
    }

    /// The array of strings under `key` (e.g. `tokenizer.ggml.tokens`), read on demand.
    pub fn string_array(&self, key: &str) -> Result<Vec<String>, GgufError> {
        let not_strings = || GgufError::NotAnArray {
            path: self.path.clone(),
            key: key.to_string(),
            expected: "strings",
        };
        let element_type = match self.get(key) {
            Some(MetadataValue::Array { element_type, .. }) => *element_type,
            Some(MetadataValue::LazyArray(lazy)) => lazy.element_type,
            _ => return Err(not_strings()),
        };
        if element_type != GgufValueType::String {
            return Err(not_strings());
        }
        self.array_values(key)?
            .into_iter()
            .map(|value| match value {
                MetadataValue::String(text) => Ok(text),
                _ => Err(not_strings()),
            })
            .collect()
    }

    /// Sum of the element counts of all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .map(|tensor| tensor.element_count)
            .fold(0u64, u64::saturating_add)
    }

    /// Sum of the data sizes of all tensors.
    pub fn tensor_data_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|tensor| tensor.byte_size)
            .fold(0u64, u64::saturating_add)
    }

    fn read_lazy_array(&self, lazy: &LazyArray) -> Result<Vec<MetadataValue>, GgufError> {
        let path = self.path.as_path();
        let mut file = File::open(path).map_err(|source| open_error(path, source))?;
        let file_size = file.metadata().map_err(|source| io_error(path, source))?.len();
        file.seek(SeekFrom::Start(lazy.data_offset))
            .map_err(|source| io_error(path, source))?;
        let mut reader = HeaderReader {
            inner: BufReader::with_capacity(64 * 1024, file),
            position: lazy.data_offset,
            file_size,
            path,
        };
        reader.check_array_length(lazy.element_type, lazy.len)?;
        let mut values = Vec::with_capacity(usize::try_from(lazy.len).unwrap_or(0));
        for _ in 0..lazy.len {
            values.push(reader.read_value(lazy.element_type, 1)?);
        }
        Ok(values)
    }
}

fn open_error(path: &Path, source: std::io::Error) -> GgufError {
    if source.kind() == std::io::ErrorKind::NotFound {
        GgufError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        io_error(path, source)
    }
}

fn io_error(path: &Path, source: std::io::Error) -> GgufError {
    GgufError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Rounds `offset` up to a multiple of `alignment` (a power of two), saturating.
pub fn align_up(offset: u64, alignment: u64) -> u64 {
    match offset.checked_add(alignment - 1) {
        Some(sum) => sum & !(alignment - 1),
        None => u64::MAX,
    }
}

struct HeaderReader<'a> {
    inner: BufReader<File>,
    position: u64,
    file_size: u64,
    path: &'a Path,
}

impl HeaderReader<'_> {
    fn remaining(&self) -> u64 {
        self.file_size.saturating_sub(self.position)
    }

    fn truncated(&self, what: &str, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_string(),
            offset: self.position,
            needed,
            file_size: self.file_size,
        }
    }

    fn corrupt(&self, detail: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_path_buf(),
            offset: self.position,
            detail,
        }
    }

    fn require(&self, needed: u64, what: &str) -> Result<(), GgufError> {
        if needed > self.remaining() {
            return Err(self.truncated(what, needed));
        }
        Ok(())
    }

    fn read_array_bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.require(N as u64, what)?;
        let mut bytes = [0u8; N];
        match self.inner.read_exact(&mut bytes) {
            Ok(()) => {
                self.position += N as u64;
                Ok(bytes)
            }
            // The file shrank while we read it.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.truncated(what, N as u64))
            }
            Err(error) => Err(io_error(self.path, error)),
        }
    }

    fn read_u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.read_array_bytes(what)?))
    }

    fn read_u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.read_array_bytes(what)?))
    }

    fn skip(&mut self, byte_count: u64, what: &str) -> Result<(), GgufError> {
        self.require(byte_count, what)?;
        let relative =
            i64::try_from(byte_count).map_err(|_| self.corrupt(format!("{what} is too long to skip")))?;
        self.inner
            .seek_relative(relative)
            .map_err(|error| io_error(self.path, error))?;
        self.position += byte_count;
        Ok(())
    }

    fn read_string_length(&mut self, what: &str) -> Result<u64, GgufError> {
        let length = self.read_u64(what)?;
        if length > MAX_STRING_BYTES {
            return Err(self.corrupt(format!(
                "{what} claims a length of {length} bytes (limit {MAX_STRING_BYTES})"
            )));
        }
        self.require(length, what)?;
        Ok(length)
    }

    fn read_string(&mut self, what: &str) -> Result<String, GgufError> {
        let length = self.read_string_length(what)?;
        // `length` is at most MAX_STRING_BYTES and at most the bytes left in the file.
        let mut bytes = vec![0u8; length as usize];
        match self.inner.read_exact(&mut bytes) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(self.truncated(what, length))
            }
            Err(error) => return Err(io_error(self.path, error)),
        }
        self.position += length;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        })
    }

    fn read_value_type(&mut self, what: &str) -> Result<GgufValueType, GgufError> {
        let type_id = self.read_u32(what)?;
        GgufValueType::from_id(type_id)
            .ok_or_else(|| self.corrupt(format!("{what} has unknown value type id {type_id}")))
    }

    /// An array longer than [`MAX_ARRAY_ELEMENTS`] is corrupt; a plausible one that cannot
    /// fit in the rest of the file means the file is truncated.
    fn check_array_length(&self, element_type: GgufValueType, length: u64) -> Result<(), GgufError> {
        if length > MAX_ARRAY_ELEMENTS {
            return Err(self.corrupt(format!(
                "array claims {length} elements (limit {MAX_ARRAY_ELEMENTS})"
            )));
        }
        let minimum_bytes = length.saturating_mul(element_type.minimum_encoded_bytes());
        self.require(minimum_bytes, "an array")
    }

    fn read_value(&mut self, value_type: GgufValueType, nesting: u32) -> Result<MetadataValue, GgufError> {
        const WHAT: &str = "a metadata value";
        Ok(match value_type {
            GgufValueType::U8 => MetadataValue::U8(u8::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::I8 => MetadataValue::I8(i8::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::U16 => MetadataValue::U16(u16::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::I16 => MetadataValue::I16(i16::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::U32 => MetadataValue::U32(u32::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::I32 => MetadataValue::I32(i32::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::F32 => MetadataValue::F32(f32::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::U64 => MetadataValue::U64(u64::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::I64 => MetadataValue::I64(i64::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::F64 => MetadataValue::F64(f64::from_le_bytes(self.read_array_bytes(WHAT)?)),
            GgufValueType::Bool => {
                let [byte] = self.read_array_bytes::<1>(WHAT)?;
                MetadataValue::Bool(byte != 0)
            }
            GgufValueType::String => MetadataValue::String(self.read_string("a string value")?),
            GgufValueType::Array => {
                if nesting >= MAX_ARRAY_NESTING {
                    return Err(self.corrupt(format!("arrays nested more than {MAX_ARRAY_NESTING} deep")));
                }
                let element_type = self.read_value_type("an array element type")?;
                let length = self.read_u64("an array length")?;
                self.check_array_length(element_type, length)?;
                if length > EAGER_ARRAY_LIMIT {
                    let data_offset = self.position;
                    self.skip_array_elements(element_type, length, nesting + 1)?;
                    MetadataValue::LazyArray(LazyArray {
                        element_type,
                        len: length,
                        data_offset,
                    })
                } else {
                    let mut values = Vec::with_capacity(length as usize);
                    for _ in 0..length {
                        values.push(self.read_value(element_type, nesting + 1)?);
                    }
                    MetadataValue::Array { element_type, values }
                }
            }
        })
    }

    fn skip_array_elements(
        &mut self,
        element_type: GgufValueType,
        length: u64,
        nesting: u32,
    ) -> Result<(), GgufError> {
        if let Some(size) = element_type.fixed_size() {
            return self.skip(length.saturating_mul(size), "array elements");
        }
        for _ in 0..length {
            match element_type {
                GgufValueType::String => {
                    let string_length = self.read_string_length("a string in an array")?;
                    self.skip(string_length, "a string in an array")?;
                }
                _ => {
                    if nesting >= MAX_ARRAY_NESTING {
                        return Err(self.corrupt(format!("arrays nested more than {MAX_ARRAY_NESTING} deep")));
                    }
                    let inner_type = self.read_value_type("an array element type")?;
                    let inner_length = self.read_u64("an array length")?;
                    self.check_array_length(inner_type, inner_length)?;
                    self.skip_array_elements(inner_type, inner_length, nesting + 1)?;
                }
            }
        }
        Ok(())
    }

    fn read_header(&mut self) -> Result<GgufFile, GgufError> {
        let magic: [u8; 4] = match self.read_array_bytes("the magic number") {
            Ok(magic) => magic,
            Err(GgufError::Truncated { .. }) => {
                // Shorter than four bytes: not a GGUF file at all.
                return Err(GgufError::NotGguf {
                    path: self.path.to_path_buf(),
                    found: std::fs::read(self.path).unwrap_or_default(),
                });
            }
            Err(error) => return Err(error),
        };
        if magic != GGUF_MAGIC {
            return Err(GgufError::NotGguf {
                path: self.path.to_path_buf(),
                found: magic.to_vec(),
            });
        }
        let version = self.read_u32("the version")?;
        if version & 0xFFFF == 0 && version != 0 {
            // A small version number written big-endian, e.g. 3 -> 0x0300_0000.
            return Err(GgufError::BigEndian {
                path: self.path.to_path_buf(),
            });
        }
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion {
                path: self.path.to_path_buf(),
                version,
            });
        }
        let tensor_count = self.read_u64("the tensor count")?;
        let metadata_count = self.read_u64("the metadata count")?;
        if metadata_count > MAX_METADATA_ENTRIES {
            return Err(self.corrupt(format!(
                "header claims {metadata_count} metadata entries (limit {MAX_METADATA_ENTRIES})"
            )));
        }
        if tensor_count > MAX_TENSORS {
            return Err(self.corrupt(format!(
                "header claims {tensor_count} tensors (limit {MAX_TENSORS})"
            )));
        }
        // Smallest metadata entry: 8-byte key length + 4-byte type + 1-byte value; smallest
        // tensor info: 8-byte name length + 4-byte rank + 8-byte dimension + 4-byte type +
        // 8-byte offset. Checked before reserving memory for them.
        self.require(
            metadata_count * 13 + tensor_count * 32,
            "the metadata and tensor infos",
        )?;

        let mut metadata = Vec::with_capacity(metadata_count as usize);
        let mut metadata_index = HashMap::with_capacity(metadata_count as usize);
        for _ in 0..metadata_count {
            let key = self.read_string("a metadata key")?;
            let value_type = self.read_value_type("a metadata value type")?;
            let value = self.read_value(value_type, 0)?;
            if metadata_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey {
                    path: self.path.to_path_buf(),
                    key,
                });
            }
            metadata.push((key, value));
        }

        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&index) => match metadata[index].1.as_u64() {
                Some(alignment) if alignment.is_power_of_two() && alignment <= 1 << 30 => alignment,
                _ => {
                    return Err(self.corrupt(format!(
                        "general.alignment is {:?}; it must be a power of two",
                        metadata[index].1
                    )))
                }
            },
        };

        let mut tensors = Vec::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            tensors.push(self.read_tensor_info()?);
        }
        let data_start = align_up(self.position, alignment);
        let data_bytes_available = self.file_size.saturating_sub(data_start);
        for tensor in &tensors {
            let end = tensor.offset.saturating_add(tensor.byte_size);
            if end > data_bytes_available {
                return Err(GgufError::TruncatedTensorData {
                    path: self.path.to_path_buf(),
                    tensor: tensor.name.clone(),
                    needed_end: data_start.saturating_add(end),
                    file_size: self.file_size,
                });
            }
        }

        Ok(GgufFile {
            path: self.path.to_path_buf(),
            version,
            file_size: self.file_size,
            alignment,
            data_start,
            metadata,
            tensors,
            metadata_index,
        })
    }

    fn read_tensor_info(&mut self) -> Result<TensorInfo, GgufError> {
        let name = self.read_string("a tensor name")?;
        let dimension_count = self.read_u32("a tensor rank")?;
        if dimension_count == 0 || dimension_count > MAX_TENSOR_DIMENSIONS {
            return Err(self.corrupt(format!(
                "tensor {name} has {dimension_count} dimensions (ggml allows 1 to {MAX_TENSOR_DIMENSIONS})"
            )));
        }
        let mut dimensions = Vec::with_capacity(dimension_count as usize);
        for _ in 0..dimension_count {
            dimensions.push(self.read_u64("a tensor dimension")?);
        }
        let type_id = self.read_u32("a tensor type")?;
        let offset = self.read_u64("a tensor offset")?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            path: self.path.to_path_buf(),
            tensor: name.clone(),
            type_id,
        })?;
        let element_count = dimensions
            .iter()
            .try_fold(1u64, |product, &dimension| product.checked_mul(dimension))
            .filter(|&count| count <= i64::MAX as u64)
            .ok_or_else(|| {
                self.corrupt(format!(
                    "tensor {name} has dimensions {dimensions:?}, too many elements"
                ))
            })?;
        if dimensions[0] % ggml_type.block_size() != 0 {
            return Err(self.corrupt(format!(
                "tensor {name} has rows of {} elements, not a multiple of the {ggml_type} block size {}",
                dimensions[0],
                ggml_type.block_size()
            )));
        }
        let byte_size = element_count / ggml_type.block_size() * ggml_type.bytes_per_block();
        Ok(TensorInfo {
            name,
            dimensions,
            ggml_type,
            offset,
            element_count,
            byte_size,
        })
    }
}
