//! Single-line or multi-line: decided from the text around the cursor.

use crate::lexical::{cursor_context, without_comments, CursorContext, LexicalSyntax};

/// The `multiline` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum MultilineSetting {
    /// Decide from the text around the cursor.
    #[default]
    Auto,
    /// Always multi-line.
    Always,
    /// Always one line.
    Never,
}

/// What to ask the model for and how much of its answer to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompletionMode {
    pub multiline: bool,
    /// Most lines a suggestion may have (1 when single-line).
    pub max_lines: usize,
}

impl CompletionMode {
    pub const SINGLE_LINE: CompletionMode = CompletionMode {
        multiline: false,
        max_lines: 1,
    };

    pub fn multi_line(max_lines: usize) -> CompletionMode {
        CompletionMode {
            multiline: true,
            max_lines: max_lines.max(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModeConfig {
    pub setting: MultilineSetting,
    /// Line limit for multi-line suggestions.
    pub max_lines: usize,
}

impl Default for ModeConfig {
    fn default() -> Self {
        ModeConfig {
            setting: MultilineSetting::Auto,
            max_lines: 8,
        }
    }
}

/// Chooses the mode from the cursor line: `line_before` is its text before the cursor,
/// `line_after` its text after (a trailing `\r` is ignored).
///
/// - `None`: the cursor is in the middle of a word (`fo|o`), where a suggestion would only be
///   noise — whatever the setting.
/// - Multi-line (in `Auto`): the line is empty or whitespace only, or the text before the cursor
///   ends with a block opener (`{`, `(`, `[`, `:`, `=>`, `->`, `do`, `then`, `else`) and nothing
///   but closing brackets, quotes and `;`/`,` follows the cursor (`fn f() {|}`) — except an
///   auto-closed `(|)` or `[|]`, which wants one line of arguments.
/// - Single line otherwise: at the end of a non-empty line, with other text after the cursor, or
///   when the cursor is in a comment or string (by [`cursor_context`]).
///
/// A closed block comment before the cursor is ignored (`if x { /* note */ |` opens a block).
pub fn completion_mode(
    line_before: &str,
    line_after: &str,
    syntax: &LexicalSyntax,
    config: &ModeConfig,
) -> Option<CompletionMode> {
    let after = line_after.trim_end_matches(['\r', '\n']);
    if after.chars().next().is_some_and(is_word_char) {
        return None;
    }
    let multiline = match config.setting {
        MultilineSetting::Always => true,
        MultilineSetting::Never => false,
        MultilineSetting::Auto => {
            let after_is_closers_only = after.chars().all(|ch| ch.is_whitespace() || is_closer_like(ch));
            let in_code = cursor_context(line_before, syntax) == CursorContext::Code
                || line_before.trim_start().is_empty();
            let code_before = without_comments(line_before, syntax);
            let before = code_before.trim_end();
            // `foo(|)` and `[|]` want arguments or items on this line; `{|}` wants a body.
            let inline_pair = !after.trim().is_empty() && before.ends_with(['(', '[']);
            in_code
                && after_is_closers_only
                && !inline_pair
                && (before.is_empty() || ends_with_block_opener(before))
        }
    };
    Some(if multiline {
        CompletionMode::multi_line(config.max_lines)
    } else {
        CompletionMode::SINGLE_LINE
    })
}

fn is_word_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Characters an editor auto-inserts after the cursor or that end a statement.
fn is_closer_like(ch: char) -> bool {
    matches!(ch, ')' | ']' | '}' | '"' | '\'' | '`' | ';' | ',' | '>')
}

/// Whether trimmed `text` ends with something that opens a block or a continuation.
pub fn ends_with_block_opener(text: &str) -> bool {
    let text = text.trim_end();
    if text.ends_with(['{', '(', '[', ':']) || text.ends_with("=>") || text.ends_with("->") {
        return true;
    }
    let last_word_start = text.rfind(|ch: char| !is_word_char(ch)).map_or(0, |index| {
        index + text[index..].chars().next().map_or(1, char::len_utf8)
    });
    matches!(
        &text[last_word_start..],
        "do" | "then" | "else" | "begin" | "repeat"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(mode: Option<CompletionMode>) -> &'static str {
        match mode {
            None => "none",
            Some(mode) if mode.multiline => "multi",
            Some(_) => "single",
        }
    }

    #[test]
    fn auto_mode_cases() {
        let config = ModeConfig::default();
        let cases: &[(&str, &str, &str)] = &[
            // (before cursor, after cursor, expected)
            ("", "", "multi"),
            ("    ", "", "multi"),
            ("\t\t", "\r", "multi"),
            ("fn main() {", "", "multi"),
            ("fn main() {", "}", "multi"),
            ("    if x > 0:", "", "multi"),
            ("def f(a, b):  ", "", "multi"),
            ("items.map(x =>", "", "multi"),
            ("items.forEach(x =>", ")", "multi"),
            ("foo(", ")", "single"),
            ("foo(", "", "multi"),
            ("let xs = [", "];", "single"),
            ("let xs = [", "", "multi"),
            ("5.times do", "", "multi"),
            ("if x then", "", "multi"),
            ("  else", "", "multi"),
            ("match x {", "}", "multi"),
            ("fn f() ->", "", "multi"),
            ("    return x", "", "single"),
            ("    let y = compute(", "x)", "none"),
            ("    total += ", "", "single"),
            ("print(\"", "\")", "single"),
            ("    x = foo(a, ", ")", "single"),
            ("let s = ", " + 1;", "single"),
            ("fo", "o", "none"),
            ("let x = ", "y", "none"),
            ("call(", "_arg)", "none"),
            ("文字", "列", "none"),
            ("x = 😀", "", "single"),
            ("   x", " # note", "single"),
            ("redo", "", "single"),
            ("todo:", "", "multi"),
            // Comments and strings.
            // Typing in a trailing comment: one line of comment.
            ("if (x) {  // note", "", "single"),
            ("if (x) { /* a */ ", "", "multi"),
            ("// TODO:", "", "single"),
            ("    /* list:", "", "single"),
            ("let s = \"{", "\";", "single"),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                describe(completion_mode(before, after, &LexicalSyntax::C_LIKE, &config)),
                *expected,
                "{before:?}|{after:?}"
            );
        }
    }

    #[test]
    fn python_block_openers_and_comments() {
        let python = LexicalSyntax::for_language("python");
        let config = ModeConfig::default();
        let cases: &[(&str, &str, &str)] = &[
            ("    if x:  # check", "", "single"),
            ("    for item in items:", "", "multi"),
            ("    # steps:", "", "single"),
            ("    \"\"\"Args:", "", "single"),
            ("    total = price * 2  # tax", "", "single"),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                describe(completion_mode(before, after, &python, &config)),
                *expected,
                "{before:?}"
            );
        }
    }

    #[test]
    fn settings_override_auto_but_not_mid_word() {
        let always = ModeConfig {
            setting: MultilineSetting::Always,
            max_lines: 5,
        };
        let never = ModeConfig {
            setting: MultilineSetting::Never,
            max_lines: 5,
        };
        assert_eq!(
            completion_mode("    return x", "", &LexicalSyntax::C_LIKE, &always),
            Some(CompletionMode {
                multiline: true,
                max_lines: 5
            })
        );
        assert_eq!(
            completion_mode("", "", &LexicalSyntax::C_LIKE, &never),
            Some(CompletionMode::SINGLE_LINE)
        );
        assert_eq!(
            completion_mode("fn f() {", "}", &LexicalSyntax::C_LIKE, &never),
            Some(CompletionMode::SINGLE_LINE)
        );
        assert_eq!(completion_mode("fo", "o", &LexicalSyntax::C_LIKE, &always), None);
        // A zero line limit still allows one line.
        let zero = ModeConfig {
            setting: MultilineSetting::Auto,
            max_lines: 0,
        };
        assert_eq!(
            completion_mode("", "", &LexicalSyntax::C_LIKE, &zero),
            Some(CompletionMode {
                multiline: true,
                max_lines: 1
            })
        );
    }
}
