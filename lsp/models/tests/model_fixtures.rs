//! Three small synthetic models written with `gguf::writer`, read back, summarized and planned.
//! Every expected number is worked out by hand in the comments (ggml dims are [row, rows, ...];
//! Q4_0 = 18 bytes per 32, Q8_0 = 34 per 32, Q4_K = 144 per 256, Q6_K = 210 per 256, F16 = 2,
//! F32 = 4).

use hearth_models::gguf::writer::GgufWriter;
use hearth_models::gguf::{GgmlType, GgufFile};
use hearth_models::hardware::{GpuDevice, GpuKind, Hardware};
use hearth_models::plan::{
    compute_buffer_bytes, plan_memory, ComputeBufferInput, KvCacheShape, KvCacheType, PlanRequest,
};
use hearth_models::summary::{FimTokenSource, ModelSummary};
use std::path::Path;

/// llama-like dense model, Q4_0 with a Q6_K output head.
/// 4 layers, n_embd 256, 8 heads, 2 KV heads, head dim 256/8 = 32 (no key_length key: the
/// default), n_ff 512, vocab 1000.
fn write_dense_llama(path: &Path) {
    let mut writer = GgufWriter::new();
    let mut tokens: Vec<String> = (0..1000).map(|index| format!("tok{index}")).collect();
    tokens[5] = "<|fim_prefix|>".to_string();
    tokens[6] = "<|fim_suffix|>".to_string();
    tokens[7] = "<|fim_middle|>".to_string();
    writer
        .add_string("general.architecture", "llama")
        .add_string("general.name", "Dense Test")
        .add_u32("llama.block_count", 4)
        .add_u32("llama.context_length", 4096)
        .add_u32("llama.embedding_length", 256)
        .add_u32("llama.feed_forward_length", 512)
        .add_u32("llama.attention.head_count", 8)
        .add_u32("llama.attention.head_count_kv", 2)
        .add_u32("llama.attention.sliding_window", 512)
        .add_string("tokenizer.ggml.model", "gpt2")
        .add_string_array("tokenizer.ggml.tokens", &tokens)
        .add_u32("tokenizer.ggml.fim_pre_token_id", 5)
        .add_u32("tokenizer.ggml.fim_suf_token_id", 6)
        .add_u32("tokenizer.ggml.fim_mid_token_id", 7);
    writer.add_tensor("token_embd.weight", &[256, 1000], GgmlType::Q4_0);
    for layer in 0..4 {
        let name = |suffix: &str| format!("blk.{layer}.{suffix}");
        writer
            .add_tensor(&name("attn_norm.weight"), &[256], GgmlType::F32)
            .add_tensor(&name("attn_q.weight"), &[256, 256], GgmlType::Q4_0)
            .add_tensor(&name("attn_k.weight"), &[256, 64], GgmlType::Q4_0)
            .add_tensor(&name("attn_v.weight"), &[256, 64], GgmlType::Q4_0)
            .add_tensor(&name("attn_output.weight"), &[256, 256], GgmlType::Q4_0)
            .add_tensor(&name("ffn_norm.weight"), &[256], GgmlType::F32)
            .add_tensor(&name("ffn_gate.weight"), &[256, 512], GgmlType::Q4_0)
            .add_tensor(&name("ffn_up.weight"), &[256, 512], GgmlType::Q4_0)
            .add_tensor(&name("ffn_down.weight"), &[512, 256], GgmlType::Q4_0);
    }
    writer
        .add_tensor("output_norm.weight", &[256], GgmlType::F32)
        .add_tensor("output.weight", &[256, 1000], GgmlType::Q6_K);
    writer.write_to_path(path).unwrap();
}

/// qwen3moe-like: 2 layers, n_embd 128, 4 heads, 2 KV heads, key/value length 64 (explicit),
/// 8 experts with 2 used, expert n_ff 64, vocab 512, output head tied to the embedding.
fn write_mixture_of_experts(path: &Path) {
    let mut writer = GgufWriter::new();
    let tokens: Vec<String> = (0..512).map(|index| format!("t{index}")).collect();
    writer
        .add_string("general.architecture", "qwen3moe")
        .add_u32("qwen3moe.block_count", 2)
        .add_u32("qwen3moe.context_length", 32768)
        .add_u32("qwen3moe.embedding_length", 128)
        .add_u32("qwen3moe.feed_forward_length", 256)
        .add_u32("qwen3moe.expert_feed_forward_length", 64)
        .add_u32("qwen3moe.attention.head_count", 4)
        .add_u32("qwen3moe.attention.head_count_kv", 2)
        .add_u32("qwen3moe.attention.key_length", 64)
        .add_u32("qwen3moe.attention.value_length", 64)
        .add_u32("qwen3moe.expert_count", 8)
        .add_u32("qwen3moe.expert_used_count", 2)
        .add_string_array("tokenizer.ggml.tokens", &tokens)
        .add_string(
            "tokenizer.chat_template",
            "{% for m in messages %}{{ m.content }}{% endfor %}",
        );
    writer.add_tensor("token_embd.weight", &[128, 512], GgmlType::Q8_0);
    for layer in 0..2 {
        let name = |suffix: &str| format!("blk.{layer}.{suffix}");
        writer
            .add_tensor(&name("attn_norm.weight"), &[128], GgmlType::F32)
            .add_tensor(&name("attn_q.weight"), &[128, 256], GgmlType::F16)
            .add_tensor(&name("attn_k.weight"), &[128, 128], GgmlType::F16)
            .add_tensor(&name("attn_v.weight"), &[128, 128], GgmlType::F16)
            .add_tensor(&name("attn_output.weight"), &[256, 128], GgmlType::F16)
            .add_tensor(&name("ffn_norm.weight"), &[128], GgmlType::F32)
            .add_tensor(&name("ffn_gate_inp.weight"), &[128, 8], GgmlType::F32)
            .add_tensor(&name("ffn_gate_exps.weight"), &[128, 64, 8], GgmlType::Q8_0)
            .add_tensor(&name("ffn_up_exps.weight"), &[128, 64, 8], GgmlType::Q8_0)
            .add_tensor(&name("ffn_down_exps.weight"), &[64, 128, 8], GgmlType::Q8_0);
    }
    writer.add_tensor("output_norm.weight", &[128], GgmlType::F32);
    writer.write_to_path(path).unwrap();
}

/// deepseek2-like with latent attention: 3 layers, n_embd 256, 4 heads, 1 KV head (the
/// converted MLA layout), kv_lora_rank 64, rope dim 32, vocab 2000 (more than the eager array
/// limit, so the token list is fetched lazily), FIM tokens only as token texts.
fn write_deepseek2(path: &Path) {
    let mut writer = GgufWriter::new();
    let mut tokens: Vec<String> = (0..2000).map(|index| format!("piece{index}")).collect();
    tokens[1997] = "<｜fim▁begin｜>".to_string();
    tokens[1998] = "<｜fim▁hole｜>".to_string();
    tokens[1999] = "<｜fim▁end｜>".to_string();
    writer
        .add_string("general.architecture", "deepseek2")
        .add_u32("deepseek2.block_count", 3)
        .add_u32("deepseek2.context_length", 163840)
        .add_u32("deepseek2.embedding_length", 256)
        .add_u32("deepseek2.feed_forward_length", 512)
        .add_u32("deepseek2.attention.head_count", 4)
        .add_u32("deepseek2.attention.head_count_kv", 1)
        .add_u32("deepseek2.attention.key_length", 96)
        .add_u32("deepseek2.attention.value_length", 64)
        .add_u32("deepseek2.attention.key_length_mla", 96)
        .add_u32("deepseek2.attention.value_length_mla", 64)
        .add_u32("deepseek2.attention.kv_lora_rank", 64)
        .add_u32("deepseek2.rope.dimension_count", 32)
        .add_string_array("tokenizer.ggml.tokens", &tokens);
    writer.add_tensor("token_embd.weight", &[256, 2000], GgmlType::Q8_0);
    for layer in 0..3 {
        let name = |suffix: &str| format!("blk.{layer}.{suffix}");
        writer
            .add_tensor(&name("attn_norm.weight"), &[256], GgmlType::F32)
            .add_tensor(&name("attn_q.weight"), &[256, 384], GgmlType::Q8_0)
            .add_tensor(&name("attn_kv_a_mqa.weight"), &[256, 96], GgmlType::Q8_0)
            .add_tensor(&name("attn_kv_a_norm.weight"), &[64], GgmlType::F32)
            .add_tensor(&name("attn_k_b.weight"), &[64, 64, 4], GgmlType::Q8_0)
            .add_tensor(&name("attn_v_b.weight"), &[64, 64, 4], GgmlType::Q8_0)
            .add_tensor(&name("attn_output.weight"), &[256, 256], GgmlType::Q8_0)
            .add_tensor(&name("ffn_norm.weight"), &[256], GgmlType::F32)
            .add_tensor(&name("ffn_gate.weight"), &[256, 512], GgmlType::Q4_K)
            .add_tensor(&name("ffn_up.weight"), &[256, 512], GgmlType::Q4_K)
            .add_tensor(&name("ffn_down.weight"), &[512, 256], GgmlType::Q6_K);
    }
    writer
        .add_tensor("output_norm.weight", &[256], GgmlType::F32)
        .add_tensor("output.weight", &[256, 2000], GgmlType::Q6_K);
    writer.write_to_path(path).unwrap();
}

fn one_gpu(free_bytes: u64) -> Hardware {
    Hardware {
        gpus: vec![GpuDevice {
            name: "Test GPU".to_string(),
            kind: GpuKind::Nvidia,
            total_bytes: free_bytes,
            free_bytes,
        }],
        ..Hardware::cpu_only(8, 64 << 30, 64 << 30)
    }
}

/// No reserves, so the budgets are exactly the free bytes; bandwidths given.
fn exact_request(context_length: u32) -> PlanRequest {
    PlanRequest {
        context_length,
        minimum_context_length: 1024,
        gpu_reserve_bytes: 0,
        host_reserve_bytes: 0,
        gpu_bandwidth_bytes_per_second: Some(100_000_000_000),
        host_bandwidth_bytes_per_second: Some(10_000_000_000),
        ..PlanRequest::default()
    }
}

#[test]
fn dense_llama_q4_0_header_and_summary() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("dense.gguf");
    write_dense_llama(&path);
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(gguf.tensors.len(), 1 + 4 * 9 + 2);
    assert_eq!(gguf.data_start % 32, 0);
    let q = gguf
        .tensors
        .iter()
        .find(|tensor| tensor.name == "blk.0.attn_q.weight")
        .unwrap();
    // 256 × 256 = 65536 elements = 2048 Q4_0 blocks × 18 bytes = 36864.
    assert_eq!(q.element_count, 65_536);
    assert_eq!(q.byte_size, 36_864);

    let summary = ModelSummary::from_gguf(&gguf).unwrap();
    assert_eq!(summary.architecture, "llama");
    assert_eq!(summary.name.as_deref(), Some("Dense Test"));
    // Per layer: norms 256 + 256, q 65536, k 16384, v 16384, o 65536, ffn 3 × 131072 = 557568.
    // 4 layers = 2230272; token_embd 256000, output_norm 256, output 256000: 2742528.
    assert_eq!(summary.parameter_count, 2_742_528);
    // Per layer bytes: norms 2 × 1024, q 36864, k 9216, v 9216, o 36864, ffn 3 × 73728
    // = 315392; × 4 = 1261568. token_embd 8000 blocks × 18 = 144000, output_norm 1024,
    // output 1000 Q6_K blocks × 210 = 210000. Total 1616592.
    assert_eq!(summary.tensor_data_bytes, 1_616_592);
    assert_eq!(summary.file_size_bytes, gguf.data_start + 1_616_592);
    // Q4_0: 4 × 313344 + 144000 = 1397376 in 29 tensors; Q6_K 210000 in 1; F32 9216 in 9.
    let usage: Vec<(GgmlType, usize, u64)> = summary
        .tensor_types
        .iter()
        .map(|usage| (usage.ggml_type, usage.tensor_count, usage.bytes))
        .collect();
    assert_eq!(
        usage,
        vec![
            (GgmlType::Q4_0, 29, 1_397_376),
            (GgmlType::Q6_K, 1, 210_000),
            (GgmlType::F32, 9, 9_216),
        ]
    );
    assert_eq!(summary.dominant_tensor_type(), Some(GgmlType::Q4_0));
    assert_eq!(summary.block_count, Some(4));
    assert_eq!(summary.head_count, Some(8));
    assert_eq!(summary.head_count_kv, Some(2));
    assert_eq!(summary.head_count_kv_per_layer, vec![2, 2, 2, 2]);
    assert_eq!(summary.key_length, Some(32)); // 256 / 8
    assert_eq!(summary.value_length, Some(32));
    assert_eq!(summary.context_length, Some(4096));
    assert_eq!(summary.vocabulary_size, Some(1000));
    assert_eq!(summary.sliding_window, Some(512));
    assert!(summary.mixture_of_experts.is_none());
    assert!(summary.latent_attention.is_none());
    assert!(summary.has_fim);
    let prefix = summary.fim_tokens.prefix.as_ref().unwrap();
    assert_eq!(prefix.token_id, 5);
    assert_eq!(prefix.text.as_deref(), Some("<|fim_prefix|>"));
    assert_eq!(
        prefix.source,
        FimTokenSource::MetadataKey("tokenizer.ggml.fim_pre_token_id".to_string())
    );
    assert_eq!(summary.fim_tokens.middle.as_ref().unwrap().token_id, 7);
    assert!(summary.fim_tokens.pad.is_none());
    assert!(!summary.has_chat_template);

    let layout = &summary.weight_layout;
    assert_eq!(layout.layers.len(), 4);
    assert!(layout.layers.iter().all(|layer| layer.bytes == 315_392));
    assert_eq!(layout.token_embedding_bytes, 144_000);
    assert_eq!(layout.output_weight_bytes, Some(210_000));
    assert_eq!(layout.output_norm_bytes, 1_024);
    // -ngl 2: layers 2 and 3 on the GPU (2 × 315392 = 630784); host: embedding 144000 +
    // layers 0, 1 (630784) + output head 211024 = 985808.
    let placement = layout.placement(2, false);
    assert_eq!(placement.first_gpu_layer, 2);
    assert!(!placement.output_on_gpu);
    assert_eq!(placement.gpu_bytes, 630_784);
    assert_eq!(placement.host_bytes, 985_808);
    // -ngl 5 (= n_layer + 1): the output head joins: 1261568 + 211024 = 1472592.
    let placement = layout.placement(5, false);
    assert!(placement.output_on_gpu);
    assert_eq!(placement.gpu_bytes, 1_472_592);
    assert_eq!(placement.host_bytes, 144_000);
}

#[test]
fn dense_llama_kv_cache_and_compute_buffer() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("dense.gguf");
    write_dense_llama(&path);
    let summary = ModelSummary::open(&path).unwrap();
    let shape = KvCacheShape::from_summary(&summary);
    // 4096 tokens × 4 layers × 2 KV heads × (32 + 32) × 2 bytes = 4194304.
    assert_eq!(shape.total_bytes(4096, KvCacheType::F16), 4_194_304);
    // q8_0: 64 elements = 2 blocks × 34 = 68 bytes for K and for V: 136 × 4 layers × 4096
    // = 2228224.
    assert_eq!(shape.total_bytes(4096, KvCacheType::Q8_0), 2_228_224);
    // q4_0: 2 blocks × 18 = 36 per K or V: 72 × 4 × 4096 = 1179648.
    assert_eq!(shape.total_bytes(4096, KvCacheType::Q4_0), 1_179_648);
    // 4 × 512 × (1000 + 4 × 256 + 2 × 512) = 2048 × 3048 = 6242304.
    let compute = ComputeBufferInput {
        ubatch_size: 512,
        embedding_length: 256,
        feed_forward_length: 512,
        vocabulary_size: 1000,
        head_count: 8,
        context_length: 4096,
        flash_attention: true,
    };
    assert_eq!(compute_buffer_bytes(&compute), 6_242_304);
    // Without flash attention add 4 × 512 × 4096 × 8 = 67108864.
    assert_eq!(
        compute_buffer_bytes(&ComputeBufferInput {
            flash_attention: false,
            ..compute
        }),
        6_242_304 + 67_108_864
    );
}

#[test]
fn dense_llama_plans_full_quantized_partial_cpu_and_reduced_context() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("dense.gguf");
    write_dense_llama(&path);
    let summary = ModelSummary::open(&path).unwrap();

    // Plenty of GPU memory: everything on the GPU with f16 KV.
    // GPU: weights 1472592 + KV 4194304 + compute 6242304 = 11909200. Host: embedding 144000.
    let plan = plan_memory(&summary, &one_gpu(8 << 30), &exact_request(4096));
    assert!(plan.fits);
    assert_eq!(plan.gpu_layers, 5);
    assert!(plan.output_on_gpu);
    assert_eq!(plan.kv_cache_type, KvCacheType::F16);
    assert_eq!(plan.weights_gpu_bytes, 1_472_592);
    assert_eq!(plan.kv_cache_gpu_bytes, 4_194_304);
    assert_eq!(plan.compute_gpu_bytes, 6_242_304);
    assert_eq!(plan.gpu_total_bytes, 11_909_200);
    assert_eq!(plan.host_total_bytes, 144_000);
    assert_eq!(&plan.llama_cpp_arguments[..4], ["-ngl", "5", "-c", "4096"]);
    assert!(plan.explanation[0].starts_with("Everything fits on the GPU"));
    // Decode reads 1472592 bytes per token at 100 GB/s: 1e11 / 1472592 = 67907.47 tokens/s.
    assert_eq!(plan.decode_speed.bytes_read_per_token, 1_472_592);
    assert!((plan.decode_speed.tokens_per_second_ceiling - 67_907.47).abs() < 0.1);
    // With the cache full: (1472592 + 4194304) bytes → 1e11 / 5666896 = 17646.34 tokens/s.
    assert!((plan.decode_speed.tokens_per_second_at_full_context - 17_646.34).abs() < 0.1);

    // 10 000 000 bytes: f16 (11909200) does not fit; q8_0 does: 1472592 + 2228224 + 6242304
    // = 9943120.
    let plan = plan_memory(&summary, &one_gpu(10_000_000), &exact_request(4096));
    assert_eq!((plan.gpu_layers, plan.kv_cache_type), (5, KvCacheType::Q8_0));
    assert_eq!(plan.gpu_total_bytes, 9_943_120);
    assert!(plan
        .explanation
        .iter()
        .any(|line| line.contains("q8_0 instead of f16")));

    // 8 000 000 bytes: even q4_0 (1472592 + 1179648 + 6242304 = 8894544) is too much.
    // Room for layers = 8000000 - 6242304 (compute) = 1757696. A layer with its cache costs
    // f16 315392 + 1048576 = 1363968 (1 layer fits), q8_0 315392 + 557056 = 872448
    // (2 layers = 1744896 fit), q4_0 315392 + 294912 = 610304 (2 fit, 3 = 1830912 do not).
    // q8_0 and q4_0 tie at 2 layers; q8_0 comes first in the preference order.
    let plan = plan_memory(&summary, &one_gpu(8_000_000), &exact_request(4096));
    assert!(plan.fits);
    assert_eq!(plan.gpu_layers, 2);
    assert_eq!(plan.kv_cache_type, KvCacheType::Q8_0);
    assert!(!plan.output_on_gpu);
    assert_eq!(plan.gpu_total_bytes, 1_744_896 + 6_242_304);
    // Host: weights 985808, cache of layers 0 and 1 = 2 × 557056 = 1114112, compute 6242304.
    assert_eq!(plan.weights_host_bytes, 985_808);
    assert_eq!(plan.kv_cache_host_bytes, 1_114_112);
    assert_eq!(plan.compute_host_bytes, 6_242_304);
    assert!(plan.explanation[0].starts_with("2 of 4 layers fit on the GPU"));
    // Read per token: GPU 2 layers 630784 at 1e11, host 2 layers 630784 + head 211024 =
    // 841808 at 1e10: 6.30784e-6 + 8.41808e-5 s = 9.048864e-5 s → 11051.11 tokens/s.
    assert_eq!(plan.decode_speed.gpu_bytes_read_per_token, 630_784);
    assert_eq!(plan.decode_speed.host_bytes_read_per_token, 841_808);
    assert!((plan.decode_speed.tokens_per_second_ceiling - 11_051.11).abs() < 0.1);

    // No GPU, 10 000 000 bytes of RAM: all on the host. f16: 1616592 + 4194304 + 6242304 =
    // 12053200 no; q8_0: 1616592 + 2228224 + 6242304 = 10087120 no; q4_0: 9038544 yes.
    let plan = plan_memory(
        &summary,
        &Hardware::cpu_only(4, 16 << 30, 10_000_000),
        &exact_request(4096),
    );
    assert!(plan.fits);
    assert_eq!((plan.gpu_layers, plan.kv_cache_type), (0, KvCacheType::Q4_0));
    assert_eq!(plan.host_total_bytes, 9_038_544);
    assert!(plan.explanation[0].starts_with("No GPU"));

    // 8 500 000 bytes: nothing fits at 4096 (q4_0 needs 9038544); at 2048 q4_0 does:
    // 1616592 + 589824 + 6242304 = 8448720.
    let plan = plan_memory(
        &summary,
        &Hardware::cpu_only(4, 16 << 30, 8_500_000),
        &exact_request(4096),
    );
    assert!(plan.fits);
    assert!(plan.context_was_reduced);
    assert_eq!(plan.context_length, 2048);
    assert_eq!(plan.kv_cache_type, KvCacheType::Q4_0);
    assert_eq!(plan.host_total_bytes, 8_448_720);

    // 1 000 000 bytes: does not fit at all, even at the minimum context.
    let plan = plan_memory(
        &summary,
        &Hardware::cpu_only(4, 16 << 30, 1_000_000),
        &exact_request(4096),
    );
    assert!(!plan.fits);
    assert_eq!(plan.context_length, 1024);
    assert!(plan.explanation[0].starts_with("The model does not fit"));
}

#[test]
fn dense_llama_splits_layers_across_two_gpus_by_free_memory() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("dense.gguf");
    write_dense_llama(&path);
    let summary = ModelSummary::open(&path).unwrap();
    let gpu = |name: &str, free_bytes: u64| GpuDevice {
        name: name.to_string(),
        kind: GpuKind::Nvidia,
        total_bytes: free_bytes,
        free_bytes,
    };
    let hardware = Hardware {
        gpus: vec![gpu("Big", 3 << 30), gpu("Small", 1 << 30)],
        ..Hardware::cpu_only(8, 64 << 30, 64 << 30)
    };
    let plan = plan_memory(&summary, &hardware, &exact_request(4096));
    assert_eq!(plan.gpu_layers, 5);
    // Shares 3/4 and 1/4 of 4 layers: 3 and 1.
    let layers: Vec<u32> = plan.gpu_split.iter().map(|share| share.layers).collect();
    assert_eq!(layers, vec![3, 1]);
    assert!((plan.gpu_split[0].fraction - 0.75).abs() < 1e-9);
    // Big: 3 layers × (315392 + 1048576 f16 cache) + compute 6242304 = 10334208.
    // Small: 1 layer (1363968) + output head 211024 = 1574992.
    assert_eq!(plan.gpu_split[0].bytes, 10_334_208);
    assert_eq!(plan.gpu_split[1].bytes, 1_574_992);
    let split_position = plan
        .llama_cpp_arguments
        .iter()
        .position(|argument| argument == "--tensor-split")
        .unwrap();
    assert_eq!(plan.llama_cpp_arguments[split_position + 1], "3,1");
}

#[test]
fn mixture_of_experts_summary_and_expert_offload() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("moe.gguf");
    write_mixture_of_experts(&path);
    let summary = ModelSummary::open(&path).unwrap();
    // Per layer elements: norms 128 + 128, q 32768, k 16384, v 16384, o 32768, router 1024,
    // experts 3 × 65536 = 296192; × 2 = 592384; token_embd 65536, output_norm 128: 658048.
    assert_eq!(summary.parameter_count, 658_048);
    // Per layer bytes: norms 512 + 512, q 65536, k 32768, v 32768, o 65536, router 4096
    // (non-expert 201728) + experts 3 × (2048 blocks × 34 = 69632) = 208896: 410624.
    // 2 layers 821248 + token_embd 2048 × 34 = 69632 + output_norm 512 = 891392.
    assert_eq!(summary.tensor_data_bytes, 891_392);
    assert_eq!(summary.key_length, Some(64));
    let moe = summary.mixture_of_experts.as_ref().unwrap();
    assert_eq!(moe.expert_count, 8);
    assert_eq!(moe.expert_used_count, 2);
    assert_eq!(moe.expert_tensor_count, 6);
    assert_eq!(moe.expert_tensor_bytes, 417_792); // 6 × 69632
    assert!(summary.has_chat_template);
    assert!(!summary.has_fim);
    let layout = &summary.weight_layout;
    assert_eq!(layout.expert_bytes(), 417_792);
    // Tied head: no output.weight, so an offloaded head is a copy of the embedding:
    // 69632 + 512 = 70144 on the GPU, only the norm (512) when on the host.
    assert_eq!(layout.output_weight_bytes, None);
    assert_eq!(layout.output_head_bytes_on_gpu(), 70_144);
    assert_eq!(layout.output_head_bytes_on_host(), 512);
    // Experts on host, all layers offloaded: GPU 2 × 201728 + 70144 = 473600;
    // host 69632 + 417792 = 487424.
    let placement = layout.placement(3, true);
    assert_eq!((placement.gpu_bytes, placement.host_bytes), (473_600, 487_424));

    // KV at 1024 tokens: 2 layers × 2 heads × (64 + 64) × 2 bytes × 1024 = 1048576.
    let shape = KvCacheShape::from_summary(&summary);
    assert_eq!(shape.total_bytes(1024, KvCacheType::F16), 1_048_576);
    // Compute: 4 × 512 × (512 + 4 × 128 + 2 × 256) = 2048 × 1536 = 3145728.
    // Everything on the GPU needs at least 891392 + 294912 (q4_0 cache) + 3145728 = 4332032.
    // With 4 200 000 bytes the experts stay in RAM; f16 (473600 + 1048576 + 3145728 =
    // 4667904) is too much, q8_0 fits: 128 elements = 4 blocks × 34 = 136 per K or V,
    // 2 × 136 × 2 layers × 1024 = 557056, total 473600 + 557056 + 3145728 = 4176384.
    let plan = plan_memory(&summary, &one_gpu(4_200_000), &exact_request(1024));
    assert!(plan.fits);
    assert!(plan.experts_on_host);
    assert_eq!(plan.gpu_layers, 3);
    assert_eq!(plan.kv_cache_type, KvCacheType::Q8_0);
    assert_eq!(plan.gpu_total_bytes, 4_176_384);
    assert_eq!(plan.host_total_bytes, 487_424);
    assert!(plan
        .llama_cpp_arguments
        .windows(2)
        .any(|pair| pair == ["--override-tensor", "exps=CPU"]));
    // Per token: GPU reads 473600 (dense parts + head) at 1e11; the host reads 2 of 8
    // experts: 417792 / 4 = 104448 at 1e10. 4.736e-6 + 1.04448e-5 = 1.51808e-5 s →
    // 65872.68 tokens/s.
    assert_eq!(plan.decode_speed.gpu_bytes_read_per_token, 473_600);
    assert_eq!(plan.decode_speed.host_bytes_read_per_token, 104_448);
    assert!((plan.decode_speed.tokens_per_second_ceiling - 65_872.68).abs() < 0.1);

    // With room for everything, experts go to the GPU too: 891392 + 1048576 + 3145728.
    let plan = plan_memory(&summary, &one_gpu(1 << 30), &exact_request(1024));
    assert!(!plan.experts_on_host);
    assert_eq!(plan.gpu_total_bytes, 5_085_696);
}

#[test]
fn deepseek2_latent_attention_cache_and_lazy_fim_tokens() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("deepseek2.gguf");
    write_deepseek2(&path);
    let gguf = GgufFile::open(&path).unwrap();
    // 2000 tokens are more than the eager limit: left in the file until asked for.
    assert!(matches!(
        gguf.get("tokenizer.ggml.tokens"),
        Some(hearth_models::gguf::MetadataValue::LazyArray(_))
    ));
    let summary = ModelSummary::from_gguf(&gguf).unwrap();
    // Per layer elements: norms 256 + 64 + 256, q 98304, kv_a 24576, k_b 16384, v_b 16384,
    // o 65536, ffn 3 × 131072 = 614976; × 3 = 1844928; token_embd 512000, output_norm 256,
    // output 512000: 2869184.
    assert_eq!(summary.parameter_count, 2_869_184);
    // Per layer bytes: norms 1024 + 256 + 1024, q 3072 × 34 = 104448, kv_a 768 × 34 = 26112,
    // k_b 512 × 34 = 17408, v_b 17408, o 2048 × 34 = 69632, gate/up 512 × 144 = 73728 each,
    // down 512 × 210 = 107520: 492288; × 3 = 1476864. token_embd 16000 × 34 = 544000,
    // output_norm 1024, output 2000 × 210 = 420000: 2441888.
    assert_eq!(summary.tensor_data_bytes, 2_441_888);
    let usage: Vec<(GgmlType, usize, u64)> = summary
        .tensor_types
        .iter()
        .map(|usage| (usage.ggml_type, usage.tensor_count, usage.bytes))
        .collect();
    assert_eq!(
        usage,
        vec![
            (GgmlType::Q8_0, 16, 1_249_024), // 3 × 235008 + 544000
            (GgmlType::Q6_K, 4, 742_560),    // 3 × 107520 + 420000
            (GgmlType::Q4_K, 6, 442_368),    // 6 × 73728
            (GgmlType::F32, 10, 7_936),      // 3 × 2304 + 1024
        ]
    );
    let latent = summary.latent_attention.as_ref().unwrap();
    assert_eq!(latent.kv_lora_rank, 64);
    assert_eq!(latent.rope_dimension, 32);
    assert_eq!(latent.cache_elements_per_token_per_layer(), 96);
    // MLA cache: 2048 tokens × 3 layers × (64 + 32) × 2 bytes = 1179648. (The standard
    // formula would give 2048 × 3 × 1 × (96 + 64) × 2 = 1966080.)
    let shape = KvCacheShape::from_summary(&summary);
    assert!(shape.latent_attention);
    assert_eq!(shape.total_bytes(2048, KvCacheType::F16), 1_179_648);
    // q8_0: 96 elements = 3 blocks × 34 = 102 bytes × 3 layers × 2048 = 626688.
    assert_eq!(shape.total_bytes(2048, KvCacheType::Q8_0), 626_688);

    assert!(summary.has_fim);
    let begin = summary.fim_tokens.prefix.as_ref().unwrap();
    assert_eq!(begin.token_id, 1997);
    assert_eq!(begin.source, FimTokenSource::TokenText);
    assert_eq!(summary.fim_tokens.suffix.as_ref().unwrap().token_id, 1998);
    assert_eq!(summary.fim_tokens.middle.as_ref().unwrap().token_id, 1999);

    let plan = plan_memory(&summary, &one_gpu(1 << 30), &exact_request(2048));
    assert_eq!(plan.kv_cache_gpu_bytes, 1_179_648);
    assert!(plan
        .explanation
        .iter()
        .any(|line| line.contains("latent attention")));
}

#[test]
fn per_layer_kv_head_counts_are_summed_layer_by_layer() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("per-layer.gguf");
    let mut writer = GgufWriter::new();
    writer
        .add_string("general.architecture", "openelm")
        .add_u32("openelm.block_count", 2)
        .add_u32("openelm.embedding_length", 64)
        .add_u32_array("openelm.attention.head_count", &[4, 8])
        .add_u32_array("openelm.attention.head_count_kv", &[4, 1])
        .add_u32("openelm.attention.key_length", 16)
        .add_u32("openelm.attention.value_length", 16)
        .add_tensor("blk.0.attn_norm.weight", &[64], GgmlType::F32)
        .add_tensor("blk.1.attn_norm.weight", &[64], GgmlType::F32);
    writer.write_to_path(&path).unwrap();
    let summary = ModelSummary::open(&path).unwrap();
    assert_eq!(summary.head_count, Some(8));
    assert_eq!(summary.head_count_kv, Some(4));
    assert_eq!(summary.head_count_kv_per_layer, vec![4, 1]);
    // 100 tokens × (4 × 32 + 1 × 32) × 2 bytes = 100 × 160 × 2 = 32000.
    let shape = KvCacheShape::from_summary(&summary);
    assert_eq!(shape.total_bytes(100, KvCacheType::F16), 32_000);
}

#[test]
fn summary_serializes_to_json_for_the_cli() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("moe.gguf");
    write_mixture_of_experts(&path);
    let summary = ModelSummary::open(&path).unwrap();
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["architecture"], "qwen3moe");
    assert_eq!(json["tensor_types"][0]["ggml_type"], "Q8_0");
    assert_eq!(json["mixture_of_experts"]["expert_used_count"], 2);
    let plan = plan_memory(&summary, &one_gpu(1 << 30), &exact_request(1024));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["kv_cache_type"], "f16");
    assert_eq!(json["gpu_layers"], 3);
}

/// Metadata with absurd values must give a plan that says it does not fit, not an overflow
/// panic or a search that never ends.
#[test]
fn absurd_metadata_plans_without_panicking() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("absurd.gguf");
    let mut writer = GgufWriter::new();
    writer
        .add_string("general.architecture", "llama")
        .add_u32("llama.block_count", 100_000)
        .add_u64("llama.embedding_length", u64::MAX)
        .add_u64("llama.feed_forward_length", u64::MAX)
        .add_u64("llama.vocab_size", u64::MAX)
        .add_u64("llama.attention.head_count", u64::MAX)
        .add_u64("llama.attention.head_count_kv", u64::MAX)
        .add_u64("llama.attention.key_length", u64::MAX)
        .add_u64("llama.attention.kv_lora_rank", 0)
        .add_i32("tokenizer.ggml.fim_pre_token_id", -1)
        .add_tensor("blk.99999.attn_norm.weight", &[32], GgmlType::F32);
    writer.write_to_path(&path).unwrap();
    let summary = ModelSummary::open(&path).unwrap();
    assert_eq!(summary.weight_layout.layers.len(), 100_000);
    assert!(summary.fim_tokens.prefix.is_none());
    let plan = plan_memory(&summary, &one_gpu(24 << 30), &exact_request(4096));
    assert!(!plan.fits);
    assert_eq!(plan.gpu_layers, 0);
    let report = hearth_models::doctor_report(Some(&path), 4096, &one_gpu(24 << 30));
    assert!(report.to_string().contains("does not fit"));
}
