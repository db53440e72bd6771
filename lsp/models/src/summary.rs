//! What a GGUF file holds, in the terms `hearth doctor` and the memory planner need.

use crate::gguf::{GgmlType, GgufError, GgufFile, MetadataValue, TensorInfo};
use crate::plan::WeightLayout;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A model file described from its header.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub path: PathBuf,
    pub file_size_bytes: u64,
    pub gguf_version: u32,
    /// `general.architecture`, or `"unknown"` when absent.
    pub architecture: String,
    pub name: Option<String>,
    pub size_label: Option<String>,
    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub file_type: Option<u64>,
    /// Sum of the element counts of all tensors.
    pub parameter_count: u64,
    pub tensor_count: usize,
    pub tensor_data_bytes: u64,
    /// Bytes and tensor counts per ggml type, most bytes first.
    pub tensor_types: Vec<TensorTypeUsage>,
    /// `{arch}.block_count` (n_layer).
    pub block_count: Option<u64>,
    pub embedding_length: Option<u64>,
    pub feed_forward_length: Option<u64>,
    /// Largest `{arch}.attention.head_count` over the layers.
    pub head_count: Option<u64>,
    /// Largest `{arch}.attention.head_count_kv` over the layers (defaults to head_count).
    pub head_count_kv: Option<u64>,
    /// KV heads of each layer (length block_count); empty when unknown.
    pub head_count_kv_per_layer: Vec<u64>,
    /// `{arch}.attention.key_length`, default embedding_length / head_count.
    pub key_length: Option<u64>,
    /// `{arch}.attention.value_length`, default key_length.
    pub value_length: Option<u64>,
    pub context_length: Option<u64>,
    pub vocabulary_size: Option<u64>,
    pub rope_dimension_count: Option<u64>,
    pub mixture_of_experts: Option<MixtureOfExperts>,
    pub latent_attention: Option<LatentAttention>,
    /// `{arch}.attention.sliding_window`.
    pub sliding_window: Option<u64>,
    pub fim_tokens: FimTokens,
    /// Prefix, suffix and middle tokens were all found.
    pub has_fim: bool,
    pub has_chat_template: bool,
    pub tokenizer_model: Option<String>,
    /// Weight bytes per layer and outside the layers, for memory planning.
    pub weight_layout: WeightLayout,
}

/// How much of the file one ggml type accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorTypeUsage {
    pub ggml_type: GgmlType,
    pub tensor_count: usize,
    pub element_count: u64,
    pub bytes: u64,
}

/// Mixture-of-experts facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MixtureOfExperts {
    /// `{arch}.expert_count`.
    pub expert_count: u64,
    /// `{arch}.expert_used_count` (experts run per token).
    pub expert_used_count: u64,
    /// `{arch}.expert_shared_count`, 0 when absent.
    pub expert_shared_count: u64,
    /// Tensors whose name contains `_exps` (all experts stacked in one tensor).
    pub expert_tensor_count: usize,
    pub expert_tensor_bytes: u64,
}

/// Multi-head latent attention (DeepSeek-V2 style): the KV cache holds one compressed latent
/// plus the shared RoPE key per token and layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatentAttention {
    /// `{arch}.attention.kv_lora_rank`.
    pub kv_lora_rank: u64,
    /// `{arch}.rope.dimension_count` (qk_rope_head_dim).
    pub rope_dimension: u64,
    pub key_length_mla: Option<u64>,
    pub value_length_mla: Option<u64>,
    pub q_lora_rank: Option<u64>,
}

impl LatentAttention {
    /// Cache elements per token per layer: kv_lora_rank + rope_dimension.
    pub fn cache_elements_per_token_per_layer(&self) -> u64 {
        self.kv_lora_rank.saturating_add(self.rope_dimension)
    }
}

/// Where a fill-in-the-middle token was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FimTokenSource {
    /// A `tokenizer.ggml.*_token_id` key.
    MetadataKey(String),
    /// A well-known token text in `tokenizer.ggml.tokens`.
    TokenText,
}

/// A fill-in-the-middle token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FimToken {
    pub token_id: u64,
    pub text: Option<String>,
    pub source: FimTokenSource,
}

/// The fill-in-the-middle tokens of the vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FimTokens {
    pub prefix: Option<FimToken>,
    pub suffix: Option<FimToken>,
    pub middle: Option<FimToken>,
    pub pad: Option<FimToken>,
    pub repository: Option<FimToken>,
    pub file_separator: Option<FimToken>,
}

/// Metadata keys and well-known texts for one FIM role.
struct FimRole {
    keys: &'static [&'static str],
    texts: &'static [&'static str],
}

const FIM_PREFIX: FimRole = FimRole {
    keys: &[
        "tokenizer.ggml.fim_pre_token_id",
        "tokenizer.ggml.prefix_token_id",
    ],
    texts: &[
        "<|fim_prefix|>",
        "<fim_prefix>",
        "<fim-prefix>",
        "<｜fim▁begin｜>",
        "<|fim▁begin|>",
        "<|fim_begin|>",
        "<PRE>",
        "▁<PRE>",
        "[PREFIX]",
        "<|code_prefix|>",
    ],
};
const FIM_SUFFIX: FimRole = FimRole {
    keys: &[
        "tokenizer.ggml.fim_suf_token_id",
        "tokenizer.ggml.suffix_token_id",
    ],
    texts: &[
        "<|fim_suffix|>",
        "<fim_suffix>",
        "<fim-suffix>",
        "<｜fim▁hole｜>",
        "<|fim▁hole|>",
        "<|fim_hole|>",
        "<SUF>",
        "▁<SUF>",
        "[SUFFIX]",
        "<|code_suffix|>",
    ],
};
const FIM_MIDDLE: FimRole = FimRole {
    keys: &[
        "tokenizer.ggml.fim_mid_token_id",
        "tokenizer.ggml.middle_token_id",
    ],
    texts: &[
        "<|fim_middle|>",
        "<fim_middle>",
        "<fim-middle>",
        "<｜fim▁end｜>",
        "<|fim▁end|>",
        "<|fim_end|>",
        "<MID>",
        "▁<MID>",
        "[MIDDLE]",
        "<|code_middle|>",
    ],
};
const FIM_PAD: FimRole = FimRole {
    keys: &["tokenizer.ggml.fim_pad_token_id"],
    texts: &["<|fim_pad|>", "<fim_pad>", "<fim-pad>"],
};
const FIM_REPOSITORY: FimRole = FimRole {
    keys: &["tokenizer.ggml.fim_rep_token_id"],
    texts: &["<|repo_name|>", "<repo_name>", "<reponame>", "<|fim_repo|>"],
};
const FIM_FILE_SEPARATOR: FimRole = FimRole {
    keys: &["tokenizer.ggml.fim_sep_token_id"],
    texts: &["<|file_sep|>", "<file_sep>"],
};

impl ModelSummary {
    /// Reads the header of `path` and summarizes it.
    pub fn open(path: impl AsRef<Path>) -> Result<ModelSummary, GgufError> {
        let gguf = GgufFile::open(path)?;
        ModelSummary::from_gguf(&gguf)
    }

    /// Summarizes a parsed header. Reads the token list from the file when looking for FIM
    /// tokens, hence the `Result`.
    pub fn from_gguf(gguf: &GgufFile) -> Result<ModelSummary, GgufError> {
        let architecture = gguf
            .get_str("general.architecture")
            .unwrap_or("unknown")
            .to_string();
        let arch_u64 = |suffix: &str| gguf.get_u64(&format!("{architecture}.{suffix}"));

        let block_count = arch_u64("block_count");
        let embedding_length = arch_u64("embedding_length");
        let layer_count = block_count.unwrap_or(0);
        let head_count_per_layer =
            per_layer_values(gguf, &format!("{architecture}.attention.head_count"), layer_count);
        let head_count_kv_per_layer = per_layer_values(
            gguf,
            &format!("{architecture}.attention.head_count_kv"),
            layer_count,
        )
        .or_else(|| head_count_per_layer.clone())
        .unwrap_or_default();
        let head_count = head_count_per_layer
            .as_ref()
            .and_then(|values| values.iter().copied().max());
        let head_count_kv = head_count_kv_per_layer.iter().copied().max().or(head_count);
        let key_length = arch_u64("attention.key_length").or_else(|| match (embedding_length, head_count) {
            (Some(embedding), Some(heads)) if heads > 0 => Some(embedding / heads),
            _ => None,
        });
        let value_length = arch_u64("attention.value_length").or(key_length);
        let feed_forward_length =
            per_layer_values(gguf, &format!("{architecture}.feed_forward_length"), layer_count)
                .and_then(|values| values.into_iter().max());

        let vocabulary_size = arch_u64("vocab_size")
            .or_else(|| {
                gguf.get("tokenizer.ggml.tokens")
                    .and_then(MetadataValue::array_len)
            })
            .or_else(|| {
                find_tensor(gguf, "token_embd.weight").and_then(|tensor| tensor.dimensions.get(1).copied())
            });

        let expert_tensors: Vec<&TensorInfo> = gguf
            .tensors
            .iter()
            .filter(|tensor| is_expert_tensor(&tensor.name))
            .collect();
        let expert_count = arch_u64("expert_count").unwrap_or(0);
        let mixture_of_experts = if expert_count > 0 || !expert_tensors.is_empty() {
            Some(MixtureOfExperts {
                expert_count,
                expert_used_count: arch_u64("expert_used_count").unwrap_or(0),
                expert_shared_count: arch_u64("expert_shared_count").unwrap_or(0),
                expert_tensor_count: expert_tensors.len(),
                expert_tensor_bytes: expert_tensors
                    .iter()
                    .map(|tensor| tensor.byte_size)
                    .fold(0, u64::saturating_add),
            })
        } else {
            None
        };

        let rope_dimension_count = arch_u64("rope.dimension_count");
        let latent_attention =
            arch_u64("attention.kv_lora_rank")
                .filter(|&rank| rank > 0)
                .map(|kv_lora_rank| LatentAttention {
                    kv_lora_rank,
                    rope_dimension: rope_dimension_count.unwrap_or(0),
                    key_length_mla: arch_u64("attention.key_length_mla"),
                    value_length_mla: arch_u64("attention.value_length_mla"),
                    q_lora_rank: arch_u64("attention.q_lora_rank"),
                });

        let fim_tokens = find_fim_tokens(gguf)?;
        let has_fim =
            fim_tokens.prefix.is_some() && fim_tokens.suffix.is_some() && fim_tokens.middle.is_some();

        Ok(ModelSummary {
            path: gguf.path.clone(),
            file_size_bytes: gguf.file_size,
            gguf_version: gguf.version,
            name: gguf.get_str("general.name").map(str::to_string),
            size_label: gguf.get_str("general.size_label").map(str::to_string),
            file_type: gguf.get_u64("general.file_type"),
            parameter_count: gguf.parameter_count(),
            tensor_count: gguf.tensors.len(),
            tensor_data_bytes: gguf.tensor_data_bytes(),
            tensor_types: tensor_type_usage(&gguf.tensors),
            block_count,
            embedding_length,
            feed_forward_length,
            head_count,
            head_count_kv,
            head_count_kv_per_layer,
            key_length,
            value_length,
            context_length: arch_u64("context_length"),
            vocabulary_size,
            rope_dimension_count,
            mixture_of_experts,
            latent_attention,
            sliding_window: arch_u64("attention.sliding_window"),
            fim_tokens,
            has_fim,
            has_chat_template: gguf
                .get_str("tokenizer.chat_template")
                .is_some_and(|template| !template.trim().is_empty()),
            tokenizer_model: gguf.get_str("tokenizer.ggml.model").map(str::to_string),
            weight_layout: WeightLayout::from_tensors(&gguf.tensors, layer_count),
            architecture,
        })
    }

    /// The ggml type holding the most bytes (what people call "the quantization").
    pub fn dominant_tensor_type(&self) -> Option<GgmlType> {
        self.tensor_types.first().map(|usage| usage.ggml_type)
    }
}

/// Whether llama.cpp's `--override-tensor exps=CPU` would match this tensor: the stacked
/// routed-expert tensors `blk.N.ffn_{gate,up,down,gate_up}_exps.*`. Shared experts
/// (`_shexp`) do not match.
pub fn is_expert_tensor(name: &str) -> bool {
    name.contains("_exps")
}

fn find_tensor<'a>(gguf: &'a GgufFile, name: &str) -> Option<&'a TensorInfo> {
    gguf.tensors.iter().find(|tensor| tensor.name == name)
}

/// A per-layer hyperparameter stored either as one number or as an array with one entry per
/// layer. A scalar is repeated `layer_count` times (at least once).
fn per_layer_values(gguf: &GgufFile, key: &str, layer_count: u64) -> Option<Vec<u64>> {
    match gguf.get(key)? {
        MetadataValue::Array { .. } | MetadataValue::LazyArray(_) => {
            let values: Vec<u64> = gguf
                .array_values(key)
                .ok()?
                .iter()
                .map(|value| value.as_u64().unwrap_or(0))
                .collect();
            Some(values)
        }
        scalar => {
            let value = scalar.as_u64()?;
            let repeat = usize::try_from(layer_count.clamp(1, 100_000)).unwrap_or(1);
            Some(vec![value; repeat])
        }
    }
}

fn tensor_type_usage(tensors: &[TensorInfo]) -> Vec<TensorTypeUsage> {
    let mut usage: Vec<TensorTypeUsage> = Vec::new();
    for tensor in tensors {
        match usage.iter_mut().find(|entry| entry.ggml_type == tensor.ggml_type) {
            Some(entry) => {
                entry.tensor_count += 1;
                entry.element_count = entry.element_count.saturating_add(tensor.element_count);
                entry.bytes = entry.bytes.saturating_add(tensor.byte_size);
            }
            None => usage.push(TensorTypeUsage {
                ggml_type: tensor.ggml_type,
                tensor_count: 1,
                element_count: tensor.element_count,
                bytes: tensor.byte_size,
            }),
        }
    }
    usage.sort_by(|left, right| {
        right
            .bytes
            .cmp(&left.bytes)
            .then(left.ggml_type.cmp(&right.ggml_type))
    });
    usage
}

fn find_fim_tokens(gguf: &GgufFile) -> Result<FimTokens, GgufError> {
    let tokens = match gguf.get("tokenizer.ggml.tokens") {
        Some(_) => Some(gguf.string_array("tokenizer.ggml.tokens")?),
        None => None,
    };
    let find = |role: &FimRole| -> Option<FimToken> {
        for key in role.keys {
            if let Some(token_id) = gguf.get_u64(key) {
                let text = tokens.as_ref().and_then(|tokens| {
                    usize::try_from(token_id)
                        .ok()
                        .and_then(|index| tokens.get(index).cloned())
                });
                return Some(FimToken {
                    token_id,
                    text,
                    source: FimTokenSource::MetadataKey(key.to_string()),
                });
            }
        }
        let tokens = tokens.as_ref()?;
        for wanted in role.texts {
            if let Some(index) = tokens.iter().position(|token| token == wanted) {
                return Some(FimToken {
                    token_id: index as u64,
                    text: Some(wanted.to_string()),
                    source: FimTokenSource::TokenText,
                });
            }
        }
        None
    };
    Ok(FimTokens {
        prefix: find(&FIM_PREFIX),
        suffix: find(&FIM_SUFFIX),
        middle: find(&FIM_MIDDLE),
        pad: find(&FIM_PAD),
        repository: find(&FIM_REPOSITORY),
        file_separator: find(&FIM_FILE_SEPARATOR),
    })
}
