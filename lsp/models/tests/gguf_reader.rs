//! The GGUF reader on good and bad input: every malformed file is a typed error, never a panic.

use hearth_models::gguf::writer::GgufWriter;
use hearth_models::gguf::{GgmlType, GgufError, GgufFile, GgufValueType, MetadataValue};
use std::path::{Path, PathBuf};

fn write_bytes(directory: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Hand-built header pieces, for inputs the writer refuses to produce.
struct RawHeader(Vec<u8>);

impl RawHeader {
    fn new(version: u32, tensor_count: u64, metadata_count: u64) -> RawHeader {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&tensor_count.to_le_bytes());
        bytes.extend_from_slice(&metadata_count.to_le_bytes());
        RawHeader(bytes)
    }
    fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    fn string(self, text: &str) -> Self {
        let mut header = self.u64(text.len() as u64);
        header.0.extend_from_slice(text.as_bytes());
        header
    }
    fn padding(mut self, byte_count: usize) -> Self {
        self.0.resize(self.0.len() + byte_count, 0);
        self
    }
}

fn small_model_writer() -> GgufWriter {
    let mut writer = GgufWriter::new();
    writer
        .add_string("general.architecture", "llama")
        .add_u32("llama.block_count", 1)
        .add_string_array("tokenizer.ggml.tokens", &["a", "b", "<PRE>"])
        .add_tensor("token_embd.weight", &[64, 3], GgmlType::F16)
        .add_tensor("blk.0.attn_q.weight", &[64, 64], GgmlType::Q8_0);
    writer
}

#[test]
fn every_value_type_round_trips() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("values.gguf");
    let mut writer = GgufWriter::new();
    writer
        .add_metadata("u8", MetadataValue::U8(200))
        .add_metadata("i8", MetadataValue::I8(-100))
        .add_metadata("u16", MetadataValue::U16(60_000))
        .add_metadata("i16", MetadataValue::I16(-30_000))
        .add_u32("u32", 4_000_000_000)
        .add_i32("i32", -2_000_000_000)
        .add_f32("f32", 1.5)
        .add_bool("bool", true)
        .add_string("string", "héllo ✓")
        .add_u64("u64", u64::MAX)
        .add_metadata("i64", MetadataValue::I64(i64::MIN))
        .add_metadata("f64", MetadataValue::F64(-0.25))
        .add_u32_array("small array", &[1, 2, 3])
        .add_metadata(
            "nested",
            MetadataValue::Array {
                element_type: GgufValueType::Array,
                values: vec![MetadataValue::Array {
                    element_type: GgufValueType::I32,
                    values: vec![MetadataValue::I32(-7)],
                }],
            },
        )
        .add_u32_array("long numbers", &(0..3000).collect::<Vec<u32>>())
        .add_string_array(
            "long strings",
            &(0..1500).map(|index| format!("s{index}")).collect::<Vec<_>>(),
        );
    writer.set_alignment(64);
    writer.add_tensor("a", &[3], GgmlType::F32);
    writer.add_tensor("b", &[32, 2], GgmlType::Q8_0);
    let written = writer.write_to_path(&path).unwrap();

    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(gguf.version, 3);
    assert_eq!(gguf.get("u8"), Some(&MetadataValue::U8(200)));
    assert_eq!(gguf.get("i8"), Some(&MetadataValue::I8(-100)));
    assert_eq!(gguf.get("u16"), Some(&MetadataValue::U16(60_000)));
    assert_eq!(gguf.get("i16"), Some(&MetadataValue::I16(-30_000)));
    assert_eq!(gguf.get_u64("u32"), Some(4_000_000_000));
    assert_eq!(gguf.get("i32"), Some(&MetadataValue::I32(-2_000_000_000)));
    assert_eq!(gguf.get_u64("i32"), None); // negative
    assert_eq!(gguf.get_f64("f32"), Some(1.5));
    assert_eq!(gguf.get("bool").and_then(MetadataValue::as_bool), Some(true));
    assert_eq!(gguf.get_str("string"), Some("héllo ✓"));
    assert_eq!(gguf.get_u64("u64"), Some(u64::MAX));
    assert_eq!(gguf.get("i64"), Some(&MetadataValue::I64(i64::MIN)));
    assert_eq!(gguf.get_f64("f64"), Some(-0.25));
    assert_eq!(
        gguf.array_values("small array").unwrap(),
        vec![
            MetadataValue::U32(1),
            MetadataValue::U32(2),
            MetadataValue::U32(3)
        ]
    );
    assert_eq!(gguf.array_values("nested").unwrap()[0].array_len(), Some(1));
    // Long arrays are skipped while opening and read on request.
    assert!(matches!(
        gguf.get("long numbers"),
        Some(MetadataValue::LazyArray(_))
    ));
    let numbers = gguf.array_values("long numbers").unwrap();
    assert_eq!(numbers.len(), 3000);
    assert_eq!(numbers[2999], MetadataValue::U32(2999));
    let strings = gguf.string_array("long strings").unwrap();
    assert_eq!(strings.len(), 1500);
    assert_eq!(strings[1499], "s1499");
    assert!(matches!(
        gguf.string_array("long numbers"),
        Err(GgufError::NotAnArray { .. })
    ));
    assert!(matches!(
        gguf.array_values("missing"),
        Err(GgufError::NotAnArray { .. })
    ));

    // Alignment 64: the data section and each tensor start on multiples of 64.
    assert_eq!(gguf.alignment, 64);
    assert_eq!(gguf.data_start % 64, 0);
    assert_eq!(gguf.data_start, written.data_start);
    assert_eq!(gguf.tensors[0].offset, 0);
    assert_eq!(gguf.tensors[0].byte_size, 12);
    assert_eq!(gguf.tensors[1].offset, 64);
    assert_eq!(gguf.tensors[1].byte_size, 68); // 2 Q8_0 blocks
    assert_eq!(gguf.file_size, written.file_size);
    assert_eq!(written.file_size, written.data_start + 64 + 68);
}

#[test]
fn version_2_files_are_read() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("v2.gguf");
    let mut writer = small_model_writer();
    writer.set_version(2);
    writer.write_to_path(&path).unwrap();
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(gguf.version, 2);
    assert_eq!(gguf.tensors.len(), 2);
}

#[test]
fn missing_file_is_not_found() {
    let directory = tempfile::tempdir().unwrap();
    let error = GgufFile::open(directory.path().join("absent.gguf")).unwrap_err();
    assert!(matches!(error, GgufError::NotFound { .. }), "{error:?}");
    assert!(error.to_string().starts_with("model file not found: "));
}

#[test]
fn other_files_are_not_gguf() {
    let directory = tempfile::tempdir().unwrap();
    let text = write_bytes(directory.path(), "text.gguf", b"hello world");
    match GgufFile::open(&text).unwrap_err() {
        GgufError::NotGguf { found, .. } => assert_eq!(found, b"hell"),
        other => panic!("expected NotGguf, got {other:?}"),
    }
    let empty = write_bytes(directory.path(), "empty.gguf", b"");
    assert!(matches!(
        GgufFile::open(&empty).unwrap_err(),
        GgufError::NotGguf { .. }
    ));
    let short = write_bytes(directory.path(), "short.gguf", b"GG");
    assert!(matches!(
        GgufFile::open(&short).unwrap_err(),
        GgufError::NotGguf { .. }
    ));
    // A directory cannot be read as a file.
    assert!(matches!(
        GgufFile::open(directory.path()).unwrap_err(),
        GgufError::Io { .. } | GgufError::NotGguf { .. }
    ));
}

#[test]
fn unsupported_versions_and_big_endian_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    for version in [1u32, 4, 0] {
        let path = directory.path().join(format!("v{version}.gguf"));
        let mut writer = small_model_writer();
        writer.set_version(version);
        writer.write_to_path(&path).unwrap();
        match GgufFile::open(&path).unwrap_err() {
            GgufError::UnsupportedVersion { version: found, .. } => assert_eq!(found, version),
            other => panic!("version {version}: expected UnsupportedVersion, got {other:?}"),
        }
    }
    let path = directory.path().join("big-endian.gguf");
    let mut writer = small_model_writer();
    writer.set_version(3u32.swap_bytes());
    writer.write_to_path(&path).unwrap();
    assert!(matches!(
        GgufFile::open(&path).unwrap_err(),
        GgufError::BigEndian { .. }
    ));
}

#[test]
fn truncated_header_and_truncated_data_are_reported() {
    let directory = tempfile::tempdir().unwrap();
    let writer = small_model_writer();
    let header = writer.header_bytes().unwrap();

    let cut = write_bytes(directory.path(), "cut.gguf", &header[..header.len() / 2]);
    let error = GgufFile::open(&cut).unwrap_err();
    assert!(matches!(error, GgufError::Truncated { .. }), "{error:?}");
    assert!(error.to_string().contains("is truncated"));

    // The whole header but no tensor data: a partial download.
    let header_only = write_bytes(directory.path(), "header-only.gguf", &header);
    match GgufFile::open(&header_only).unwrap_err() {
        GgufError::TruncatedTensorData {
            tensor,
            needed_end,
            file_size,
            ..
        } => {
            assert_eq!(tensor, "token_embd.weight");
            // 64 × 3 F16 = 384 bytes after the header.
            assert_eq!(needed_end, header.len() as u64 + 384);
            assert_eq!(file_size, header.len() as u64);
        }
        other => panic!("expected TruncatedTensorData, got {other:?}"),
    }
}

#[test]
fn absurd_counts_and_lengths_are_refused_before_allocating() {
    let directory = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, RawHeader)> = vec![
        ("huge metadata count", RawHeader::new(3, 0, u64::MAX).padding(64)),
        ("huge tensor count", RawHeader::new(3, 1 << 60, 0).padding(64)),
        (
            "huge key length",
            RawHeader::new(3, 0, 1).u64(1 << 62).padding(64),
        ),
        (
            "huge string value",
            RawHeader::new(3, 0, 1)
                .string("key")
                .u32(8)
                .u64(u64::MAX)
                .padding(64),
        ),
        (
            "huge array",
            RawHeader::new(3, 0, 1)
                .string("key")
                .u32(9)
                .u32(10)
                .u64(1 << 61)
                .padding(64),
        ),
        (
            "unknown value type",
            RawHeader::new(3, 0, 1).string("key").u32(99).padding(64),
        ),
        (
            "five dimensions",
            RawHeader::new(3, 1, 0).string("t").u32(5).padding(64),
        ),
        (
            "element count overflow",
            RawHeader::new(3, 1, 0)
                .string("t")
                .u32(2)
                .u64(1 << 40)
                .u64(1 << 40)
                .u32(0)
                .u64(0)
                .padding(64),
        ),
        (
            "row not a multiple of the block",
            RawHeader::new(3, 1, 0)
                .string("t")
                .u32(1)
                .u64(33)
                .u32(GgmlType::Q4_0.id())
                .u64(0)
                .padding(64),
        ),
        (
            "alignment not a power of two",
            RawHeader::new(3, 0, 1)
                .string("general.alignment")
                .u32(4)
                .u32(3)
                .padding(64),
        ),
    ];
    for (name, header) in cases {
        let path = write_bytes(directory.path(), "case.gguf", &header.0);
        match GgufFile::open(&path) {
            Err(GgufError::Corrupt { detail, .. }) => assert!(!detail.is_empty(), "{name}"),
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn unknown_tensor_type_and_duplicate_keys_are_named() {
    let directory = tempfile::tempdir().unwrap();
    let unknown = RawHeader::new(3, 1, 0)
        .string("mystery.weight")
        .u32(1)
        .u64(32)
        .u32(4) // Q4_2, removed from ggml
        .u64(0)
        .padding(256);
    let path = write_bytes(directory.path(), "unknown.gguf", &unknown.0);
    match GgufFile::open(&path).unwrap_err() {
        GgufError::UnknownTensorType { tensor, type_id, .. } => {
            assert_eq!(tensor, "mystery.weight");
            assert_eq!(type_id, 4);
        }
        other => panic!("expected UnknownTensorType, got {other:?}"),
    }

    let mut writer = GgufWriter::new();
    writer.add_u32("same", 1).add_u32("same", 2);
    let path = directory.path().join("duplicate.gguf");
    writer.write_to_path(&path).unwrap();
    match GgufFile::open(&path).unwrap_err() {
        GgufError::DuplicateKey { key, .. } => assert_eq!(key, "same"),
        other => panic!("expected DuplicateKey, got {other:?}"),
    }
}

/// Every prefix of a valid file, and the file with each header byte replaced, opens to a value
/// or an error — never a panic or an allocation failure.
#[test]
fn every_truncation_and_byte_corruption_is_handled() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("model.gguf");
    small_model_writer().write_to_path(&path).unwrap();
    let original = std::fs::read(&path).unwrap();
    let header_length = GgufFile::open(&path).unwrap().data_start as usize;
    // A fresh file per probe: truncating a file to zero makes ext4 flush it (auto_da_alloc),
    // which is a hundred times slower than writing a new file.
    let mut probe_number = 0;
    let mut open_bytes = |bytes: &[u8]| {
        probe_number += 1;
        let probe = directory.path().join(format!("probe-{probe_number}.gguf"));
        std::fs::write(&probe, bytes).unwrap();
        let result = GgufFile::open(&probe);
        std::fs::remove_file(&probe).unwrap();
        result
    };
    for length in 0..original.len() {
        assert!(
            open_bytes(&original[..length]).is_err(),
            "prefix of {length} bytes"
        );
    }
    for position in 0..header_length {
        for replacement in [0x00u8, 0xFF, 0x7F] {
            let mut corrupted = original.clone();
            corrupted[position] = replacement;
            if let Ok(gguf) = open_bytes(&corrupted) {
                // Whatever parsed must still be internally consistent.
                for tensor in &gguf.tensors {
                    assert!(gguf.data_start + tensor.offset + tensor.byte_size <= gguf.file_size);
                }
            }
        }
    }
}
