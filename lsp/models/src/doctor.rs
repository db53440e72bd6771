//! `hearth doctor`: the hardware, the model and the memory plan in plain words.

use crate::hardware::{GpuKind, Hardware};
use crate::plan::{format_bytes, plan_memory, MemoryPlan, PlanRequest};
use crate::summary::ModelSummary;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything `hearth doctor` prints (its `Display`) or emits with `--json` (its `Serialize`).
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub hardware: Hardware,
    pub requested_context_length: u32,
    /// `None` when no model was given.
    pub model: Option<DoctorModel>,
}

/// The model part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorModel {
    pub path: PathBuf,
    /// `None` when the file could not be read; see `error`.
    pub summary: Option<ModelSummary>,
    pub error: Option<String>,
    pub plan: Option<MemoryPlan>,
}

/// Reads the model header (if any), and plans memory for `ctx` tokens on `hw`.
pub fn doctor_report(model: Option<&Path>, ctx: u32, hw: &Hardware) -> DoctorReport {
    let model = model.map(|path| match ModelSummary::open(path) {
        Ok(summary) => {
            let plan = plan_memory(&summary, hw, &PlanRequest::with_context_length(ctx));
            DoctorModel {
                path: path.to_path_buf(),
                summary: Some(summary),
                error: None,
                plan: Some(plan),
            }
        }
        Err(error) => DoctorModel {
            path: path.to_path_buf(),
            summary: None,
            error: Some(error.to_string()),
            plan: None,
        },
    });
    DoctorReport {
        hardware: hw.clone(),
        requested_context_length: ctx,
        model,
    }
}

/// `134.5M`, `7.24B`.
pub fn format_parameter_count(count: u64) -> String {
    if count >= 1_000_000_000 {
        format!("{:.2}B", count as f64 / 1e9)
    } else if count >= 1_000_000 {
        format!("{:.1}M", count as f64 / 1e6)
    } else if count >= 1_000 {
        format!("{:.1}K", count as f64 / 1e3)
    } else {
        count.to_string()
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hardware = &self.hardware;
        writeln!(out, "Hardware")?;
        writeln!(
            out,
            "  CPU: {} ({} physical cores, {} logical CPUs)",
            hardware.cpu.model_name.as_deref().unwrap_or("unknown model"),
            hardware.cpu.physical_cores,
            hardware.cpu.logical_cpus
        )?;
        match &hardware.memory {
            Some(memory) => match memory.available_bytes {
                Some(available) => writeln!(
                    out,
                    "  RAM: {} total, {} available",
                    format_bytes(memory.total_bytes),
                    format_bytes(available)
                )?,
                None => writeln!(out, "  RAM: {} total", format_bytes(memory.total_bytes))?,
            },
            None => writeln!(out, "  RAM: unknown")?,
        }
        if hardware.gpus.is_empty() {
            writeln!(out, "  GPU: none found — models run on the CPU")?;
        }
        for (index, gpu) in hardware.gpus.iter().enumerate() {
            let kind = match gpu.kind {
                GpuKind::Nvidia => "NVIDIA",
                GpuKind::AppleUnified => "unified memory shared with the CPU",
            };
            writeln!(
                out,
                "  GPU {index}: {} ({kind}), {} total, {} usable now",
                gpu.name,
                format_bytes(gpu.total_bytes),
                format_bytes(gpu.free_bytes)
            )?;
        }
        for note in &hardware.notes {
            writeln!(out, "  Note: {note}")?;
        }

        let Some(model) = &self.model else {
            writeln!(out)?;
            writeln!(
                out,
                "Model: none selected — pass a model path or name, or run `hearth model pull default`"
            )?;
            return Ok(());
        };
        writeln!(out)?;
        writeln!(out, "Model: {}", model.path.display())?;
        if let Some(error) = &model.error {
            writeln!(out, "  Cannot read it: {error}")?;
        }
        if let Some(summary) = &model.summary {
            write_summary(out, summary)?;
        }
        if let Some(plan) = &model.plan {
            writeln!(out)?;
            writeln!(
                out,
                "Memory plan for {} tokens of context",
                self.requested_context_length
            )?;
            for line in &plan.explanation {
                writeln!(out, "  - {line}")?;
            }
            writeln!(
                out,
                "  GPU: {} (weights {}, KV cache {}, compute {}); RAM: {} (weights {}, KV cache {}, compute {})",
                format_bytes(plan.gpu_total_bytes),
                format_bytes(plan.weights_gpu_bytes),
                format_bytes(plan.kv_cache_gpu_bytes),
                format_bytes(plan.compute_gpu_bytes),
                format_bytes(plan.host_total_bytes),
                format_bytes(plan.weights_host_bytes),
                format_bytes(plan.kv_cache_host_bytes),
                format_bytes(plan.compute_host_bytes)
            )?;
            writeln!(out, "  llama.cpp options: {}", plan.llama_cpp_arguments.join(" "))?;
        }
        Ok(())
    }
}

fn write_summary(out: &mut fmt::Formatter<'_>, summary: &ModelSummary) -> fmt::Result {
    let name = summary.name.as_deref().unwrap_or("unnamed");
    writeln!(
        out,
        "  {name}: {} architecture, {} parameters, {} file (GGUF v{})",
        summary.architecture,
        format_parameter_count(summary.parameter_count),
        format_bytes(summary.file_size_bytes),
        summary.gguf_version
    )?;
    let types: Vec<String> = summary
        .tensor_types
        .iter()
        .map(|usage| {
            format!(
                "{} {} in {} tensor{}",
                usage.ggml_type,
                format_bytes(usage.bytes),
                usage.tensor_count,
                if usage.tensor_count == 1 { "" } else { "s" }
            )
        })
        .collect();
    writeln!(out, "  Tensor types: {}", types.join(", "))?;
    let unknown = || "?".to_string();
    let show = |value: Option<u64>| value.map_or_else(unknown, |value| value.to_string());
    writeln!(
        out,
        "  {} layers, embedding {}, {} attention heads, {} KV heads, head size {}/{} (key/value), trained context {} tokens",
        show(summary.block_count),
        show(summary.embedding_length),
        show(summary.head_count),
        show(summary.head_count_kv),
        show(summary.key_length),
        show(summary.value_length),
        show(summary.context_length)
    )?;
    if let Some(moe) = &summary.mixture_of_experts {
        writeln!(
            out,
            "  Mixture of experts: {} experts, {} used per token, {} shared; expert tensors {}",
            moe.expert_count,
            moe.expert_used_count,
            moe.expert_shared_count,
            format_bytes(moe.expert_tensor_bytes)
        )?;
    }
    if let Some(latent) = &summary.latent_attention {
        writeln!(
            out,
            "  Latent attention (MLA): KV rank {} + RoPE {} = {} cache values per token and layer",
            latent.kv_lora_rank,
            latent.rope_dimension,
            latent.cache_elements_per_token_per_layer()
        )?;
    }
    if let Some(window) = summary.sliding_window {
        writeln!(out, "  Sliding-window attention: {window} tokens")?;
    }
    if summary.has_fim {
        let text = |token: &Option<crate::summary::FimToken>| {
            token
                .as_ref()
                .and_then(|token| token.text.clone())
                .unwrap_or_else(|| "?".to_string())
        };
        writeln!(
            out,
            "  Fill-in-the-middle: yes ({} {} {})",
            text(&summary.fim_tokens.prefix),
            text(&summary.fim_tokens.suffix),
            text(&summary.fim_tokens.middle)
        )?;
    } else {
        writeln!(
            out,
            "  Fill-in-the-middle: no FIM tokens — completions can only use the text before the cursor"
        )?;
    }
    writeln!(
        out,
        "  Chat template: {}",
        if summary.has_chat_template { "yes" } else { "no" }
    )
}
