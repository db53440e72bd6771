//! The fill-in-the-middle path on the real sidecar: tiny llama models written by
//! `tests/fixtures/models/make_tiny_models.py` (one per FIM token family) are loaded by llama.cpp,
//! the handshake reports each family's tokens, the prompt layout is chosen from those tokens, and
//! the sidecar accepts and completes the prompt.

use hearth_completion::{build_fim_prompt, FimFamily, FimFormat, PromptInputs};
use hearth_protocol::*;
use hearth_tests::*;

fn inputs() -> PromptInputs {
    PromptInputs {
        context: vec![hearth_completion::ContextFile {
            path: "shop/models.py".into(),
            text: "class Order:\n    items: list\n".into(),
        }],
        repo_name: "shop".into(),
        file_path: "shop/pricing.py".into(),
        prefix: "def total(order):\n    return ".into(),
        suffix: "\n\ndef other():\n    pass\n".into(),
        comment_prefix: "#".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fim_family_is_read_from_the_vocabulary_and_served() {
    let (_guard, dir) = tiny_models();
    let expected: &[(&str, Option<FimFamily>, &str)] = &[
        ("qwen", Some(FimFamily::Qwen), "<|fim_prefix|>"),
        ("starcoder", Some(FimFamily::StarCoder), "<fim_prefix>"),
        ("deepseek", Some(FimFamily::DeepSeek), "<｜fim▁begin｜>"),
        ("codellama", Some(FimFamily::CodeLlama), "▁<PRE>"),
        ("codestral", Some(FimFamily::Codestral), "[PREFIX]"),
        ("nofim", None, ""),
    ];
    for (name, family, prefix_token) in expected {
        let model = dir.join(format!("{name}.gguf"));
        let sidecar = SidecarProcess::start(&model, &["--ctx-size", "1024", "--parallel", "1"]);
        let client = sidecar.connect("fim test").await;
        let info = client.model().clone();
        assert_eq!(info.architecture, "llama", "{name}");
        let format = FimFormat::from_tokens(&info.fim);
        assert_eq!(
            format.as_ref().map(|f| f.family),
            *family,
            "{name}: {:?}",
            info.fim
        );
        let Some(format) = format else {
            assert!(info.fim.pre.is_none(), "{name}: {:?}", info.fim);
            continue;
        };
        assert_eq!(
            info.fim.pre.as_ref().map(|t| t.text.as_str()),
            Some(*prefix_token),
            "{name}"
        );

        // The family's layout is accepted by the real tokenizer and decodes.
        let prompt = build_fim_prompt(&format, &inputs());
        assert!(
            prompt
                .iter()
                .any(|part| matches!(part, PromptPart::Special(SpecialToken::FimPre))),
            "{name}"
        );
        let params = CompletionParams {
            prompt: prompt.clone(),
            add_bos: true,
            sampling: SamplingParams {
                max_tokens: 4,
                ..Default::default()
            },
            priority: Priority::Interactive,
            stream: false,
            reuse_cache: true,
        };
        let outcome = client.complete(params.clone()).unwrap().finish().await.unwrap();
        assert!(
            outcome.metrics.prompt_tokens > 10,
            "{name}: {:?}",
            outcome.metrics
        );

        // Special tokens are single tokens: the prompt is the text's tokens plus one per special.
        let specials = prompt
            .iter()
            .filter(|part| matches!(part, PromptPart::Special(_)))
            .count() as u32;
        let texts: Vec<String> = prompt
            .iter()
            .filter_map(|part| match part {
                PromptPart::Text(text) => Some(text.clone()),
                _ => None,
            })
            .collect();
        let (counts, _) = client.tokenize(texts, true).await.unwrap();
        let bos = u32::from(info.add_bos);
        assert_eq!(
            outcome.metrics.prompt_tokens,
            counts.iter().sum::<u32>() + specials + bos,
            "{name}"
        );

        // The same prompt again: everything but the last token comes from the cache.
        let again = client.complete(params).unwrap().finish().await.unwrap();
        assert_eq!(again.metrics.evaluated_tokens, 1, "{name}: {:?}", again.metrics);
    }
}
