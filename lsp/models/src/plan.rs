//! Memory arithmetic: where the weights, the KV cache and the compute buffers go, and what
//! fits on the machine.
//!
//! Placement follows llama.cpp:
//! * `-ngl G` offloads the last `min(G, n_layer)` repeating layers (`blk.N.*`); the output
//!   head (`output.weight` + `output_norm`) goes to the GPU only when `G > n_layer`, so
//!   "everything on the GPU" is `G = n_layer + 1`.
//! * The token embedding (`token_embd.weight`) stays in host memory (it is only gathered from).
//!   When the model has no `output.weight` (tied embeddings) llama.cpp copies the token
//!   embedding to the output head's device, so an offloaded tied head costs its size again.
//! * The KV cache of a layer lives where the layer lives.
//! * `--override-tensor exps=CPU` keeps the routed-expert tensors (`*_exps*`) in host memory
//!   while the rest of each layer (attention, shared experts, norms, router) is offloaded.
//!
//! KV cache, per layer, for a context of `n_ctx` tokens:
//! * standard attention: `n_ctx × n_head_kv × (key_length + value_length) × bytes_per_element`
//! * latent attention (MLA, DeepSeek-V2 style): `n_ctx × (kv_lora_rank + rope_dim) × bytes`
//!
//! with bytes per element 4 (f32), 2 (f16/bf16), 34/32 (q8_0), 24/32 (q5_1), 22/32 (q5_0),
//! 20/32 (q4_1), 18/32 (q4_0, iq4_nl).
//!
//! Compute buffer estimate (f32 activations, one micro-batch of `n_ubatch` tokens):
//! `4 × n_ubatch × (n_vocab + 4 × n_embd + 2 × n_ff)` bytes — logits for every token of the
//! micro-batch plus the residual stream, norms, Q/K/V and the feed-forward activations — plus
//! `4 × n_ubatch × n_ctx × n_head` for the attention scores when flash attention is off.
//! It is charged to the first GPU when any layer is offloaded and to host memory when any layer
//! stays on the CPU.
//!
//! Decode speed ceiling: generating one token reads every active weight once, so
//! `seconds per token ≥ Σ bytes_on_device / bandwidth_of_device`. Active weights are all layer
//! weights and the output head; for mixture-of-experts models only `expert_used_count /
//! expert_count` of the expert tensors. The token embedding contributes one row (ignored). The
//! "at full context" figure adds reading the whole KV cache once per token.

use crate::gguf::{GgmlType, TensorInfo};
use crate::hardware::{GpuDevice, GpuKind, Hardware};
use crate::summary::{is_expert_tensor, ModelSummary};
use serde::{Serialize, Serializer};

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;

/// `1.23 GiB`, `512.0 MiB`, `12.0 KiB`, `7 B`.
pub fn format_bytes(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Element type of the KV cache (llama.cpp `--cache-type-k/-v`).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvCacheType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q5_1,
    Q5_0,
    Q4_1,
    Q4_0,
    IQ4_NL,
}

impl KvCacheType {
    pub const ALL: [KvCacheType; 9] = [
        KvCacheType::F32,
        KvCacheType::F16,
        KvCacheType::BF16,
        KvCacheType::Q8_0,
        KvCacheType::Q5_1,
        KvCacheType::Q5_0,
        KvCacheType::Q4_1,
        KvCacheType::Q4_0,
        KvCacheType::IQ4_NL,
    ];

    pub fn ggml_type(self) -> GgmlType {
        match self {
            KvCacheType::F32 => GgmlType::F32,
            KvCacheType::F16 => GgmlType::F16,
            KvCacheType::BF16 => GgmlType::BF16,
            KvCacheType::Q8_0 => GgmlType::Q8_0,
            KvCacheType::Q5_1 => GgmlType::Q5_1,
            KvCacheType::Q5_0 => GgmlType::Q5_0,
            KvCacheType::Q4_1 => GgmlType::Q4_1,
            KvCacheType::Q4_0 => GgmlType::Q4_0,
            KvCacheType::IQ4_NL => GgmlType::IQ4_NL,
        }
    }

    /// The llama.cpp command-line name (`f16`, `q8_0`, ...).
    pub fn name(self) -> &'static str {
        match self {
            KvCacheType::F32 => "f32",
            KvCacheType::F16 => "f16",
            KvCacheType::BF16 => "bf16",
            KvCacheType::Q8_0 => "q8_0",
            KvCacheType::Q5_1 => "q5_1",
            KvCacheType::Q5_0 => "q5_0",
            KvCacheType::Q4_1 => "q4_1",
            KvCacheType::Q4_0 => "q4_0",
            KvCacheType::IQ4_NL => "iq4_nl",
        }
    }

    /// Parses a llama.cpp cache type name.
    pub fn from_name(name: &str) -> Option<KvCacheType> {
        KvCacheType::ALL
            .into_iter()
            .find(|kv_type| kv_type.name().eq_ignore_ascii_case(name))
    }

    /// Quantized caches (anything but f32/f16/bf16) need flash attention for the V cache.
    pub fn is_quantized(self) -> bool {
        !matches!(self, KvCacheType::F32 | KvCacheType::F16 | KvCacheType::BF16)
    }
}

impl std::fmt::Display for KvCacheType {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl Serialize for KvCacheType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Weight bytes of one repeating layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerWeights {
    /// Bytes of all `blk.N.*` tensors.
    pub bytes: u64,
    /// The part of `bytes` in routed-expert tensors (`*_exps*`).
    pub expert_bytes: u64,
}

/// Where the weight bytes are, by layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WeightLayout {
    /// Indexed by layer number.
    pub layers: Vec<LayerWeights>,
    pub token_embedding_bytes: u64,
    /// `output.weight`; `None` when the head is tied to the token embedding.
    pub output_weight_bytes: Option<u64>,
    /// `output_norm.*`.
    pub output_norm_bytes: u64,
    /// Other tensors outside the layers (kept in host memory).
    pub other_bytes: u64,
}

/// Weight bytes on each side for one placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeightPlacement {
    /// First offloaded layer (`layer_count` when none is).
    pub first_gpu_layer: u32,
    pub output_on_gpu: bool,
    pub gpu_bytes: u64,
    pub host_bytes: u64,
}

impl WeightLayout {
    /// Groups tensors by `blk.N.` prefix; `block_count` layers at least.
    pub fn from_tensors(tensors: &[TensorInfo], block_count: u64) -> WeightLayout {
        let mut layout = WeightLayout {
            layers: vec![
                LayerWeights {
                    bytes: 0,
                    expert_bytes: 0
                };
                usize::try_from(block_count.min(100_000)).unwrap_or(0)
            ],
            ..WeightLayout::default()
        };
        for tensor in tensors {
            if let Some(layer) = layer_index(&tensor.name) {
                if layer >= 100_000 {
                    layout.other_bytes = layout.other_bytes.saturating_add(tensor.byte_size);
                    continue;
                }
                if layer >= layout.layers.len() {
                    layout.layers.resize(
                        layer + 1,
                        LayerWeights {
                            bytes: 0,
                            expert_bytes: 0,
                        },
                    );
                }
                layout.layers[layer].bytes = layout.layers[layer].bytes.saturating_add(tensor.byte_size);
                if is_expert_tensor(&tensor.name) {
                    layout.layers[layer].expert_bytes =
                        layout.layers[layer].expert_bytes.saturating_add(tensor.byte_size);
                }
            } else if tensor.name == "token_embd.weight" {
                layout.token_embedding_bytes = layout.token_embedding_bytes.saturating_add(tensor.byte_size);
            } else if tensor.name == "output.weight" {
                let output = layout.output_weight_bytes.get_or_insert(0);
                *output = output.saturating_add(tensor.byte_size);
            } else if tensor.name.starts_with("output_norm.") {
                layout.output_norm_bytes = layout.output_norm_bytes.saturating_add(tensor.byte_size);
            } else {
                layout.other_bytes = layout.other_bytes.saturating_add(tensor.byte_size);
            }
        }
        layout
    }

    pub fn layer_count(&self) -> u32 {
        u32::try_from(self.layers.len()).unwrap_or(u32::MAX)
    }

    pub fn layer_bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|layer| layer.bytes)
            .fold(0, u64::saturating_add)
    }

    pub fn expert_bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|layer| layer.expert_bytes)
            .fold(0, u64::saturating_add)
    }

    /// Output head bytes when it sits on the GPU (a tied head is a copy of the embedding).
    pub fn output_head_bytes_on_gpu(&self) -> u64 {
        self.output_weight_bytes.unwrap_or(self.token_embedding_bytes) + self.output_norm_bytes
    }

    /// Output head bytes when it stays on the host (a tied head shares the embedding).
    pub fn output_head_bytes_on_host(&self) -> u64 {
        self.output_weight_bytes.unwrap_or(0) + self.output_norm_bytes
    }

    /// The first offloaded layer for llama.cpp's `-ngl gpu_layers`.
    pub fn first_gpu_layer(&self, gpu_layers: u32) -> u32 {
        self.layer_count() - gpu_layers.min(self.layer_count())
    }

    /// Weight bytes on GPU and host for `-ngl gpu_layers`, optionally with the expert tensors
    /// of offloaded layers kept on the host.
    pub fn placement(&self, gpu_layers: u32, experts_on_host: bool) -> WeightPlacement {
        let first_gpu_layer = self.first_gpu_layer(gpu_layers);
        let output_on_gpu = gpu_layers > self.layer_count();
        let mut gpu_bytes: u64 = 0;
        let mut host_bytes = self.token_embedding_bytes.saturating_add(self.other_bytes);
        for (index, layer) in self.layers.iter().enumerate() {
            if (index as u64) < u64::from(first_gpu_layer) {
                host_bytes = host_bytes.saturating_add(layer.bytes);
            } else if experts_on_host {
                gpu_bytes = gpu_bytes.saturating_add(layer.bytes.saturating_sub(layer.expert_bytes));
                host_bytes = host_bytes.saturating_add(layer.expert_bytes);
            } else {
                gpu_bytes = gpu_bytes.saturating_add(layer.bytes);
            }
        }
        if output_on_gpu {
            gpu_bytes = gpu_bytes.saturating_add(self.output_head_bytes_on_gpu());
        } else {
            host_bytes = host_bytes.saturating_add(self.output_head_bytes_on_host());
        }
        WeightPlacement {
            first_gpu_layer,
            output_on_gpu,
            gpu_bytes,
            host_bytes,
        }
    }
}

/// `blk.12.attn_q.weight` → 12.
fn layer_index(tensor_name: &str) -> Option<usize> {
    let rest = tensor_name.strip_prefix("blk.")?;
    let (number, _) = rest.split_once('.')?;
    number.parse().ok()
}

/// KV cache elements per token for one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerKvShape {
    pub key_elements_per_token: u64,
    pub value_elements_per_token: u64,
}

/// The KV cache geometry of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvCacheShape {
    pub layers: Vec<LayerKvShape>,
    /// Latent attention: one compressed latent + RoPE key per token and layer, no V.
    pub latent_attention: bool,
}

impl KvCacheShape {
    /// Standard: K = n_head_kv × key_length, V = n_head_kv × value_length per layer.
    /// MLA: K = kv_lora_rank + rope dimension, V = 0.
    pub fn from_summary(summary: &ModelSummary) -> KvCacheShape {
        let layer_count = summary.block_count.unwrap_or(0) as usize;
        if let Some(latent) = &summary.latent_attention {
            return KvCacheShape {
                layers: vec![
                    LayerKvShape {
                        key_elements_per_token: latent.cache_elements_per_token_per_layer(),
                        value_elements_per_token: 0,
                    };
                    layer_count.min(100_000)
                ],
                latent_attention: true,
            };
        }
        let key_length = summary.key_length.unwrap_or(0);
        let value_length = summary.value_length.unwrap_or(0);
        let layers = (0..layer_count.min(100_000))
            .map(|layer| {
                let kv_heads = summary
                    .head_count_kv_per_layer
                    .get(layer)
                    .copied()
                    .or(summary.head_count_kv)
                    .unwrap_or(0);
                LayerKvShape {
                    key_elements_per_token: kv_heads.saturating_mul(key_length),
                    value_elements_per_token: kv_heads.saturating_mul(value_length),
                }
            })
            .collect();
        KvCacheShape {
            layers,
            latent_attention: false,
        }
    }

    /// Bytes of one layer's cache for `context_length` tokens.
    pub fn layer_bytes(&self, layer: usize, context_length: u64, kv_type: KvCacheType) -> u64 {
        self.layers.get(layer).map_or(0, |shape| {
            let ggml_type = kv_type.ggml_type();
            context_length.saturating_mul(
                ggml_type
                    .bytes_for_elements(shape.key_elements_per_token)
                    .saturating_add(ggml_type.bytes_for_elements(shape.value_elements_per_token)),
            )
        })
    }

    /// Bytes of the whole cache.
    pub fn total_bytes(&self, context_length: u64, kv_type: KvCacheType) -> u64 {
        self.bytes_for_layers(0..self.layers.len(), context_length, kv_type)
    }

    /// Bytes of the cache of `layers`.
    pub fn bytes_for_layers(
        &self,
        layers: std::ops::Range<usize>,
        context_length: u64,
        kv_type: KvCacheType,
    ) -> u64 {
        layers
            .map(|layer| self.layer_bytes(layer, context_length, kv_type))
            .fold(0, u64::saturating_add)
    }
}

/// Inputs of the compute buffer estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ComputeBufferInput {
    pub ubatch_size: u64,
    pub embedding_length: u64,
    pub feed_forward_length: u64,
    pub vocabulary_size: u64,
    pub head_count: u64,
    pub context_length: u64,
    pub flash_attention: bool,
}

/// `4 × n_ubatch × (n_vocab + 4 × n_embd + 2 × n_ff)`, plus `4 × n_ubatch × n_ctx × n_head`
/// without flash attention. See the module documentation.
pub fn compute_buffer_bytes(input: &ComputeBufferInput) -> u64 {
    const F32_BYTES: u64 = 4;
    // Saturating: the inputs come from file metadata and may be absurd.
    let per_token = input
        .vocabulary_size
        .saturating_add(input.embedding_length.saturating_mul(4))
        .saturating_add(input.feed_forward_length.saturating_mul(2));
    let mut bytes = F32_BYTES
        .saturating_mul(input.ubatch_size)
        .saturating_mul(per_token);
    if !input.flash_attention {
        bytes = bytes.saturating_add(
            F32_BYTES
                .saturating_mul(input.ubatch_size)
                .saturating_mul(input.context_length)
                .saturating_mul(input.head_count),
        );
    }
    bytes
}

/// A memory bandwidth and where the number came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BandwidthEstimate {
    pub bytes_per_second: u64,
    pub basis: String,
}

const GB: u64 = 1_000_000_000;

/// Published peak bandwidths in GB/s, matched on whole words of the device name, most
/// specific first.
const GPU_BANDWIDTH_TABLE: &[(&str, u64)] = &[
    ("B200", 8000),
    ("GH200", 4000),
    ("H200", 4800),
    ("H100 NVL", 3900),
    ("H100 PCIe", 2000),
    ("H100", 3350),
    ("A100-SXM4-80GB", 2039),
    ("A100 80GB PCIe", 1935),
    ("A100", 1555),
    ("L40S", 864),
    ("L40", 864),
    ("L4", 300),
    ("A10", 600),
    ("T4", 320),
    ("V100", 900),
    ("RTX A6000", 768),
    ("RTX 6000 Ada", 960),
    ("RTX 5090", 1792),
    ("RTX 5080", 960),
    ("RTX 5070 Ti", 896),
    ("RTX 5070", 672),
    ("RTX 4090", 1008),
    ("RTX 4080", 717),
    ("RTX 4070 Ti", 504),
    ("RTX 4070", 504),
    ("RTX 4060 Ti", 288),
    ("RTX 4060", 272),
    ("RTX 3090", 936),
    ("RTX 3080", 760),
    ("RTX 3070", 448),
    ("RTX 3060", 360),
    ("M1 Ultra", 800),
    ("M2 Ultra", 800),
    ("M3 Ultra", 819),
    ("M1 Max", 400),
    ("M2 Max", 400),
    ("M3 Max", 400),
    ("M4 Max", 546),
    ("M1 Pro", 200),
    ("M2 Pro", 200),
    ("M3 Pro", 150),
    ("M4 Pro", 273),
    ("M1", 68),
    ("M2", 100),
    ("M3", 100),
    ("M4", 120),
];

/// Assumed for NVIDIA GPUs not in the table (a mid-range consumer card).
pub const DEFAULT_NVIDIA_BANDWIDTH_BYTES_PER_SECOND: u64 = 300 * GB;
/// Assumed for Apple GPUs whose chip is not known (base M2/M3).
pub const DEFAULT_APPLE_BANDWIDTH_BYTES_PER_SECOND: u64 = 100 * GB;
/// Assumed for host RAM (dual-channel DDR4/DDR5 desktop: measured 40-90 GB/s).
pub const DEFAULT_HOST_BANDWIDTH_BYTES_PER_SECOND: u64 = 50 * GB;

/// Whether `pattern`'s words appear consecutively in `name` as whole words.
fn contains_words(name: &str, pattern: &str) -> bool {
    let words: Vec<String> = name
        .split(|character: char| character.is_whitespace() || character == ',')
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    let wanted: Vec<String> = pattern.split_whitespace().map(str::to_ascii_uppercase).collect();
    if wanted.is_empty() || wanted.len() > words.len() {
        return false;
    }
    words.windows(wanted.len()).any(|window| window == wanted)
}

/// The bandwidth assumed for `gpu`: the table entry matching its name, else a default for its
/// kind. Pass a measured value in [`PlanRequest`] to override.
pub fn default_gpu_bandwidth(gpu: &GpuDevice) -> BandwidthEstimate {
    for (pattern, gigabytes_per_second) in GPU_BANDWIDTH_TABLE {
        if contains_words(&gpu.name, pattern) {
            return BandwidthEstimate {
                bytes_per_second: gigabytes_per_second * GB,
                basis: format!("published peak for {pattern}: {gigabytes_per_second} GB/s"),
            };
        }
    }
    match gpu.kind {
        GpuKind::Nvidia => BandwidthEstimate {
            bytes_per_second: DEFAULT_NVIDIA_BANDWIDTH_BYTES_PER_SECOND,
            basis: "unknown NVIDIA GPU: assumed 300 GB/s".to_string(),
        },
        GpuKind::AppleUnified => BandwidthEstimate {
            bytes_per_second: DEFAULT_APPLE_BANDWIDTH_BYTES_PER_SECOND,
            basis: "unknown Apple chip: assumed 100 GB/s".to_string(),
        },
    }
}

/// What to plan for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRequest {
    /// Wanted context in tokens; reduced by halves (not below `minimum_context_length`) when
    /// nothing fits.
    pub context_length: u32,
    pub minimum_context_length: u32,
    /// llama.cpp `n_ubatch` (default 512).
    pub ubatch_size: u32,
    /// KV cache types to try, most preferred first.
    pub kv_cache_types: Vec<KvCacheType>,
    /// Left free on every GPU for the driver context, cuBLAS workspaces and fragmentation.
    pub gpu_reserve_bytes: u64,
    /// Left free in RAM for the OS, the editor and Hearth.
    pub host_reserve_bytes: u64,
    pub flash_attention: bool,
    /// Measured GPU bandwidth; `None` uses [`default_gpu_bandwidth`].
    pub gpu_bandwidth_bytes_per_second: Option<u64>,
    /// Measured RAM bandwidth; `None` uses [`DEFAULT_HOST_BANDWIDTH_BYTES_PER_SECOND`].
    pub host_bandwidth_bytes_per_second: Option<u64>,
}

impl Default for PlanRequest {
    fn default() -> Self {
        PlanRequest {
            context_length: 8192,
            minimum_context_length: 2048,
            ubatch_size: 512,
            kv_cache_types: vec![KvCacheType::F16, KvCacheType::Q8_0, KvCacheType::Q4_0],
            gpu_reserve_bytes: 512 * MIB,
            host_reserve_bytes: GIB,
            flash_attention: true,
            gpu_bandwidth_bytes_per_second: None,
            host_bandwidth_bytes_per_second: None,
        }
    }
}

impl PlanRequest {
    pub fn with_context_length(context_length: u32) -> PlanRequest {
        PlanRequest {
            context_length,
            minimum_context_length: context_length.min(2048),
            ..PlanRequest::default()
        }
    }
}

/// One GPU's part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuShare {
    pub gpu_index: usize,
    pub name: String,
    /// Share of the offloaded layers (proportional to free memory).
    pub fraction: f64,
    pub layers: u32,
    pub bytes: u64,
    /// Free memory minus the reserve.
    pub budget_bytes: u64,
}

/// The decode-speed ceiling from memory bandwidth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodeSpeedEstimate {
    /// Active weight bytes read per generated token, GPU and host together.
    pub bytes_read_per_token: u64,
    pub gpu_bytes_read_per_token: u64,
    pub host_bytes_read_per_token: u64,
    /// Upper bound at an empty context (weights only).
    pub tokens_per_second_ceiling: f64,
    /// Upper bound with the whole KV cache filled (weights + the cache read once per token).
    pub tokens_per_second_at_full_context: f64,
    pub gpu_bandwidths: Vec<BandwidthEstimate>,
    pub host_bandwidth: BandwidthEstimate,
}

/// Where everything goes, and whether it fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub fits: bool,
    /// llama.cpp `-ngl`: `layer_count + 1` puts the output head on the GPU too.
    pub gpu_layers: u32,
    pub layer_count: u32,
    pub output_on_gpu: bool,
    /// Expert tensors kept in RAM (`--override-tensor exps=CPU`).
    pub experts_on_host: bool,
    pub kv_cache_type: KvCacheType,
    pub context_length: u32,
    pub context_was_reduced: bool,
    pub weights_gpu_bytes: u64,
    pub weights_host_bytes: u64,
    pub kv_cache_gpu_bytes: u64,
    pub kv_cache_host_bytes: u64,
    pub compute_gpu_bytes: u64,
    pub compute_host_bytes: u64,
    pub gpu_total_bytes: u64,
    pub host_total_bytes: u64,
    pub gpu_budget_bytes: u64,
    pub host_budget_bytes: Option<u64>,
    pub gpu_split: Vec<GpuShare>,
    pub decode_speed: DecodeSpeedEstimate,
    /// The equivalent llama.cpp command-line options.
    pub llama_cpp_arguments: Vec<String>,
    /// Plain-words reasons, one sentence each.
    pub explanation: Vec<String>,
}

/// One configuration to evaluate.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    gpu_layers: u32,
    experts_on_host: bool,
    kv_cache_type: KvCacheType,
    context_length: u32,
}

struct Evaluation {
    candidate: Candidate,
    placement: WeightPlacement,
    kv_cache_gpu_bytes: u64,
    kv_cache_host_bytes: u64,
    compute_gpu_bytes: u64,
    compute_host_bytes: u64,
    gpu_split: Vec<GpuShare>,
    fits_gpu: bool,
    fits_host: bool,
}

impl Evaluation {
    fn fits(&self) -> bool {
        self.fits_gpu && self.fits_host
    }
}

struct Planner<'a> {
    summary: &'a ModelSummary,
    layout: &'a WeightLayout,
    kv_shape: KvCacheShape,
    gpus: &'a [GpuDevice],
    gpu_budgets: Vec<u64>,
    host_budget: Option<u64>,
    unified_memory: bool,
    request: &'a PlanRequest,
}

impl Planner<'_> {
    fn compute_bytes(&self, context_length: u32) -> u64 {
        let embedding_length = self.summary.embedding_length.unwrap_or(0);
        compute_buffer_bytes(&ComputeBufferInput {
            ubatch_size: u64::from(self.request.ubatch_size),
            embedding_length,
            feed_forward_length: self
                .summary
                .feed_forward_length
                .unwrap_or(embedding_length.saturating_mul(4)),
            vocabulary_size: self.summary.vocabulary_size.unwrap_or(0),
            head_count: self.summary.head_count.unwrap_or(0),
            context_length: u64::from(context_length),
            flash_attention: self.request.flash_attention,
        })
    }

    /// Splits the offloaded layers across GPUs in proportion to their budgets (largest
    /// remainder), in device order as llama.cpp does.
    fn layers_per_gpu(&self, offloaded_layers: u32) -> Vec<u32> {
        let total_budget: u64 = self
            .gpu_budgets
            .iter()
            .fold(0, |sum, &budget| sum.saturating_add(budget));
        if self.gpus.is_empty() {
            return Vec::new();
        }
        if total_budget == 0 {
            let mut counts = vec![0; self.gpus.len()];
            counts[0] = offloaded_layers;
            return counts;
        }
        let exact: Vec<f64> = self
            .gpu_budgets
            .iter()
            .map(|&budget| offloaded_layers as f64 * budget as f64 / total_budget as f64)
            .collect();
        let mut counts: Vec<u32> = exact.iter().map(|value| value.floor() as u32).collect();
        let mut missing = offloaded_layers - counts.iter().sum::<u32>();
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|&left, &right| {
            let left_remainder = exact[left] - exact[left].floor();
            let right_remainder = exact[right] - exact[right].floor();
            right_remainder.total_cmp(&left_remainder)
        });
        for index in order {
            if missing == 0 {
                break;
            }
            counts[index] += 1;
            missing -= 1;
        }
        counts
    }

    fn evaluate(&self, candidate: Candidate) -> Evaluation {
        let layer_count = self.layout.layer_count();
        let placement = self
            .layout
            .placement(candidate.gpu_layers, candidate.experts_on_host);
        let context = u64::from(candidate.context_length);
        let first_gpu_layer = placement.first_gpu_layer as usize;
        let kv_cache_gpu_bytes = self.kv_shape.bytes_for_layers(
            first_gpu_layer..layer_count as usize,
            context,
            candidate.kv_cache_type,
        );
        let kv_cache_host_bytes =
            self.kv_shape
                .bytes_for_layers(0..first_gpu_layer, context, candidate.kv_cache_type);
        let compute = self.compute_bytes(candidate.context_length);
        let offloaded_layers = layer_count - placement.first_gpu_layer;
        let any_on_gpu = offloaded_layers > 0 || placement.output_on_gpu;
        let compute_gpu_bytes = if any_on_gpu { compute } else { 0 };
        let compute_host_bytes = if placement.first_gpu_layer > 0 || !any_on_gpu {
            compute
        } else {
            0
        };

        // Per-GPU bytes: each GPU gets its layers' weights and KV cache; the first GPU the
        // compute buffer; the last GPU the output head.
        let layer_counts = self.layers_per_gpu(offloaded_layers);
        let mut gpu_split = Vec::with_capacity(self.gpus.len());
        let mut next_layer = first_gpu_layer;
        let mut fits_gpu = true;
        for (gpu_index, gpu) in self.gpus.iter().enumerate() {
            let layers = layer_counts.get(gpu_index).copied().unwrap_or(0);
            let range = next_layer..next_layer + layers as usize;
            next_layer = range.end;
            let mut bytes: u64 = self.layout.layers[range.clone()]
                .iter()
                .map(|layer| {
                    if candidate.experts_on_host {
                        layer.bytes.saturating_sub(layer.expert_bytes)
                    } else {
                        layer.bytes
                    }
                })
                .fold(0, u64::saturating_add);
            bytes = bytes.saturating_add(self.kv_shape.bytes_for_layers(
                range,
                context,
                candidate.kv_cache_type,
            ));
            if gpu_index == 0 {
                bytes = bytes.saturating_add(compute_gpu_bytes);
            }
            if gpu_index + 1 == self.gpus.len() && placement.output_on_gpu {
                bytes = bytes.saturating_add(self.layout.output_head_bytes_on_gpu());
            }
            let budget_bytes = self.gpu_budgets[gpu_index];
            if bytes > budget_bytes {
                fits_gpu = false;
            }
            let total_budget: u64 = self
                .gpu_budgets
                .iter()
                .fold(0, |sum, &budget| sum.saturating_add(budget));
            gpu_split.push(GpuShare {
                gpu_index,
                name: gpu.name.clone(),
                fraction: if total_budget == 0 {
                    0.0
                } else {
                    budget_bytes as f64 / total_budget as f64
                },
                layers,
                bytes,
                budget_bytes,
            });
        }
        if self.gpus.is_empty() && any_on_gpu {
            fits_gpu = false;
        }

        let host_bytes = placement
            .host_bytes
            .saturating_add(kv_cache_host_bytes)
            .saturating_add(compute_host_bytes);
        let gpu_bytes = placement
            .gpu_bytes
            .saturating_add(kv_cache_gpu_bytes)
            .saturating_add(compute_gpu_bytes);
        let fits_host = match self.host_budget {
            None => true,
            // Unified memory: the GPU's share comes out of the same RAM.
            Some(budget) if self.unified_memory => host_bytes.saturating_add(gpu_bytes) <= budget,
            Some(budget) => host_bytes <= budget,
        };
        Evaluation {
            candidate,
            placement,
            kv_cache_gpu_bytes,
            kv_cache_host_bytes,
            compute_gpu_bytes,
            compute_host_bytes,
            gpu_split,
            fits_gpu,
            fits_host,
        }
    }

    /// The best fitting configuration at one context length, in order of preference: all on
    /// the GPU; (MoE) all but the experts on the GPU; as many layers as fit; CPU only.
    fn best_at_context(&self, context_length: u32) -> Option<Evaluation> {
        let layer_count = self.layout.layer_count();
        let kv_types = &self.request.kv_cache_types;
        let has_experts = self.layout.expert_bytes() > 0;
        if !self.gpus.is_empty() {
            for &kv_cache_type in kv_types {
                let evaluation = self.evaluate(Candidate {
                    gpu_layers: layer_count + 1,
                    experts_on_host: false,
                    kv_cache_type,
                    context_length,
                });
                if evaluation.fits() {
                    return Some(evaluation);
                }
            }
            let expert_options: &[bool] = if has_experts { &[true, false] } else { &[false] };
            for &experts_on_host in expert_options {
                if experts_on_host {
                    for &kv_cache_type in kv_types {
                        let evaluation = self.evaluate(Candidate {
                            gpu_layers: layer_count + 1,
                            experts_on_host,
                            kv_cache_type,
                            context_length,
                        });
                        if evaluation.fits() {
                            return Some(evaluation);
                        }
                    }
                }
                // Partial offload: the KV type that lets the most layers on, earlier types
                // winning ties. GPU use grows with the layer count and host use shrinks, so
                // the most layers that fit the GPU is found by bisection and then checked
                // against the host.
                let mut best: Option<Evaluation> = None;
                for &kv_cache_type in kv_types {
                    let candidate = |gpu_layers: u32| Candidate {
                        gpu_layers,
                        experts_on_host,
                        kv_cache_type,
                        context_length,
                    };
                    if layer_count == 0 || !self.evaluate(candidate(1)).fits_gpu {
                        continue;
                    }
                    let (mut fitting, mut too_many) = (1u32, layer_count + 1);
                    while too_many - fitting > 1 {
                        let middle = fitting + (too_many - fitting) / 2;
                        if self.evaluate(candidate(middle)).fits_gpu {
                            fitting = middle;
                        } else {
                            too_many = middle;
                        }
                    }
                    let evaluation = self.evaluate(candidate(fitting));
                    if evaluation.fits()
                        && best
                            .as_ref()
                            .is_none_or(|best| best.candidate.gpu_layers < evaluation.candidate.gpu_layers)
                    {
                        best = Some(evaluation);
                    }
                }
                if best.is_some() {
                    return best;
                }
            }
        }
        kv_types
            .iter()
            .map(|&kv_cache_type| {
                self.evaluate(Candidate {
                    gpu_layers: 0,
                    experts_on_host: false,
                    kv_cache_type,
                    context_length,
                })
            })
            .find(Evaluation::fits)
    }

    fn decode_speed(&self, evaluation: &Evaluation) -> DecodeSpeedEstimate {
        let candidate = evaluation.candidate;
        let active_expert_fraction = match &self.summary.mixture_of_experts {
            Some(moe) if moe.expert_count > 0 && moe.expert_used_count > 0 => {
                moe.expert_used_count.min(moe.expert_count) as f64 / moe.expert_count as f64
            }
            _ => 1.0,
        };
        let first_gpu_layer = evaluation.placement.first_gpu_layer as usize;
        let mut gpu_read = 0f64;
        let mut host_read = 0f64;
        for (index, layer) in self.layout.layers.iter().enumerate() {
            let dense = layer.bytes.saturating_sub(layer.expert_bytes) as f64;
            let experts = layer.expert_bytes as f64 * active_expert_fraction;
            if index < first_gpu_layer {
                host_read += dense + experts;
            } else if candidate.experts_on_host {
                gpu_read += dense;
                host_read += experts;
            } else {
                gpu_read += dense + experts;
            }
        }
        if evaluation.placement.output_on_gpu {
            gpu_read += self.layout.output_head_bytes_on_gpu() as f64;
        } else {
            host_read += self.layout.output_head_bytes_on_gpu() as f64;
        }
        let gpu_bandwidths: Vec<BandwidthEstimate> = self
            .gpus
            .iter()
            .map(|gpu| match self.request.gpu_bandwidth_bytes_per_second {
                Some(bytes_per_second) => BandwidthEstimate {
                    bytes_per_second,
                    basis: "given".to_string(),
                },
                None => default_gpu_bandwidth(gpu),
            })
            .collect();
        let host_bandwidth = match self.request.host_bandwidth_bytes_per_second {
            Some(bytes_per_second) => BandwidthEstimate {
                bytes_per_second,
                basis: "given".to_string(),
            },
            None if self.unified_memory && !gpu_bandwidths.is_empty() => BandwidthEstimate {
                bytes_per_second: gpu_bandwidths[0].bytes_per_second,
                basis: "unified memory: same as the GPU".to_string(),
            },
            None => BandwidthEstimate {
                bytes_per_second: DEFAULT_HOST_BANDWIDTH_BYTES_PER_SECOND,
                basis: "typical dual-channel desktop RAM: assumed 50 GB/s".to_string(),
            },
        };
        // Time per token: each GPU reads its share of the GPU bytes (layers are split in
        // proportion to the shares), then the host reads its bytes.
        let seconds_for = |gpu_bytes: f64, host_bytes: f64| -> f64 {
            let mut seconds = host_bytes / host_bandwidth.bytes_per_second.max(1) as f64;
            let offloaded: u32 = evaluation.gpu_split.iter().map(|share| share.layers).sum();
            for (share, bandwidth) in evaluation.gpu_split.iter().zip(&gpu_bandwidths) {
                let part = if offloaded == 0 {
                    if share.gpu_index == 0 {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    f64::from(share.layers) / f64::from(offloaded)
                };
                seconds += gpu_bytes * part / bandwidth.bytes_per_second.max(1) as f64;
            }
            seconds
        };
        let weights_seconds = seconds_for(gpu_read, host_read);
        let full_context_seconds = seconds_for(
            gpu_read + evaluation.kv_cache_gpu_bytes as f64,
            host_read + evaluation.kv_cache_host_bytes as f64,
        );
        let per_second = |seconds: f64| if seconds > 0.0 { 1.0 / seconds } else { 0.0 };
        DecodeSpeedEstimate {
            bytes_read_per_token: (gpu_read + host_read) as u64,
            gpu_bytes_read_per_token: gpu_read as u64,
            host_bytes_read_per_token: host_read as u64,
            tokens_per_second_ceiling: per_second(weights_seconds),
            tokens_per_second_at_full_context: per_second(full_context_seconds),
            gpu_bandwidths,
            host_bandwidth,
        }
    }

    fn build_plan(&self, evaluation: Evaluation, requested_context: u32) -> MemoryPlan {
        let candidate = evaluation.candidate;
        let layer_count = self.layout.layer_count();
        let offloaded_layers = layer_count - evaluation.placement.first_gpu_layer;
        let weights_gpu_bytes = evaluation.placement.gpu_bytes;
        let weights_host_bytes = evaluation.placement.host_bytes;
        let gpu_total_bytes = weights_gpu_bytes
            .saturating_add(evaluation.kv_cache_gpu_bytes)
            .saturating_add(evaluation.compute_gpu_bytes);
        let host_total_bytes = weights_host_bytes
            .saturating_add(evaluation.kv_cache_host_bytes)
            .saturating_add(evaluation.compute_host_bytes);
        let decode_speed = self.decode_speed(&evaluation);
        let fits = evaluation.fits();

        let mut arguments = vec![
            "-ngl".to_string(),
            candidate.gpu_layers.to_string(),
            "-c".to_string(),
            candidate.context_length.to_string(),
            "-ctk".to_string(),
            candidate.kv_cache_type.name().to_string(),
            "-ctv".to_string(),
            candidate.kv_cache_type.name().to_string(),
        ];
        if candidate.kv_cache_type.is_quantized() || self.request.flash_attention {
            arguments.extend(["-fa".to_string(), "on".to_string()]);
        }
        if candidate.experts_on_host {
            arguments.extend(["--override-tensor".to_string(), "exps=CPU".to_string()]);
        }
        if evaluation.gpu_split.len() > 1 {
            let split: Vec<String> = evaluation
                .gpu_split
                .iter()
                .map(|share| share.layers.to_string())
                .collect();
            arguments.extend(["--tensor-split".to_string(), split.join(",")]);
        }

        let kv_description = format!(
            "{} KV cache ({}, {} tokens)",
            format_bytes(
                evaluation
                    .kv_cache_gpu_bytes
                    .saturating_add(evaluation.kv_cache_host_bytes)
            ),
            candidate.kv_cache_type,
            candidate.context_length
        );
        let gpu_names: Vec<&str> = self.gpus.iter().map(|gpu| gpu.name.as_str()).collect();
        let gpu_budget_bytes: u64 = self
            .gpu_budgets
            .iter()
            .fold(0, |sum, &budget| sum.saturating_add(budget));
        let mut explanation = Vec::new();
        if !fits {
            explanation.push(format!(
                "The model does not fit: even on the CPU alone at {} tokens it needs {} of RAM and {} is available. Use a smaller or more quantized model.",
                candidate.context_length,
                format_bytes(host_total_bytes),
                self.host_budget.map_or("an unknown amount".to_string(), format_bytes)
            ));
        } else if self.gpus.is_empty() {
            explanation.push(format!(
                "No GPU: everything runs on the CPU from RAM: {} of weights, {kv_description} and a {} compute buffer, {} in all.",
                format_bytes(weights_host_bytes),
                format_bytes(evaluation.compute_host_bytes),
                format_bytes(host_total_bytes)
            ));
        } else if candidate.gpu_layers == 0 {
            explanation.push(format!(
                "Not even one layer fits in the GPU memory ({} usable on {}); everything runs on the CPU.",
                format_bytes(gpu_budget_bytes),
                gpu_names.join(", ")
            ));
        } else if evaluation.placement.output_on_gpu && !candidate.experts_on_host {
            explanation.push(format!(
                "Everything fits on the GPU ({}): {} of weights, {kv_description} and a {} compute buffer use {} of {} usable.",
                gpu_names.join(", "),
                format_bytes(weights_gpu_bytes),
                format_bytes(evaluation.compute_gpu_bytes),
                format_bytes(gpu_total_bytes),
                format_bytes(gpu_budget_bytes)
            ));
        } else if candidate.experts_on_host && evaluation.placement.output_on_gpu {
            let moe = self.summary.mixture_of_experts.as_ref();
            explanation.push(format!(
                "The whole model does not fit on the GPU, so the expert tensors ({}) stay in RAM (--override-tensor exps=CPU) and everything else ({} of weights, {kv_description}) goes to the GPU; each token uses only {} of {} experts, so little is read from RAM.",
                format_bytes(self.layout.expert_bytes()),
                format_bytes(weights_gpu_bytes),
                moe.map_or(0, |moe| moe.expert_used_count),
                moe.map_or(0, |moe| moe.expert_count)
            ));
        } else {
            explanation.push(format!(
                "{offloaded_layers} of {layer_count} layers fit on the GPU ({} of {} usable); the other {} layers{} run on the CPU from RAM, which is slower.",
                format_bytes(gpu_total_bytes),
                format_bytes(gpu_budget_bytes),
                layer_count - offloaded_layers,
                if evaluation.placement.output_on_gpu { "" } else { " and the output head" }
            ));
            if candidate.experts_on_host {
                explanation.push(
                    "Expert tensors of the offloaded layers also stay in RAM (--override-tensor exps=CPU)."
                        .to_string(),
                );
            }
        }
        if self.gpus.len() > 1 && offloaded_layers > 0 {
            let parts: Vec<String> = evaluation
                .gpu_split
                .iter()
                .map(|share| format!("{} layers on {}", share.layers, share.name))
                .collect();
            explanation.push(format!(
                "Layers are split across the GPUs in proportion to their free memory: {}.",
                parts.join(", ")
            ));
        }
        if let Some(&preferred) = self.request.kv_cache_types.first() {
            if candidate.kv_cache_type != preferred && fits {
                let preferred_bytes = self
                    .kv_shape
                    .total_bytes(u64::from(candidate.context_length), preferred);
                explanation.push(format!(
                    "The KV cache is stored as {} instead of {preferred} to fit ({preferred} would need {}).",
                    candidate.kv_cache_type,
                    format_bytes(preferred_bytes)
                ));
            }
        }
        if candidate.context_length < requested_context {
            explanation.push(format!(
                "The requested context of {requested_context} tokens does not fit; it was reduced to {}.",
                candidate.context_length
            ));
        }
        if let Some(model_context) = self.summary.context_length {
            if u64::from(candidate.context_length) > model_context {
                explanation.push(format!(
                    "The model was trained for {model_context} tokens of context; longer contexts usually degrade quality."
                ));
            }
        }
        if self.kv_shape.latent_attention {
            explanation.push(
                "The model uses latent attention (MLA): its KV cache stores one compressed vector per token and layer, far smaller than standard attention.".to_string(),
            );
        }
        if fits {
            explanation.push(format!(
                "Decode speed ceiling: about {:.0} tokens/s at an empty context and {:.0} tokens/s with the context full (reads {} of weights per token; {}).",
                decode_speed.tokens_per_second_ceiling,
                decode_speed.tokens_per_second_at_full_context,
                format_bytes(decode_speed.bytes_read_per_token),
                bandwidth_summary(&decode_speed, offloaded_layers > 0)
            ));
        }

        MemoryPlan {
            fits,
            gpu_layers: candidate.gpu_layers,
            layer_count,
            output_on_gpu: evaluation.placement.output_on_gpu,
            experts_on_host: candidate.experts_on_host,
            kv_cache_type: candidate.kv_cache_type,
            context_length: candidate.context_length,
            context_was_reduced: candidate.context_length < requested_context,
            weights_gpu_bytes,
            weights_host_bytes,
            kv_cache_gpu_bytes: evaluation.kv_cache_gpu_bytes,
            kv_cache_host_bytes: evaluation.kv_cache_host_bytes,
            compute_gpu_bytes: evaluation.compute_gpu_bytes,
            compute_host_bytes: evaluation.compute_host_bytes,
            gpu_total_bytes,
            host_total_bytes,
            gpu_budget_bytes,
            host_budget_bytes: self.host_budget,
            gpu_split: evaluation.gpu_split,
            decode_speed,
            llama_cpp_arguments: arguments,
            explanation,
        }
    }
}

fn bandwidth_summary(decode_speed: &DecodeSpeedEstimate, uses_gpu: bool) -> String {
    let mut parts = Vec::new();
    if uses_gpu {
        for bandwidth in &decode_speed.gpu_bandwidths {
            parts.push(format!("GPU bandwidth: {}", bandwidth.basis));
        }
    }
    if decode_speed.host_bytes_read_per_token > 0 || !uses_gpu {
        parts.push(format!("RAM bandwidth: {}", decode_speed.host_bandwidth.basis));
    }
    parts.join("; ")
}

/// Finds the plan that fits `hardware` best: all on the GPU with the first KV type that fits,
/// then (MoE) experts in RAM, then as many layers as fit, then CPU only; halving the context
/// down to `minimum_context_length` when nothing fits. When nothing fits at all, the CPU-only
/// plan at the minimum context is returned with `fits == false`.
pub fn plan_memory(summary: &ModelSummary, hardware: &Hardware, request: &PlanRequest) -> MemoryPlan {
    let request_with_default_types;
    let request = if request.kv_cache_types.is_empty() {
        request_with_default_types = PlanRequest {
            kv_cache_types: vec![KvCacheType::F16],
            ..request.clone()
        };
        &request_with_default_types
    } else {
        request
    };
    let planner = Planner {
        summary,
        layout: &summary.weight_layout,
        kv_shape: KvCacheShape::from_summary(summary),
        gpus: &hardware.gpus,
        gpu_budgets: hardware
            .gpus
            .iter()
            .map(|gpu| gpu.free_bytes.saturating_sub(request.gpu_reserve_bytes))
            .collect(),
        host_budget: hardware
            .memory
            .map(|memory| memory.usable_bytes().saturating_sub(request.host_reserve_bytes)),
        unified_memory: hardware.gpus.iter().any(|gpu| gpu.kind == GpuKind::AppleUnified),
        request,
    };

    let requested = request.context_length.max(1);
    let minimum = request.minimum_context_length.clamp(1, requested);
    let mut context = requested;
    loop {
        if let Some(evaluation) = planner.best_at_context(context) {
            return planner.build_plan(evaluation, requested);
        }
        if context <= minimum {
            break;
        }
        context = (context / 2).max(minimum);
    }
    let fallback = planner.evaluate(Candidate {
        gpu_layers: 0,
        experts_on_host: false,
        kv_cache_type: *request.kv_cache_types.last().unwrap_or(&KvCacheType::F16),
        context_length: minimum,
    });
    planner.build_plan(fallback, requested)
}
