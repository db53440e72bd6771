//! Fill-in-the-middle prompt layouts, chosen from the model's own vocabulary.
//!
//! The sidecar reports the FIM tokens llama.cpp found in the loaded model (`FimTokens`, from
//! `llama_vocab_fim_*`). llama.cpp finds them from the GGUF keys `tokenizer.ggml.fim_{pre,suf,mid,
//! pad,rep,sep}_token_id` and, when those are missing, by token text (`src/llama-vocab.cpp`,
//! "auto-detect special tokens by text"). We read the token TEXTS to pick the family's layout;
//! file names are never consulted.
//!
//! Layouts (sources):
//! - Qwen2.5-Coder, repo level — Qwen2.5-Coder Technical Report (arXiv:2409.12186), Figure 4:
//!   `<|repo_name|>{repo}\n<|file_sep|>{path}\n{code}…<|file_sep|>{path}\n<|fim_prefix|>{pre}
//!   <|fim_suffix|>{suf}<|fim_middle|>`. llama.cpp's server builds the same shape for any vocab
//!   with FIM_REP/FIM_SEP (`tools/server/server-common.cpp`, `format_prompt_infill`).
//! - StarCoder2, repo level — StarCoder 2 and The Stack v2 (arXiv:2402.19173), p. 16:
//!   `<repo_name>{repo}<file_sep>{path}\n{code}…<file_sep><fim_prefix>{path}\n{pre}<fim_suffix>
//!   {suf}<fim_middle>` (no newline after the repo name; the current path sits inside the prefix).
//! - DeepSeek-Coder — model card: `<｜fim▁begin｜>{pre}<｜fim▁hole｜>{suf}<｜fim▁end｜>` (PSM); its
//!   repository-level example concatenates files under path comments, which is what we do for
//!   context. llama.cpp maps begin/hole/end to FIM_PRE/SUF/MID.
//! - CodeLlama — facebookresearch/codellama `llama/generation.py` (`infilling_prompt_tokens`):
//!   `<PRE> {pre} <SUF>{suf} <MID>`. The spaces before `<SUF>`/`<MID>` are part of the token texts
//!   (`▁<SUF>`, `▁<MID>`); the space before the prefix comes from the SentencePiece tokenizer,
//!   which llama.cpp reproduces by prefixing a space to text that follows a special token
//!   (`tokenize_impl`, `add_space_prefix && is_prev_special`). So we emit the prefix as is.
//! - Codestral / Mistral — mistral-common `encode_fim` (test: `<s>[SUFFIX]return▁a▁+▁b[PREFIX]
//!   ▁def▁f(`): suffix first (SPM), and no `[MIDDLE]` token; generation starts after the prefix.
//!   llama.cpp does not detect `[PREFIX]`/`[SUFFIX]` by text: a Codestral GGUF reports them only
//!   when the converter wrote the `fim_*_token_id` keys (ggml-org/llama.cpp PR #7644).
//! - Anything else with pre/suf/mid: plain PSM `pre {pre} suf {suf} mid`, as llama.cpp's server
//!   does (`format_prompt_infill`).
//!
//! Stability: the part of the prompt that does not change while the user types at one place comes
//! first, so the sidecar can reuse its KV cache for the unchanged token prefix: cross-file context
//! (already ordered most stable → most volatile by the caller), then the current file's path, then
//! the prefix. In suffix-first layouts the suffix leads; it does not change while the user types at
//! one place either (typing inserts before it).

use hearth_protocol::{FimTokens, PromptPart, SpecialToken};

/// Which published FIM layout a vocabulary belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FimFamily {
    /// `<|fim_prefix|>` … Qwen2.5-Coder (and CodeGemma, which shares the texts).
    Qwen,
    /// `<fim_prefix>` … StarCoder, StarCoder2, Granite-Code.
    StarCoder,
    /// `<｜fim▁begin｜>` … DeepSeek-Coder.
    DeepSeek,
    /// `▁<PRE>` … CodeLlama.
    CodeLlama,
    /// `[PREFIX]`, `[SUFFIX]` … Codestral (suffix first, no middle token).
    Codestral,
    /// Any other vocabulary with prefix, suffix and middle tokens.
    Generic,
}

/// How to lay out an infill prompt for one model, derived from its vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FimFormat {
    pub family: FimFamily,
    /// Suffix before prefix (SPM).
    pub suffix_first: bool,
    /// Append the middle token at the end (every family except Codestral).
    pub emit_middle: bool,
    /// The vocabulary has a repository-name token (`FimRep`).
    pub has_repo_token: bool,
    /// The vocabulary has a file-separator token (`FimSep`): context files are laid out
    /// repo-level, each behind the separator, instead of as path comments inside the prefix.
    pub has_file_separator: bool,
}

impl FimFormat {
    /// The layout for a vocabulary, or `None` when it cannot infill (use
    /// [`build_prefix_only_prompt`] then).
    pub fn from_tokens(tokens: &FimTokens) -> Option<FimFormat> {
        let pre = tokens.pre.as_ref()?;
        let suf = tokens.suf.as_ref()?;
        let text_of = |text: &str| text.trim_start_matches('▁').trim().to_owned();
        let pre_text = text_of(&pre.text);
        let suf_text = text_of(&suf.text);
        let has_repo_token = tokens.rep.is_some();
        let has_file_separator = tokens.sep.is_some();
        let psm = |family| FimFormat {
            family,
            suffix_first: false,
            emit_middle: true,
            has_repo_token,
            has_file_separator,
        };

        if pre_text == "[PREFIX]" && suf_text == "[SUFFIX]" {
            // Mistral's FIM never uses [MIDDLE], even when the vocabulary has it.
            return Some(FimFormat {
                family: FimFamily::Codestral,
                suffix_first: true,
                emit_middle: false,
                has_repo_token: false,
                has_file_separator: false,
            });
        }
        // Every other layout ends with the middle token.
        tokens.mid.as_ref()?;
        let family = match pre_text.as_str() {
            "<|fim_prefix|>" => FimFamily::Qwen,
            "<fim_prefix>" => FimFamily::StarCoder,
            "<｜fim▁begin｜>" => FimFamily::DeepSeek,
            "<PRE>" if pre.text.starts_with('▁') => FimFamily::CodeLlama,
            _ => FimFamily::Generic,
        };
        Some(psm(family))
    }

    /// Whether context files go behind file-separator tokens (repo-level) rather than into the
    /// prefix as path-comment blocks.
    pub fn is_repo_level(&self) -> bool {
        self.has_file_separator
    }
}

/// One cross-file context snippet, already selected, ordered and redacted by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Workspace-relative path, `/`-separated.
    pub path: String,
    pub text: String,
}

/// Everything a prompt is built from. All text is used verbatim (no trimming here: see
/// [`clip_prefix_suffix`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromptInputs {
    /// Most stable first; they lead the prompt in this order.
    pub context: Vec<ContextFile>,
    /// Repository name for repo-level formats (e.g. the workspace folder's name).
    pub repo_name: String,
    /// The current file's workspace-relative path.
    pub file_path: String,
    /// Text before the cursor.
    pub prefix: String,
    /// Text after the cursor.
    pub suffix: String,
    /// The current language's line comment (`//`, `#`, `--`); empty for languages without one,
    /// which drops the path comment lines.
    pub comment_prefix: String,
}

/// Collects prompt parts, merging adjacent text so that each `Text` follows a special token.
///
/// This matters for SentencePiece vocabularies: llama.cpp prefixes a space to every text fragment
/// that starts a tokenization or follows a special token, and the sidecar tokenizes each `Text`
/// part separately — two adjacent `Text` parts would get a stray space between them.
#[derive(Debug, Default)]
struct PartsBuilder {
    parts: Vec<PromptPart>,
}

impl PartsBuilder {
    fn special(&mut self, token: SpecialToken) {
        self.parts.push(PromptPart::Special(token));
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(PromptPart::Text(last)) = self.parts.last_mut() {
            last.push_str(text);
        } else {
            self.parts.push(PromptPart::Text(text.to_owned()));
        }
    }

    /// Text that must end with a newline (a file's content before the next separator).
    fn text_line_terminated(&mut self, text: &str) {
        self.text(text);
        if !text.is_empty() && !text.ends_with('\n') {
            self.text("\n");
        }
    }

    fn finish(self) -> Vec<PromptPart> {
        self.parts
    }
}

/// `{comment} path: {path}\n`, or nothing when the language has no line comment.
fn path_comment_line(comment_prefix: &str, path: &str) -> String {
    if comment_prefix.is_empty() {
        String::new()
    } else {
        format!("{comment_prefix} path: {}\n", single_line(path))
    }
}

/// Paths go on one line whatever they contain.
fn single_line(path: &str) -> String {
    path.replace(['\n', '\r'], " ")
}

/// Context files as path-comment blocks: `{comment} path: {path}\n{text}\n\n` each.
fn push_context_blocks(builder: &mut PartsBuilder, inputs: &PromptInputs) {
    for file in &inputs.context {
        builder.text(&path_comment_line(&inputs.comment_prefix, &file.path));
        builder.text_line_terminated(&file.text);
        builder.text("\n");
    }
}

/// The infill prompt for `format`. Context files and paths are `Text` (user content can never
/// become a control token); FIM markers are `Special`.
pub fn build_fim_prompt(format: &FimFormat, inputs: &PromptInputs) -> Vec<PromptPart> {
    let mut builder = PartsBuilder::default();
    if format.suffix_first {
        // [SUFFIX]{suffix}[PREFIX]{context}{path}{prefix}
        builder.special(SpecialToken::FimSuf);
        builder.text(&inputs.suffix);
        builder.special(SpecialToken::FimPre);
        push_context_blocks(&mut builder, inputs);
        builder.text(&path_comment_line(&inputs.comment_prefix, &inputs.file_path));
        builder.text(&inputs.prefix);
        if format.emit_middle {
            builder.special(SpecialToken::FimMid);
        }
        return builder.finish();
    }

    if format.is_repo_level() {
        let starcoder = format.family == FimFamily::StarCoder;
        if format.has_repo_token {
            builder.special(SpecialToken::FimRep);
            builder.text(&single_line(&inputs.repo_name));
            if !starcoder {
                builder.text("\n");
            }
        }
        for file in &inputs.context {
            builder.special(SpecialToken::FimSep);
            builder.text(&single_line(&file.path));
            builder.text("\n");
            builder.text_line_terminated(&file.text);
        }
        builder.special(SpecialToken::FimSep);
        if starcoder {
            builder.special(SpecialToken::FimPre);
            builder.text(&single_line(&inputs.file_path));
            builder.text("\n");
        } else {
            builder.text(&single_line(&inputs.file_path));
            builder.text("\n");
            builder.special(SpecialToken::FimPre);
        }
    } else {
        builder.special(SpecialToken::FimPre);
        push_context_blocks(&mut builder, inputs);
        builder.text(&path_comment_line(&inputs.comment_prefix, &inputs.file_path));
    }
    builder.text(&inputs.prefix);
    builder.special(SpecialToken::FimSuf);
    builder.text(&inputs.suffix);
    if format.emit_middle {
        builder.special(SpecialToken::FimMid);
    }
    builder.finish()
}

/// The infill prompt when the vocabulary can infill, the prefix-only prompt otherwise.
pub fn build_prompt(tokens: &FimTokens, inputs: &PromptInputs) -> Vec<PromptPart> {
    match FimFormat::from_tokens(tokens) {
        Some(format) => build_fim_prompt(&format, inputs),
        None => build_prefix_only_prompt(inputs),
    }
}

/// The prompt for models without FIM tokens (e.g. SmolLM2): context blocks, the current file's
/// path comment, then the prefix. Nothing after the cursor can be shown to such a model.
pub fn build_prefix_only_prompt(inputs: &PromptInputs) -> Vec<PromptPart> {
    let mut builder = PartsBuilder::default();
    push_context_blocks(&mut builder, inputs);
    builder.text(&path_comment_line(&inputs.comment_prefix, &inputs.file_path));
    builder.text(&inputs.prefix);
    builder.finish()
}

/// The prefix and suffix windows around the cursor, as slices of the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClippedText<'a> {
    /// Whole lines from `prefix_start_line` up to the cursor.
    pub prefix: &'a str,
    /// The rest of the cursor line and up to `max_suffix_lines` whole lines after it.
    pub suffix: &'a str,
    /// Zero-based line (counted in `before`) where `prefix` starts.
    pub prefix_start_line: usize,
}

/// How many lines the prefix window's start moves at once: a quarter of the window.
pub fn prefix_chunk_lines(max_prefix_lines: usize) -> usize {
    (max_prefix_lines / 4).max(1)
}

/// Keeps whole lines around the cursor: at most `max_prefix_lines` lines before the cursor line
/// (plus the cursor line itself) and the rest of the cursor line plus at most `max_suffix_lines`
/// lines after it.
///
/// `before` must be the document's whole text before the cursor, so that line numbers are
/// absolute: the prefix window's first line is rounded up to a multiple of
/// [`prefix_chunk_lines`], so it stays put while the user types down a few lines (as llama.vim
/// does with its chunked prefix) and the prompt's tokens keep a stable start. Lines end at `\n`;
/// a `\r` stays with its line.
pub fn clip_prefix_suffix<'a>(
    before: &'a str,
    after: &'a str,
    max_prefix_lines: usize,
    max_suffix_lines: usize,
) -> ClippedText<'a> {
    let cursor_line = before.bytes().filter(|&b| b == b'\n').count();
    let earliest = cursor_line.saturating_sub(max_prefix_lines);
    let chunk = prefix_chunk_lines(max_prefix_lines);
    let prefix_start_line = earliest.div_ceil(chunk).saturating_mul(chunk).min(cursor_line);
    let prefix_start_byte = if prefix_start_line == 0 {
        0
    } else {
        before
            .match_indices('\n')
            .nth(prefix_start_line - 1)
            .map_or(0, |(index, _)| index + 1)
    };

    // The cursor line's rest, then `max_suffix_lines` lines, each with its newline.
    let suffix_end_byte = after
        .match_indices('\n')
        .nth(max_suffix_lines)
        .map_or(after.len(), |(index, _)| index + 1);
    ClippedText {
        prefix: &before[prefix_start_byte..],
        suffix: &after[..suffix_end_byte],
        prefix_start_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};
    use hearth_protocol::TokenInfo;

    fn token(id: i32, text: &str) -> Option<TokenInfo> {
        Some(TokenInfo {
            id,
            text: text.to_owned(),
        })
    }

    /// What llama.cpp reports for the real models (ids from their tokenizer.json / GGUF).
    fn qwen25_coder() -> FimTokens {
        FimTokens {
            pre: token(151659, "<|fim_prefix|>"),
            mid: token(151660, "<|fim_middle|>"),
            suf: token(151661, "<|fim_suffix|>"),
            pad: token(151662, "<|fim_pad|>"),
            rep: token(151663, "<|repo_name|>"),
            sep: token(151664, "<|file_sep|>"),
        }
    }

    /// StarCoder2: llama.cpp detects `<fim_*>` by text, but not `<repo_name>`/`<file_sep>`
    /// (only `<|repo_name|>`, `<reponame>`… and `<|file_sep|>` are in its lists).
    fn starcoder2() -> FimTokens {
        FimTokens {
            pre: token(1, "<fim_prefix>"),
            mid: token(2, "<fim_middle>"),
            suf: token(3, "<fim_suffix>"),
            pad: token(4, "<fim_pad>"),
            rep: None,
            sep: None,
        }
    }

    fn deepseek_coder() -> FimTokens {
        FimTokens {
            pre: token(32016, "<｜fim▁begin｜>"),
            suf: token(32015, "<｜fim▁hole｜>"),
            mid: token(32017, "<｜fim▁end｜>"),
            ..FimTokens::default()
        }
    }

    fn codellama() -> FimTokens {
        FimTokens {
            pre: token(32007, "▁<PRE>"),
            suf: token(32008, "▁<SUF>"),
            mid: token(32009, "▁<MID>"),
            ..FimTokens::default()
        }
    }

    /// A Codestral GGUF converted with the fim keys (ids illustrative: what matters is the text
    /// and that MIDDLE may be absent).
    fn codestral() -> FimTokens {
        FimTokens {
            pre: token(19, "[PREFIX]"),
            suf: token(18, "[SUFFIX]"),
            ..FimTokens::default()
        }
    }

    /// Tiny test models written by `tests/fixtures/models/make_tiny_models.py`: ids are the
    /// positions in their vocabularies (see `FAMILIES` there), all named by `fim_*_token_id` keys.
    /// Checked against llama.cpp 0.1.161's `llama_vocab_fim_*` + `llama_vocab_get_text` on the
    /// generated files.
    fn tiny(family: &str) -> FimTokens {
        match family {
            "qwen" => FimTokens {
                pre: token(259, "<|fim_prefix|>"),
                suf: token(260, "<|fim_suffix|>"),
                mid: token(261, "<|fim_middle|>"),
                pad: token(262, "<|fim_pad|>"),
                rep: token(263, "<|repo_name|>"),
                sep: token(264, "<|file_sep|>"),
            },
            "starcoder" => FimTokens {
                pre: token(259, "<fim_prefix>"),
                suf: token(260, "<fim_suffix>"),
                mid: token(261, "<fim_middle>"),
                pad: token(262, "<fim_pad>"),
                rep: token(263, "<repo_name>"),
                sep: token(264, "<file_sep>"),
            },
            "deepseek" => FimTokens {
                pre: token(259, "<｜fim▁begin｜>"),
                suf: token(260, "<｜fim▁hole｜>"),
                mid: token(261, "<｜fim▁end｜>"),
                ..FimTokens::default()
            },
            "codellama" => FimTokens {
                pre: token(259, "▁<PRE>"),
                suf: token(260, "▁<SUF>"),
                mid: token(261, "▁<MID>"),
                ..FimTokens::default()
            },
            // `[MIDDLE]` (261) is in the vocabulary but has no fim_mid key, as in real Codestral
            // GGUFs: llama.cpp reports no middle token.
            "codestral" => FimTokens {
                pre: token(259, "[PREFIX]"),
                suf: token(260, "[SUFFIX]"),
                ..FimTokens::default()
            },
            _ => FimTokens::default(),
        }
    }

    fn check_format(tokens: FimTokens, expect: Expect) {
        expect.assert_eq(&format!("{:?}", FimFormat::from_tokens(&tokens)));
    }

    #[test]
    fn format_qwen25_coder() {
        check_format(
            qwen25_coder(),
            expect![[
                r#"Some(FimFormat { family: Qwen, suffix_first: false, emit_middle: true, has_repo_token: true, has_file_separator: true })"#
            ]],
        );
    }

    #[test]
    fn format_starcoder2_as_llama_cpp_reports_it() {
        check_format(
            starcoder2(),
            expect![[
                r#"Some(FimFormat { family: StarCoder, suffix_first: false, emit_middle: true, has_repo_token: false, has_file_separator: false })"#
            ]],
        );
    }

    #[test]
    fn format_deepseek_codellama_codestral() {
        check_format(
            deepseek_coder(),
            expect![[
                r#"Some(FimFormat { family: DeepSeek, suffix_first: false, emit_middle: true, has_repo_token: false, has_file_separator: false })"#
            ]],
        );
        check_format(
            codellama(),
            expect![[
                r#"Some(FimFormat { family: CodeLlama, suffix_first: false, emit_middle: true, has_repo_token: false, has_file_separator: false })"#
            ]],
        );
        check_format(
            codestral(),
            expect![[
                r#"Some(FimFormat { family: Codestral, suffix_first: true, emit_middle: false, has_repo_token: false, has_file_separator: false })"#
            ]],
        );
    }

    #[test]
    fn format_of_tiny_models() {
        let cases = [
            ("qwen", Some((FimFamily::Qwen, true))),
            ("starcoder", Some((FimFamily::StarCoder, true))),
            ("deepseek", Some((FimFamily::DeepSeek, false))),
            ("codellama", Some((FimFamily::CodeLlama, false))),
            ("codestral", Some((FimFamily::Codestral, false))),
            ("nofim", None),
        ];
        for (name, expected) in cases {
            let format = FimFormat::from_tokens(&tiny(name));
            assert_eq!(format.map(|f| (f.family, f.is_repo_level())), expected, "{name}");
        }
    }

    #[test]
    fn format_generic_and_missing_tokens() {
        // GLM-4.5 style texts: llama.cpp detects them, we have no family for them.
        let glm = FimTokens {
            pre: token(10, "<|code_prefix|>"),
            suf: token(11, "<|code_suffix|>"),
            mid: token(12, "<|code_middle|>"),
            ..FimTokens::default()
        };
        assert_eq!(
            FimFormat::from_tokens(&glm).map(|f| f.family),
            Some(FimFamily::Generic)
        );
        // A bare `<PRE>` without the SentencePiece space is not CodeLlama's.
        let bare = FimTokens {
            pre: token(1, "<PRE>"),
            suf: token(2, "<SUF>"),
            mid: token(3, "<MID>"),
            ..FimTokens::default()
        };
        assert_eq!(
            FimFormat::from_tokens(&bare).map(|f| f.family),
            Some(FimFamily::Generic)
        );
        // Without a middle token only Codestral can infill.
        let no_mid = FimTokens {
            mid: None,
            ..qwen25_coder()
        };
        assert_eq!(FimFormat::from_tokens(&no_mid), None);
        let no_suf = FimTokens {
            suf: None,
            ..codestral()
        };
        assert_eq!(FimFormat::from_tokens(&no_suf), None);
        assert_eq!(FimFormat::from_tokens(&FimTokens::default()), None);
        // A generic vocabulary with a file separator gets llama.cpp's repo-level layout.
        let generic_sep = FimTokens {
            sep: token(13, "<|sep|>"),
            ..glm
        };
        assert!(FimFormat::from_tokens(&generic_sep).is_some_and(|f| f.is_repo_level()));
    }

    fn inputs() -> PromptInputs {
        PromptInputs {
            context: vec![
                ContextFile {
                    path: "shop/models.py".into(),
                    text: "class Item:\n    price: int\n".into(),
                },
                ContextFile {
                    path: "shop/tax.py".into(),
                    text: "RATE = 0.2".into(),
                },
            ],
            repo_name: "shop".into(),
            file_path: "shop/cart.py".into(),
            prefix: "def total(items):\n    return ".into(),
            suffix: "\n\nprint(total([]))\n".into(),
            comment_prefix: "#".into(),
        }
    }

    /// Renders parts the way a reader checks them: specials as `⟨Name⟩`, text verbatim.
    fn render(parts: &[PromptPart]) -> String {
        parts
            .iter()
            .map(|part| match part {
                PromptPart::Text(text) => text.clone(),
                PromptPart::SpecialText(text) => format!("⟪{text}⟫"),
                PromptPart::Special(token) => format!("⟨{token:?}⟩"),
            })
            .collect()
    }

    fn check_prompt(tokens: FimTokens, inputs: &PromptInputs, expect: Expect) {
        let format = FimFormat::from_tokens(&tokens).expect("format");
        let parts = build_fim_prompt(&format, inputs);
        // Adjacent text parts are always merged.
        assert!(!parts
            .windows(2)
            .any(|w| matches!(w, [PromptPart::Text(_), PromptPart::Text(_)])));
        expect.assert_eq(&render(&parts));
    }

    #[test]
    fn prompt_qwen_repo_level() {
        check_prompt(
            qwen25_coder(),
            &inputs(),
            expect![[r#"
                ⟨FimRep⟩shop
                ⟨FimSep⟩shop/models.py
                class Item:
                    price: int
                ⟨FimSep⟩shop/tax.py
                RATE = 0.2
                ⟨FimSep⟩shop/cart.py
                ⟨FimPre⟩def total(items):
                    return ⟨FimSuf⟩

                print(total([]))
                ⟨FimMid⟩"#]],
        );
    }

    #[test]
    fn prompt_starcoder2_repo_level_when_separator_is_reported() {
        check_prompt(
            tiny("starcoder"),
            &inputs(),
            expect![[r#"
                ⟨FimRep⟩shop⟨FimSep⟩shop/models.py
                class Item:
                    price: int
                ⟨FimSep⟩shop/tax.py
                RATE = 0.2
                ⟨FimSep⟩⟨FimPre⟩shop/cart.py
                def total(items):
                    return ⟨FimSuf⟩

                print(total([]))
                ⟨FimMid⟩"#]],
        );
    }

    #[test]
    fn prompt_starcoder2_without_separator_uses_path_comments() {
        check_prompt(
            starcoder2(),
            &inputs(),
            expect![[r#"
                ⟨FimPre⟩# path: shop/models.py
                class Item:
                    price: int

                # path: shop/tax.py
                RATE = 0.2

                # path: shop/cart.py
                def total(items):
                    return ⟨FimSuf⟩

                print(total([]))
                ⟨FimMid⟩"#]],
        );
    }

    #[test]
    fn prompt_deepseek_and_codellama_are_psm() {
        let inputs = PromptInputs {
            context: vec![],
            ..inputs()
        };
        check_prompt(
            deepseek_coder(),
            &inputs,
            expect![[r#"
                ⟨FimPre⟩# path: shop/cart.py
                def total(items):
                    return ⟨FimSuf⟩

                print(total([]))
                ⟨FimMid⟩"#]],
        );
        check_prompt(
            codellama(),
            &inputs,
            expect![[r#"
                ⟨FimPre⟩# path: shop/cart.py
                def total(items):
                    return ⟨FimSuf⟩

                print(total([]))
                ⟨FimMid⟩"#]],
        );
    }

    #[test]
    fn prompt_codestral_is_suffix_first_without_middle() {
        check_prompt(
            tiny("codestral"),
            &inputs(),
            expect![[r#"
                ⟨FimSuf⟩

                print(total([]))
                ⟨FimPre⟩# path: shop/models.py
                class Item:
                    price: int

                # path: shop/tax.py
                RATE = 0.2

                # path: shop/cart.py
                def total(items):
                    return "#]],
        );
    }

    #[test]
    fn prompt_prefix_only() {
        let parts = build_prefix_only_prompt(&inputs());
        assert_eq!(parts.len(), 1);
        expect![[r#"
            # path: shop/models.py
            class Item:
                price: int

            # path: shop/tax.py
            RATE = 0.2

            # path: shop/cart.py
            def total(items):
                return "#]]
        .assert_eq(&render(&parts));
    }

    #[test]
    fn build_prompt_picks_the_layout() {
        let infill = build_prompt(&qwen25_coder(), &inputs());
        assert_eq!(infill.first(), Some(&PromptPart::Special(SpecialToken::FimRep)));
        let plain = build_prompt(&tiny("nofim"), &inputs());
        assert_eq!(plain, build_prefix_only_prompt(&inputs()));
    }

    #[test]
    fn prompt_without_comment_prefix_or_context() {
        let inputs = PromptInputs {
            context: vec![],
            comment_prefix: String::new(),
            prefix: "{\"a\": ".into(),
            suffix: "}".into(),
            ..inputs()
        };
        assert_eq!(
            build_prefix_only_prompt(&inputs),
            vec![PromptPart::Text("{\"a\": ".into())]
        );
        let parts = build_fim_prompt(&FimFormat::from_tokens(&deepseek_coder()).unwrap(), &inputs);
        expect![[r#"⟨FimPre⟩{"a": ⟨FimSuf⟩}⟨FimMid⟩"#]].assert_eq(&render(&parts));
        // Empty prefix and suffix: no empty text parts.
        let empty = PromptInputs {
            prefix: String::new(),
            suffix: String::new(),
            ..inputs
        };
        let parts = build_fim_prompt(&FimFormat::from_tokens(&deepseek_coder()).unwrap(), &empty);
        assert_eq!(
            parts,
            vec![
                PromptPart::Special(SpecialToken::FimPre),
                PromptPart::Special(SpecialToken::FimSuf),
                PromptPart::Special(SpecialToken::FimMid)
            ]
        );
        assert!(build_prefix_only_prompt(&empty).is_empty());
    }

    #[test]
    fn user_text_that_looks_like_control_tokens_stays_text() {
        let inputs = PromptInputs {
            context: vec![ContextFile {
                path: "a<|file_sep|>\nb".into(),
                text: "<|fim_middle|>".into(),
            }],
            prefix: "x = '<|fim_suffix|>'".into(),
            ..inputs()
        };
        let parts = build_fim_prompt(&FimFormat::from_tokens(&qwen25_coder()).unwrap(), &inputs);
        let specials: Vec<SpecialToken> = parts
            .iter()
            .filter_map(|part| match part {
                PromptPart::Special(token) => Some(*token),
                _ => None,
            })
            .collect();
        use SpecialToken::*;
        assert_eq!(specials, [FimRep, FimSep, FimSep, FimPre, FimSuf, FimMid]);
        assert!(!parts
            .iter()
            .any(|part| matches!(part, PromptPart::SpecialText(_))));
        // The path's newline cannot start a fake line either.
        assert!(render(&parts).contains("⟨FimSep⟩a<|file_sep|> b\n<|fim_middle|>\n"));
    }

    #[test]
    fn context_is_a_stable_prompt_prefix_while_typing() {
        for tokens in [
            qwen25_coder(),
            starcoder2(),
            tiny("starcoder"),
            deepseek_coder(),
            codellama(),
        ] {
            let format = FimFormat::from_tokens(&tokens).unwrap();
            let first = build_fim_prompt(&format, &inputs());
            let typed = PromptInputs {
                prefix: format!("{}sum(", inputs().prefix),
                ..inputs()
            };
            let second = build_fim_prompt(&format, &typed);
            let (a, b) = (render(&first), render(&second));
            let stable = "def total(items):\n    return ";
            let cut = a.find(stable).unwrap() + stable.len();
            assert_eq!(a[..cut], b[..cut], "{format:?}");
        }
        // Suffix-first: the suffix leads and does not change while typing.
        let format = FimFormat::from_tokens(&codestral()).unwrap();
        let a = render(&build_fim_prompt(&format, &inputs()));
        let typed = PromptInputs {
            prefix: format!("{}sum(", inputs().prefix),
            ..inputs()
        };
        let b = render(&build_fim_prompt(&format, &typed));
        assert!(b.starts_with(&a));
    }

    #[test]
    fn clip_keeps_whole_lines_and_a_chunk_aligned_start() {
        let document: String = (0..40).map(|i| format!("line {i}\n")).collect();
        // Cursor in the middle of line 30 ("line 30\n" → after "li").
        let cursor = document.find("line 30").unwrap() + 2;
        let (before, after) = document.split_at(cursor);
        let clipped = clip_prefix_suffix(before, after, 8, 2);
        // Earliest allowed start: 30 - 8 = 22, rounded up to a multiple of 2 → 22.
        assert_eq!(clipped.prefix_start_line, 22);
        assert!(clipped.prefix.starts_with("line 22\n"));
        assert!(clipped.prefix.ends_with("line 29\nli"));
        assert_eq!(clipped.suffix, "ne 30\nline 31\nline 32\n");

        // Moving down one line at a time moves the start only every chunk (2 lines here).
        let starts: Vec<usize> = (28..36)
            .map(|line| {
                let cursor = document.find(&format!("line {line}\n")).unwrap();
                clip_prefix_suffix(&document[..cursor], &document[cursor..], 8, 2).prefix_start_line
            })
            .collect();
        assert_eq!(starts, vec![20, 22, 22, 24, 24, 26, 26, 28]);
        // The window never holds more than max_prefix_lines lines before the cursor line.
        for line in 0..40 {
            let cursor = document.find(&format!("line {line}\n")).unwrap();
            let clipped = clip_prefix_suffix(&document[..cursor], &document[cursor..], 8, 2);
            assert!(clipped.prefix.matches('\n').count() <= 8);
        }
    }

    #[test]
    fn clip_edge_cases() {
        let cases: &[(&str, &str, usize, usize, &str, &str)] = &[
            ("", "", 4, 4, "", ""),
            ("abc", "def", 0, 0, "abc", "def"),
            ("a\nb\nc", "x\ny\nz", 0, 0, "c", "x\n"),
            ("a\nb\nc", "x\ny\nz", 1, 1, "b\nc", "x\ny\n"),
            ("a\nb\nc", "x\ny\nz", 100, 100, "a\nb\nc", "x\ny\nz"),
            ("a\r\nb\r\n", "\r\nz\r\n", 1, 0, "b\r\n", "\r\n"),
            ("😀\n漢字\n", "é\n", 1, 0, "漢字\n", "é\n"),
            ("a\n\n\n", "", 2, 0, "\n\n", ""),
        ];
        for (before, after, max_prefix, max_suffix, prefix, suffix) in cases {
            let clipped = clip_prefix_suffix(before, after, *max_prefix, *max_suffix);
            assert_eq!(
                (clipped.prefix, clipped.suffix),
                (*prefix, *suffix),
                "{before:?} {after:?}"
            );
        }
    }
}
