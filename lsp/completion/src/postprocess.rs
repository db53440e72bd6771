//! From a model's raw output to a suggestion worth showing.
//!
//! [`postprocess`] runs the rules below in order; each is a public function with its own tests:
//! 1. [`normalize_line_endings`] — `\r\n` → `\n` (the result is LF-only; the server converts to
//!    the document's line ending when it inserts).
//! 2. [`keep_first_line`] (single-line mode), or [`cut_at_block_end`] then [`limit_lines`]
//!    (multi-line mode).
//! 3. [`cut_repeated_next_line`] — stop before a line that repeats the file's next line.
//! 4. [`cut_suffix_overlap`] — drop a tail that repeats the start of the suffix.
//! 5. [`cut_closers_the_suffix_has`] — stop before a closing bracket or quote that the text after
//!    the cursor already supplies.
//! 6. [`trim_trailing_whitespace`].
//! 7. [`check_syntax`] — drop the suggestion (or keep only its first line) when inserting it adds
//!    syntax errors, judged by a caller-supplied counter (the server wires tree-sitter in).
//! 8. Nothing but whitespace left → `None`.

use std::borrow::Cow;

use crate::lexical::{opener_of, scan, LexEvent, LexState, LexicalSyntax};
use crate::mode::{ends_with_block_opener, CompletionMode};

/// Counts syntax errors of whole documents, to compare the document before and after insertion.
pub struct SyntaxCheck<'a> {
    /// Number of syntax errors (e.g. tree-sitter ERROR and MISSING nodes) in a whole document.
    pub count_errors: &'a dyn Fn(&str) -> usize,
    /// The document's text before the cursor.
    pub document_before: &'a str,
    /// The document's text after the cursor.
    pub document_after: &'a str,
}

impl std::fmt::Debug for SyntaxCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntaxCheck")
            .field("document_before_len", &self.document_before.len())
            .field("document_after_len", &self.document_after.len())
            .finish_non_exhaustive()
    }
}

/// What [`postprocess`] knows about the place the suggestion goes.
#[derive(Debug)]
pub struct PostprocessContext<'a> {
    /// The cursor line's text before the cursor (from the line start).
    pub prefix_line: &'a str,
    /// The cursor line's text after the cursor (a trailing `\r` is ignored).
    pub suffix_line: &'a str,
    /// The lines after the cursor line, a few are enough (10–20); `\r` endings are ignored.
    pub next_lines: &'a [&'a str],
    /// Columns per tab when comparing indentation.
    pub tab_width: usize,
    pub mode: CompletionMode,
    /// Comments and strings of the document's language.
    pub syntax: LexicalSyntax,
    pub syntax_check: Option<SyntaxCheck<'a>>,
}

impl PostprocessContext<'_> {
    /// The text after the cursor as one string: the rest of the line, then the next lines.
    pub fn suffix_text(&self) -> String {
        let mut text = strip_cr(self.suffix_line).to_owned();
        for line in self.next_lines {
            text.push('\n');
            text.push_str(strip_cr(line));
        }
        text
    }
}

/// The cursor line split at the cursor, and the lines after it: what [`PostprocessContext`]
/// borrows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorLines<'a> {
    pub prefix_line: &'a str,
    pub suffix_line: &'a str,
    pub next_lines: Vec<&'a str>,
}

impl<'a> CursorLines<'a> {
    /// From the document's text before and after the cursor; at most `max_next_lines` lines after
    /// the cursor line (`\r` stays on the lines; the rules ignore it).
    pub fn new(before: &'a str, after: &'a str, max_next_lines: usize) -> CursorLines<'a> {
        let prefix_line = &before[before.rfind('\n').map_or(0, |index| index + 1)..];
        let mut lines = after.split('\n');
        let suffix_line = lines.next().unwrap_or("");
        CursorLines {
            prefix_line,
            suffix_line,
            next_lines: lines.take(max_next_lines).collect(),
        }
    }
}

/// Turns a model's raw output into the suggestion to show, or `None` when nothing useful remains.
pub fn postprocess(raw: &str, ctx: &PostprocessContext<'_>) -> Option<String> {
    let normalized = normalize_line_endings(raw);
    let mut text: &str = &normalized;
    if ctx.mode.multiline {
        text = cut_at_block_end(text, ctx.prefix_line, ctx.tab_width);
        text = limit_lines(text, ctx.mode.max_lines);
    } else {
        text = keep_first_line(text);
    }
    text = cut_repeated_next_line(text, ctx.prefix_line, ctx.next_lines);

    let cursor_state = scan(ctx.prefix_line, LexState::Code, &ctx.syntax, |_| {});
    let suffix_text = ctx.suffix_text();
    text = cut_suffix_overlap(text, &suffix_text, cursor_state, &ctx.syntax);
    text = cut_closers_the_suffix_has(text, &suffix_text, cursor_state, &ctx.syntax);

    let keep_final_newline = !strip_cr(ctx.suffix_line).trim().is_empty();
    let trimmed = trim_trailing_whitespace(text, keep_final_newline);
    if trimmed.trim().is_empty() {
        return None;
    }
    let checked = match &ctx.syntax_check {
        Some(check) => check_syntax(&trimmed, check)?,
        None => &trimmed,
    };
    (!checked.trim().is_empty()).then(|| checked.to_owned())
}

fn strip_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// `\r\n` → `\n`.
pub fn normalize_line_endings(raw: &str) -> Cow<'_, str> {
    if raw.contains('\r') {
        Cow::Owned(raw.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(raw)
    }
}

/// The text up to its first newline.
pub fn keep_first_line(text: &str) -> &str {
    text.split('\n').next().unwrap_or(text)
}

/// At most `max_lines` lines (the last one without its newline).
pub fn limit_lines(text: &str, max_lines: usize) -> &str {
    match text.match_indices('\n').nth(max_lines.max(1) - 1) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// Leading whitespace width in columns (tabs advance to the next multiple of `tab_width`).
pub fn indent_width(line: &str, tab_width: usize) -> usize {
    let tab_width = tab_width.max(1);
    let mut column = 0;
    for ch in line.chars() {
        match ch {
            ' ' => column += 1,
            '\t' => column += tab_width - column % tab_width,
            _ => break,
        }
    }
    column
}

fn first_word(trimmed: &str) -> &str {
    let end = trimmed
        .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
        .unwrap_or(trimmed.len());
    &trimmed[..end]
}

/// A line that closes a block: `}`, `)`, `]`, `end`, `fi`, `done`, `esac`, `</tag>`…
pub fn is_block_closer_line(trimmed: &str) -> bool {
    trimmed.starts_with(['}', ')', ']'])
        || trimmed.starts_with("</")
        || matches!(
            first_word(trimmed),
            "end"
                | "fi"
                | "done"
                | "esac"
                | "until"
                | "endif"
                | "endfor"
                | "endwhile"
                | "endfunction"
                | "wend"
        )
}

/// A line that continues the block structure at the opener's indentation: a closer, or
/// `else`, `elif`, `except`, `catch`, `case`…
pub fn is_continuation_line(trimmed: &str) -> bool {
    is_block_closer_line(trimmed)
        || matches!(
            first_word(trimmed),
            "else"
                | "elif"
                | "elsif"
                | "elseif"
                | "except"
                | "finally"
                | "catch"
                | "rescue"
                | "ensure"
                | "when"
                | "case"
                | "default"
                | "in"
        )
}

/// A line with nothing but closers: `}`, `});`, `end`, `fi`.
fn is_closing_only_line(trimmed: &str) -> bool {
    let core = trimmed.trim_end_matches([';', ',']);
    !core.is_empty()
        && (core
            .chars()
            .all(|ch| matches!(ch, ')' | ']' | '}' | ';' | ',' | ' '))
            || (is_block_closer_line(core) && first_word(core) == core))
}

/// Multi-line: stops where the suggestion leaves the block it is writing.
///
/// The base indentation is the cursor line's (or, when the cursor line is blank, the first
/// non-blank suggested line's, counting the whitespace before the cursor). After the first line:
/// - deeper lines are the body: kept;
/// - a line below the base ends the block: a closer line (`}`, `end`) is kept as the last line,
///   anything else is cut with what follows;
/// - a line at the base after the cursor line opened a block (`if x {|`) is kept only when it
///   continues the block (`} else {`, `else:`, `case`), and is the last line unless it opens
///   again; after the suggestion went deeper and came back, a new statement at the base is cut.
pub fn cut_at_block_end<'t>(text: &'t str, prefix_line: &str, tab_width: usize) -> &'t str {
    let prefix_blank = prefix_line.trim().is_empty();
    let opened_block = !prefix_blank && ends_with_block_opener(prefix_line);
    let mut base = if prefix_blank {
        None
    } else {
        Some(indent_width(prefix_line, tab_width))
    };
    let mut went_deeper = false;
    let mut line_start = 0;
    for (index, line) in text.split('\n').enumerate() {
        let this_start = line_start;
        let this_end = this_start + line.len();
        line_start = this_end + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let indent = if index == 0 && prefix_blank {
            indent_width(&format!("{prefix_line}{line}"), tab_width)
        } else {
            indent_width(line, tab_width)
        };
        let Some(base) = base else {
            base = Some(indent);
            continue;
        };
        if index == 0 {
            continue;
        }
        let cut_before = &text[..this_start.saturating_sub(1)];
        let keep_through = &text[..this_end];
        if indent > base {
            went_deeper = true;
        } else if indent < base {
            return if is_block_closer_line(trimmed) {
                keep_through
            } else {
                cut_before
            };
        } else if opened_block || went_deeper {
            if !is_continuation_line(trimmed) {
                return cut_before;
            }
            if opened_block && !ends_with_block_opener(trimmed) {
                return keep_through;
            }
        }
    }
    text
}

/// Stops before the first suggested line that equals the file's next non-blank line (after
/// trimming): the model started to repeat what follows. The first suggested line counts only
/// when the cursor line is blank before the cursor (otherwise it is the end of a line, not a
/// line). Lines of closers only (`}`, `end`) are left to [`cut_closers_the_suffix_has`], which
/// knows whether they are needed.
pub fn cut_repeated_next_line<'t>(text: &'t str, prefix_line: &str, next_lines: &[&str]) -> &'t str {
    let Some(next) = next_lines
        .iter()
        .map(|line| strip_cr(line).trim())
        .find(|line| !line.is_empty())
    else {
        return text;
    };
    if is_closing_only_line(next) {
        return text;
    }
    let mut line_start = 0;
    for (index, line) in text.split('\n').enumerate() {
        let this_start = line_start;
        line_start += line.len() + 1;
        if index == 0 && !prefix_line.trim().is_empty() {
            continue;
        }
        if line.trim() == next {
            return &text[..this_start.saturating_sub(1)];
        }
    }
    text
}

/// A closing bracket or quote found by [`closers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Closer {
    byte_offset: usize,
    /// `)`, `]`, `}` or the quote character.
    kind: char,
    /// Closes something opened within the same text (rather than before it).
    matched: bool,
}

/// Every closing bracket and string-closing quote in `text`, scanned from `start`.
fn closers(text: &str, start: LexState, syntax: &LexicalSyntax) -> Vec<Closer> {
    let mut stack: Vec<char> = Vec::new();
    let mut string_opened_here = false;
    let mut found = Vec::new();
    scan(text, start, syntax, |event| match event {
        LexEvent::Open(ch, _) => stack.push(ch),
        LexEvent::Close(ch, byte_offset) => {
            let opener = opener_of(ch);
            let matched = match stack.iter().rposition(|&open| Some(open) == opener) {
                Some(position) => {
                    stack.truncate(position);
                    true
                }
                None => false,
            };
            found.push(Closer {
                byte_offset,
                kind: ch,
                matched,
            });
        }
        LexEvent::QuoteOpen(_, _) => string_opened_here = true,
        LexEvent::QuoteClose(quote, byte_offset) => {
            found.push(Closer {
                byte_offset,
                kind: quote,
                matched: string_opened_here,
            });
            string_opened_here = false;
        }
        LexEvent::CommentStart(_) | LexEvent::CommentEnd(_) => {}
    });
    found
}

/// Drops the longest tail of `text` that equals the start of `suffix_text` (the text after the
/// cursor): `foo(|)` + `a, b)` → `a, b`. An overlap is ignored when it is whitespace only, a
/// single letter or digit, or when it contains a bracket or quote that closes something the
/// suggestion itself opened (`foo(|)` + `bar()` stays `bar()`).
pub fn cut_suffix_overlap<'t>(
    text: &'t str,
    suffix_text: &str,
    cursor_state: LexState,
    syntax: &LexicalSyntax,
) -> &'t str {
    let longest = text.len().min(suffix_text.len());
    if longest == 0 {
        return text;
    }
    let own_closers: Vec<usize> = closers(text, cursor_state, syntax)
        .into_iter()
        .filter(|c| c.matched)
        .map(|c| c.byte_offset)
        .collect();
    for overlap_len in (1..=longest).rev() {
        let cut = text.len() - overlap_len;
        if !text.is_char_boundary(cut) || !suffix_text.is_char_boundary(overlap_len) {
            continue;
        }
        let overlap = &suffix_text[..overlap_len];
        if !text.ends_with(overlap) || overlap.trim().is_empty() {
            continue;
        }
        let mut chars = overlap.chars();
        if let (Some(only), None) = (chars.next(), chars.next()) {
            if only.is_alphanumeric() || only == '_' {
                continue;
            }
        }
        if own_closers.iter().any(|&offset| offset >= cut) {
            continue;
        }
        return &text[..cut];
    }
    text
}

/// Stops before the first closing bracket or quote of `text` that closes something opened before
/// the cursor when `suffix_text` closes that same thing already: `foo(|)` + `a, b);` → `a, b`,
/// and at the end of a body whose `}` follows, the suggested `}` goes.
///
/// The suggestion's unmatched closers are compared in order with the suffix's unmatched closers:
/// a suggested `)` that the suffix does not supply (its first unmatched closer is `}`) is kept.
/// Brackets and quotes in strings and comments do not count (see [`crate::lexical`]).
pub fn cut_closers_the_suffix_has<'t>(
    text: &'t str,
    suffix_text: &str,
    cursor_state: LexState,
    syntax: &LexicalSyntax,
) -> &'t str {
    let suffix_closers: Vec<char> = closers(suffix_text, cursor_state, syntax)
        .into_iter()
        .filter(|c| !c.matched)
        .map(|c| c.kind)
        .collect();
    let Some(&first_needed) = suffix_closers.first() else {
        return text;
    };
    for closer in closers(text, cursor_state, syntax) {
        if !closer.matched && closer.kind == first_needed {
            return &text[..closer.byte_offset];
        }
    }
    text
}

/// Trims spaces and tabs at every line end and all trailing whitespace. With
/// `keep_final_newline` (text follows the cursor on its line), a trailing line break and the
/// indentation after it are kept, so that the rest of the line lands on its own line.
pub fn trim_trailing_whitespace(text: &str, keep_final_newline: bool) -> String {
    let trimmed_end = text.trim_end();
    let tail = &text[trimmed_end.len()..];
    let mut out: String = trimmed_end
        .split('\n')
        .map(|line| line.trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    if keep_final_newline {
        if let Some(newline) = tail.rfind('\n') {
            out.push_str(&tail[newline..]);
        }
    }
    out
}

/// Keeps `text` when inserting it does not add syntax errors; otherwise its first line when that
/// one is clean; otherwise `None`.
pub fn check_syntax<'t>(text: &'t str, check: &SyntaxCheck<'_>) -> Option<&'t str> {
    let count_with = |inserted: &str| {
        let mut document =
            String::with_capacity(check.document_before.len() + inserted.len() + check.document_after.len());
        document.push_str(check.document_before);
        document.push_str(inserted);
        document.push_str(check.document_after);
        (check.count_errors)(&document)
    };
    let errors_before = count_with("");
    if count_with(text) <= errors_before {
        return Some(text);
    }
    let first_line = keep_first_line(text).trim_end();
    if first_line.len() < text.len()
        && !first_line.trim().is_empty()
        && count_with(first_line) <= errors_before
    {
        return Some(first_line);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::{completion_mode, ModeConfig};

    fn c_like() -> LexicalSyntax {
        LexicalSyntax::C_LIKE
    }

    #[test]
    fn normalize_and_first_line_and_limit() {
        assert_eq!(normalize_line_endings("a\r\nb\r\n"), "a\nb\n");
        assert!(matches!(normalize_line_endings("a\nb"), Cow::Borrowed(_)));
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("abc", "abc"),
            ("abc\ndef", "abc"),
            ("\nabc", ""),
            ("😀\n", "😀"),
        ];
        for (text, expected) in cases {
            assert_eq!(keep_first_line(text), *expected, "{text:?}");
        }
        let cases: &[(&str, usize, &str)] = &[
            ("a\nb\nc", 2, "a\nb"),
            ("a\nb\nc", 3, "a\nb\nc"),
            ("a\nb\nc", 0, "a"),
            ("a\nb\n", 2, "a\nb"),
            ("", 3, ""),
        ];
        for (text, max, expected) in cases {
            assert_eq!(limit_lines(text, *max), *expected, "{text:?} {max}");
        }
    }

    #[test]
    fn indent_width_cases() {
        let cases: &[(&str, usize, usize)] = &[
            ("", 4, 0),
            ("x", 4, 0),
            ("    x", 4, 4),
            ("\tx", 4, 4),
            ("  \tx", 4, 4),
            ("\t  x", 8, 10),
            ("\t", 0, 1),
        ];
        for (line, tab, expected) in cases {
            assert_eq!(indent_width(line, *tab), *expected, "{line:?}");
        }
    }

    #[test]
    fn block_end_cases() {
        let cases: &[(&str, &str, &str)] = &[
            // (prefix line, suggestion, kept)
            // Opened a block: the body, then its closer, and nothing after.
            ("fn f() {", "\n    body();\n}\n\nfn g() {}", "\n    body();\n}"),
            (
                "    if x {",
                "\n        y();\n    } else {\n        z();\n    }\n    w();",
                "\n        y();\n    } else {\n        z();\n    }",
            ),
            (
                "def f(x):",
                "\n    return x\n\ndef g():\n    pass",
                "\n    return x\n",
            ),
            (
                "    if x:",
                "\n        a()\n    else:\n        b()\n    c()",
                "\n        a()\n    else:\n        b()",
            ),
            ("if x then", "\n  y()\nend\nz()", "\n  y()\nend"),
            (
                "switch x {",
                "\ncase 1:\n    a()\ndefault:\n    b()\n}\nnext()",
                "\ncase 1:\n    a()\ndefault:\n    b()\n}",
            ),
            // A body line at the opener's indentation: nothing useful.
            ("def f():", "\nreturn 1", ""),
            // Blank cursor line inside a body: siblings stay, a dedent ends it.
            ("    ", "a = 1\n    b = 2\nc = 3", "a = 1\n    b = 2"),
            ("    ", "a = 1\n}\nfn g() {}", "a = 1\n}"),
            (
                "",
                "    a = 1\n    return a\n\ndef g():",
                "    a = 1\n    return a\n",
            ),
            // Blank cursor line: a whole block, then stop at the next statement.
            (
                "",
                "def f():\n    return 1\n\ndef g():\n    pass",
                "def f():\n    return 1\n",
            ),
            ("  ", "if (x) {\n    y();\n  }\n  z();", "if (x) {\n    y();\n  }"),
            // Leading blank suggested line: the first real line sets the base.
            ("    ", "\n    a = 1\n    b = 2\nc", "\n    a = 1\n    b = 2"),
            // Tabs.
            ("\tif x {", "\n\t\ty()\n\t}\n\tz()", "\n\t\ty()\n\t}"),
            // Nothing to cut.
            ("let x = ", "1;", "1;"),
            ("", "", ""),
            ("    ", "😀\n    漢字\nend", "😀\n    漢字\nend"),
        ];
        for (prefix_line, text, expected) in cases {
            assert_eq!(
                cut_at_block_end(text, prefix_line, 4),
                *expected,
                "{prefix_line:?} + {text:?}"
            );
        }
    }

    #[test]
    fn repeated_next_line_cases() {
        let cases: &[(&str, &str, &[&str], &str)] = &[
            // (prefix line, suggestion, next lines, kept)
            ("    ", "a = 1\n    b = 2\n    c = 3", &["", "    b = 2"], "a = 1"),
            ("    ", "b = 2", &["    b = 2"], ""),
            ("    x = ", "1\n    b = 2", &["    b = 2\r"], "1"),
            // The first line completes the cursor line: not a repeat.
            ("    b = ", "2", &["    b = 2"], "2"),
            // Closing-only lines are for the bracket rule.
            ("    ", "y()\n}", &["}"], "y()\n}"),
            ("    ", "y()\nend", &["end"], "y()\nend"),
            ("    ", "a()\nb()", &[], "a()\nb()"),
            ("    ", "a()\nb()", &["", "  "], "a()\nb()"),
            ("", "漢字\n😀", &["😀"], "漢字"),
        ];
        for (prefix_line, text, next_lines, expected) in cases {
            assert_eq!(
                cut_repeated_next_line(text, prefix_line, next_lines),
                *expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn suffix_overlap_cases() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // (prefix line, suggestion, suffix text, kept)
            ("foo(", "a, b)", ")", "a, b"),
            ("foo(", "a, b);", ");\nnext();", "a, b"),
            ("print(\"", "hello\")", "\")", "hello"),
            ("x", " = 5;", " = 5;", ""),
            ("let y", " = x; // y", " = x;", " = x; // y"),
            // The suggestion's own closing bracket is not the suffix's.
            ("foo(", "bar()", ")", "bar()"),
            ("foo(", "[1, 2]", "]", "[1, 2]"),
            ("s = ", "\"a\"", "\"", "\"a\""),
            // Whitespace and single-letter overlaps are ignored.
            ("x = ", "1 ", " ", "1 "),
            ("x = ", "ab", "b", "ab"),
            // Overlap spanning lines: the model began to rewrite the next line.
            ("    ", "a()\n    b(", "\n    b()", "a()"),
            ("", "", ")", ""),
            ("x(", "😀)", ")", "😀"),
            // The whole suggestion is the suffix.
            ("x(", "漢)", "漢)", ""),
        ];
        for (prefix_line, text, suffix_text, expected) in cases {
            let state = scan(prefix_line, LexState::Code, &c_like(), |_| {});
            assert_eq!(
                cut_suffix_overlap(text, suffix_text, state, &c_like()),
                *expected,
                "{text:?} / {suffix_text:?}"
            );
        }
    }

    #[test]
    fn closers_the_suffix_has_cases() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // (prefix line, suggestion, suffix text, kept)
            ("foo(", "a, b);", ")", "a, b"),
            ("foo(", "a, b) + c(d)", ")", "a, b"),
            // The suffix does not close the paren: the suggestion must.
            ("foo(", "a, b);", "\n}", "a, b);"),
            // The suffix closes the brace, not the paren: keep `)`, drop `}`.
            ("    foo(", "a);\n}", "\n}", "a);\n"),
            ("    ", "return 1;\n}", "\n}\n", "return 1;\n"),
            ("    ", "return 1;\n}", "\nfn g() {\n}", "return 1;\n}"),
            // Brackets in strings and comments do not count.
            ("foo(", "\")\" + x", ")", "\")\" + x"),
            ("foo(", "x // )", ")", "x // )"),
            // Inside a string before the cursor: its closing quote is the suffix's.
            ("print(\"", "hi\" + name)", "\")", "hi"),
            // Nested and matched inside the suggestion.
            ("foo(", "bar(1), [2]", ")", "bar(1), [2]"),
            ("", "x", "", "x"),
            ("f(", "😀)", ")", "😀"),
        ];
        for (prefix_line, text, suffix_text, expected) in cases {
            let state = scan(prefix_line, LexState::Code, &c_like(), |_| {});
            assert_eq!(
                cut_closers_the_suffix_has(text, suffix_text, state, &c_like()),
                *expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn trim_cases() {
        let cases: &[(&str, bool, &str)] = &[
            ("a  \nb\t\n\n", false, "a\nb"),
            ("a  \nb\t\n\n", true, "a\nb\n"),
            ("\n    y();\n    ", true, "\n    y();\n    "),
            ("\n    y();\n    ", false, "\n    y();"),
            ("x ", true, "x"),
            ("   ", false, ""),
            ("漢字 \u{3000}", false, "漢字"),
        ];
        for (text, keep, expected) in cases {
            assert_eq!(trim_trailing_whitespace(text, *keep), *expected, "{text:?}");
        }
    }

    /// A toy counter: unmatched brackets. Real servers pass tree-sitter's count.
    fn bracket_errors(document: &str) -> usize {
        let mut depth: Vec<char> = Vec::new();
        let mut errors = 0;
        for ch in document.chars() {
            match ch {
                '(' | '[' | '{' => depth.push(ch),
                ')' | ']' | '}' => errors += usize::from(depth.pop() != opener_of(ch)),
                _ => {}
            }
        }
        errors + depth.len()
    }

    #[test]
    fn syntax_check_cases() {
        let counter: &dyn Fn(&str) -> usize = &bracket_errors;
        let check = SyntaxCheck {
            count_errors: counter,
            document_before: "fn f() {\n    ",
            document_after: "\n}\n",
        };
        assert_eq!(check_syntax("g(1);", &check), Some("g(1);"));
        assert_eq!(check_syntax("g(1;", &check), None);
        assert_eq!(check_syntax("g(1);\n}", &check), Some("g(1);"));
        assert_eq!(check_syntax("\n}", &check), None);
        // A suggestion that fixes errors is fine.
        let broken = SyntaxCheck {
            count_errors: counter,
            document_before: "f(",
            document_after: "",
        };
        assert_eq!(check_syntax("x)", &broken), Some("x)"));
        assert_eq!(check_syntax("x", &broken), Some("x"));
    }

    #[test]
    fn cursor_lines_cases() {
        let lines = CursorLines::new("a\nbc", "de\r\nf\ng\nh", 2);
        assert_eq!(
            lines,
            CursorLines {
                prefix_line: "bc",
                suffix_line: "de\r",
                next_lines: vec!["f", "g"]
            }
        );
        assert_eq!(
            CursorLines::new("", "", 3),
            CursorLines {
                prefix_line: "",
                suffix_line: "",
                next_lines: vec![]
            }
        );
        let lines = CursorLines::new("😀\n漢", "字\n", 3);
        assert_eq!(
            (lines.prefix_line, lines.suffix_line, lines.next_lines),
            ("漢", "字", vec![""])
        );
    }

    /// Runs [`postprocess`] at the `$0` cursor of `document`, in the mode the cursor line gets.
    fn run(document: &str, raw: &str, multiline: Option<bool>, syntax_check: bool) -> Option<String> {
        let (before, after) = document.split_once("$0").expect("cursor marker");
        let CursorLines {
            prefix_line,
            suffix_line,
            next_lines,
        } = CursorLines::new(before, after, 10);
        let mode = match multiline {
            None => completion_mode(
                prefix_line,
                suffix_line,
                &LexicalSyntax::C_LIKE,
                &ModeConfig::default(),
            )
            .expect("a mode"),
            Some(true) => CompletionMode::multi_line(8),
            Some(false) => CompletionMode::SINGLE_LINE,
        };
        let counter: &dyn Fn(&str) -> usize = &bracket_errors;
        let ctx = PostprocessContext {
            prefix_line,
            suffix_line,
            next_lines: &next_lines,
            tab_width: 4,
            mode,
            syntax: LexicalSyntax::C_LIKE,
            syntax_check: syntax_check.then_some(SyntaxCheck {
                count_errors: counter,
                document_before: before,
                document_after: after,
            }),
        };
        postprocess(raw, &ctx)
    }

    #[test]
    fn postprocess_end_to_end() {
        let cases: &[(&str, &str, Option<bool>, Option<&str>)] = &[
            // (document with $0, raw output, forced mode, expected)
            (
                "fn main() {\n    let x = $0\n}\n",
                "compute(1);\n    let y = 2;",
                None,
                Some("compute(1);"),
            ),
            ("fn main() {\n    foo($0)\n}\n", "a, b);", None, Some("a, b")),
            ("fn main() {\n    foo($0)\n}\n", "bar()", None, Some("bar()")),
            (
                "fn main() {$0\n}\n",
                "\n    run();\n}\n\nfn other() {}",
                None,
                Some("\n    run();"),
            ),
            (
                "fn main() {$0}\n",
                "\n    run();\n}",
                None,
                Some("\n    run();\n"),
            ),
            (
                "fn main() {\n    $0\n    done();\n}\n",
                "start();\n    done();\n}",
                None,
                Some("start();"),
            ),
            ("fn main() {\n    $0\n}\n", "   \n\n", None, None),
            ("fn main() {\n    $0\n}\n", "", None, None),
            (
                "fn main() {\n    $0\n}\n",
                "\r\n    a();\r\n    b();\r\n}",
                None,
                Some("\n    a();\n    b();"),
            ),
            ("let s = \"$0\";\n", "héllo 😀\";", None, Some("héllo 😀")),
            ("let s = \"$0\";\n", "漢字\" + x;", None, Some("漢字")),
            // Single line forced on a block opener: only the (empty) first line → nothing.
            ("fn main() {$0\n}\n", "\n    run();\n}", Some(false), None),
        ];
        for (document, raw, multiline, expected) in cases {
            assert_eq!(
                run(document, raw, *multiline, false).as_deref(),
                *expected,
                "{document:?} + {raw:?}"
            );
        }
    }

    #[test]
    fn postprocess_with_syntax_check() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "fn main() {\n    $0\n}\n",
                "g(1);\n    h(2);",
                Some("g(1);\n    h(2);"),
            ),
            // The second line opens a paren it never closes: only the first line survives.
            ("fn main() {\n    $0\n}\n", "g(1);\n    h(2;", Some("g(1);")),
            ("fn main() {\n    $0\n}\n", "g(1;", None),
            ("fn main() {\n    $0\n}\n", "g(1;\n    h(2);", None),
        ];
        for (document, raw, expected) in cases {
            assert_eq!(
                run(document, raw, None, true).as_deref(),
                *expected,
                "{document:?} + {raw:?}"
            );
        }
    }

    #[test]
    fn postprocess_never_panics_on_odd_input() {
        let documents = [
            "$0",
            "a$0",
            "$0\r\n",
            "😀$0漢",
            "\"$0",
            "/* $0",
            "'$0'",
            "fn f() {$0}",
            "\t$0\t",
        ];
        let raws = [
            "", "\n", "\r\n", "\r", "😀", "\u{200d}", "}}}", "\"\"\"", "'\\", "a\r\nb\r", "\n\n\n}",
            "\t\t\n\t",
        ];
        for document in documents {
            for raw in raws {
                for multiline in [Some(true), Some(false)] {
                    for syntax_check in [false, true] {
                        if let Some(out) = run(document, raw, multiline, syntax_check) {
                            assert!(!out.trim().is_empty());
                        }
                    }
                }
            }
        }
    }
}
