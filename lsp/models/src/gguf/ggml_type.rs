//! The ggml tensor type table: numeric id, name, elements per block and bytes per block.
//!
//! Numbers are ggml's `type_traits` (the same table as gguf-py `GGML_QUANT_SIZES`), with
//! `QK_K = 256`. A quantized tensor row of `n` elements takes `n / block_size * bytes_per_block`
//! bytes; `n` must be a multiple of the block size.

use serde::{Serialize, Serializer};

/// A ggml tensor element type as stored in a GGUF tensor info.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
    Q2_0,
}

/// One row of the ggml type table.
struct GgmlTypeTraits {
    ggml_type: GgmlType,
    id: u32,
    name: &'static str,
    block_size: u64,
    bytes_per_block: u64,
}

const QK_K: u64 = 256;

/// (type, ggml id, name, elements per block, bytes per block). Ids 4, 5 (Q4_2, Q4_3), 31-33
/// (Q4_0_4_4 ...) and 36-38 (IQ4_NL_4_4 ...) were removed from ggml and never appear in files.
const GGML_TYPE_TABLE: &[GgmlTypeTraits] = &[
    row(GgmlType::F32, 0, "F32", 1, 4),
    row(GgmlType::F16, 1, "F16", 1, 2),
    row(GgmlType::Q4_0, 2, "Q4_0", 32, 2 + 16),
    row(GgmlType::Q4_1, 3, "Q4_1", 32, 2 + 2 + 16),
    row(GgmlType::Q5_0, 6, "Q5_0", 32, 2 + 4 + 16),
    row(GgmlType::Q5_1, 7, "Q5_1", 32, 2 + 2 + 4 + 16),
    row(GgmlType::Q8_0, 8, "Q8_0", 32, 2 + 32),
    row(GgmlType::Q8_1, 9, "Q8_1", 32, 4 + 4 + 32),
    row(GgmlType::Q2_K, 10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
    row(GgmlType::Q3_K, 11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
    row(GgmlType::Q4_K, 12, "Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12),
    row(GgmlType::Q5_K, 13, "Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
    row(
        GgmlType::Q6_K,
        14,
        "Q6_K",
        QK_K,
        2 + QK_K / 2 + QK_K / 4 + QK_K / 16,
    ),
    row(GgmlType::Q8_K, 15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8),
    row(GgmlType::IQ2_XXS, 16, "IQ2_XXS", QK_K, 2 + QK_K / 4),
    row(GgmlType::IQ2_XS, 17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32),
    row(GgmlType::IQ3_XXS, 18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8),
    row(GgmlType::IQ1_S, 19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
    row(GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 2 + 16),
    row(
        GgmlType::IQ3_S,
        21,
        "IQ3_S",
        QK_K,
        2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4,
    ),
    row(GgmlType::IQ2_S, 22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16),
    row(GgmlType::IQ4_XS, 23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
    row(GgmlType::I8, 24, "I8", 1, 1),
    row(GgmlType::I16, 25, "I16", 1, 2),
    row(GgmlType::I32, 26, "I32", 1, 4),
    row(GgmlType::I64, 27, "I64", 1, 8),
    row(GgmlType::F64, 28, "F64", 1, 8),
    row(
        GgmlType::IQ1_M,
        29,
        "IQ1_M",
        QK_K,
        QK_K / 8 + QK_K / 16 + QK_K / 32,
    ),
    row(GgmlType::BF16, 30, "BF16", 1, 2),
    row(GgmlType::TQ1_0, 34, "TQ1_0", QK_K, 2 + 4 * 13),
    row(GgmlType::TQ2_0, 35, "TQ2_0", QK_K, 2 + 64),
    row(GgmlType::MXFP4, 39, "MXFP4", 32, 1 + 16),
    row(GgmlType::NVFP4, 40, "NVFP4", 64, 4 + 32),
    row(GgmlType::Q1_0, 41, "Q1_0", 128, 2 + 16),
    row(GgmlType::Q2_0, 42, "Q2_0", 64, 2 + 16),
];

const fn row(
    ggml_type: GgmlType,
    id: u32,
    name: &'static str,
    block_size: u64,
    bytes_per_block: u64,
) -> GgmlTypeTraits {
    GgmlTypeTraits {
        ggml_type,
        id,
        name,
        block_size,
        bytes_per_block,
    }
}

impl GgmlType {
    fn traits(self) -> &'static GgmlTypeTraits {
        // The table holds every variant exactly once (checked by a unit test), so the
        // fallback to the first row is unreachable in practice.
        GGML_TYPE_TABLE
            .iter()
            .find(|traits| traits.ggml_type == self)
            .unwrap_or(&GGML_TYPE_TABLE[0])
    }

    /// The type with ggml id `id`, or `None` for ids this table does not know.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPE_TABLE
            .iter()
            .find(|traits| traits.id == id)
            .map(|traits| traits.ggml_type)
    }

    /// The type whose ggml name is `name` (case-insensitive, e.g. `q4_k` or `Q4_K`).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        GGML_TYPE_TABLE
            .iter()
            .find(|traits| traits.name.eq_ignore_ascii_case(name))
            .map(|traits| traits.ggml_type)
    }

    /// Every known type, in ggml id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        GGML_TYPE_TABLE.iter().map(|traits| traits.ggml_type)
    }

    /// The numeric id stored in GGUF files.
    pub fn id(self) -> u32 {
        self.traits().id
    }

    /// ggml's name, e.g. `Q4_K`.
    pub fn name(self) -> &'static str {
        self.traits().name
    }

    /// Elements per quantization block (1 for plain float and integer types).
    pub fn block_size(self) -> u64 {
        self.traits().block_size
    }

    /// Bytes per quantization block.
    pub fn bytes_per_block(self) -> u64 {
        self.traits().bytes_per_block
    }

    /// Bytes for `element_count` elements, rounding a partial block up to a whole block.
    /// Saturates instead of overflowing.
    pub fn bytes_for_elements(self, element_count: u64) -> u64 {
        element_count
            .div_ceil(self.block_size())
            .saturating_mul(self.bytes_per_block())
    }

    /// Average bits per weight, e.g. 4.5 for Q4_0.
    pub fn bits_per_weight(self) -> f64 {
        self.bytes_per_block() as f64 * 8.0 / self.block_size() as f64
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl Serialize for GgmlType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_appears_once_with_a_unique_id_and_name() {
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for traits in GGML_TYPE_TABLE {
            assert!(ids.insert(traits.id), "duplicate id {}", traits.id);
            assert!(names.insert(traits.name), "duplicate name {}", traits.name);
            assert_eq!(traits.ggml_type.traits().id, traits.id);
            assert_eq!(GgmlType::from_id(traits.id), Some(traits.ggml_type));
            assert_eq!(GgmlType::from_name(traits.name), Some(traits.ggml_type));
        }
        assert_eq!(GGML_TYPE_TABLE.len(), 35);
    }

    #[test]
    fn block_geometry_matches_ggml_numbers() {
        // (type, elements per block, bytes per block) written out as in ggml's type_traits.
        let expected: &[(GgmlType, u64, u64)] = &[
            (GgmlType::F32, 1, 4),
            (GgmlType::F16, 1, 2),
            (GgmlType::BF16, 1, 2),
            (GgmlType::Q4_0, 32, 18),
            (GgmlType::Q4_1, 32, 20),
            (GgmlType::Q5_0, 32, 22),
            (GgmlType::Q5_1, 32, 24),
            (GgmlType::Q8_0, 32, 34),
            (GgmlType::Q8_1, 32, 40),
            (GgmlType::Q2_K, 256, 84),
            (GgmlType::Q3_K, 256, 110),
            (GgmlType::Q4_K, 256, 144),
            (GgmlType::Q5_K, 256, 176),
            (GgmlType::Q6_K, 256, 210),
            (GgmlType::Q8_K, 256, 292),
            (GgmlType::IQ2_XXS, 256, 66),
            (GgmlType::IQ2_XS, 256, 74),
            (GgmlType::IQ3_XXS, 256, 98),
            (GgmlType::IQ1_S, 256, 50),
            (GgmlType::IQ4_NL, 32, 18),
            (GgmlType::IQ3_S, 256, 110),
            (GgmlType::IQ2_S, 256, 82),
            (GgmlType::IQ4_XS, 256, 136),
            (GgmlType::IQ1_M, 256, 56),
            (GgmlType::TQ1_0, 256, 54),
            (GgmlType::TQ2_0, 256, 66),
            (GgmlType::MXFP4, 32, 17),
        ];
        for (ggml_type, block_size, bytes_per_block) in expected {
            assert_eq!(ggml_type.block_size(), *block_size, "{ggml_type}");
            assert_eq!(ggml_type.bytes_per_block(), *bytes_per_block, "{ggml_type}");
        }
        assert_eq!(GgmlType::Q4_0.id(), 2);
        assert_eq!(GgmlType::BF16.id(), 30);
        assert_eq!(GgmlType::from_id(4), None);
        assert!((GgmlType::Q4_0.bits_per_weight() - 4.5).abs() < 1e-9);
        // 96 Q8_0 elements = 3 blocks of 34 bytes.
        assert_eq!(GgmlType::Q8_0.bytes_for_elements(96), 102);
    }
}
