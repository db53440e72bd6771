//! A small lexical scanner: comments, string literals and brackets, line by line.
//!
//! This is deliberately tree-sitter-free so it can run on fragments (one line, a model's raw
//! output, the few lines after the cursor) that are not valid documents. It knows only what
//! [`LexicalSyntax`] tells it.
//!
//! Limits (documented, tested where they bite):
//! - It sees only the text it is given. A string or block comment that started on an earlier line
//!   is invisible unless the caller passes the right starting [`LexState`].
//! - Strings end at a newline, except backtick strings (JS template literals, Go raw strings).
//!   Python's `"""` works on one line by parity (three quotes open, close, open).
//! - Raw strings (`r#"…"#`), regex literals (`/…/`), heredocs and nested block comments are not
//!   understood.
//! - `'` in C-family languages and Rust counts as a char literal only when it looks like one
//!   (`'a'`, `'\n'`), so Rust lifetimes (`'a`) are not strings.

/// What the scanner knows about one language's comments and strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexicalSyntax {
    /// Line comment starters, e.g. `["//"]` or `["#"]`.
    pub line_comments: &'static [&'static str],
    /// Block comment delimiters, e.g. `("/*", "*/")`.
    pub block_comment: Option<(&'static str, &'static str)>,
    /// Characters that always open and close a string literal.
    pub string_quotes: &'static [char],
    /// A quote that only delimits one-character literals (`'a'`); anything else is plain text.
    pub char_quote: Option<char>,
    /// Backslash escapes the next character inside strings.
    pub backslash_escapes: bool,
}

impl LexicalSyntax {
    /// C, C++, Java, C#, Rust, Go, Kotlin, Swift, Scala, Dart, Zig: `//`, `/* */`, `"`, `'x'`.
    pub const C_LIKE: LexicalSyntax = LexicalSyntax {
        line_comments: &["//"],
        block_comment: Some(("/*", "*/")),
        string_quotes: &['"', '`'],
        char_quote: Some('\''),
        backslash_escapes: true,
    };
    /// JavaScript, TypeScript, PHP-ish: `//`, `/* */`, `"`, `'`, `` ` ``.
    pub const JS_LIKE: LexicalSyntax = LexicalSyntax {
        line_comments: &["//"],
        block_comment: Some(("/*", "*/")),
        string_quotes: &['"', '\'', '`'],
        char_quote: None,
        backslash_escapes: true,
    };
    /// Python, Ruby, shell, YAML, TOML, Perl, R, Elixir, Nim: `#`, `"`, `'`.
    pub const HASH: LexicalSyntax = LexicalSyntax {
        line_comments: &["#"],
        block_comment: None,
        string_quotes: &['"', '\''],
        char_quote: None,
        backslash_escapes: true,
    };
    /// Lua, SQL, Haskell, Ada, Elm: `--`, `"`, `'`.
    pub const DOUBLE_DASH: LexicalSyntax = LexicalSyntax {
        line_comments: &["--"],
        block_comment: None,
        string_quotes: &['"', '\''],
        char_quote: None,
        backslash_escapes: true,
    };
    /// HTML, XML, Vue templates: `<!-- -->`, `"`, `'`.
    pub const MARKUP: LexicalSyntax = LexicalSyntax {
        line_comments: &[],
        block_comment: Some(("<!--", "-->")),
        string_quotes: &['"', '\''],
        char_quote: None,
        backslash_escapes: false,
    };
    /// CSS, SCSS, LESS: `/* */` (SCSS/LESS also `//`), `"`, `'`.
    pub const CSS: LexicalSyntax = LexicalSyntax {
        line_comments: &[],
        block_comment: Some(("/*", "*/")),
        string_quotes: &['"', '\''],
        char_quote: None,
        backslash_escapes: true,
    };
    /// JSON and unknown languages: `"` strings only, no comments.
    pub const PLAIN: LexicalSyntax = LexicalSyntax {
        line_comments: &[],
        block_comment: None,
        string_quotes: &['"'],
        char_quote: None,
        backslash_escapes: true,
    };

    /// The syntax for an LSP `languageId` (or a file extension); [`LexicalSyntax::PLAIN`] when
    /// unknown.
    pub fn for_language(language_id: &str) -> LexicalSyntax {
        match language_id {
            "c" | "cpp" | "h" | "hpp" | "cc" | "cxx" | "java" | "csharp" | "cs" | "rust" | "rs" | "go"
            | "kotlin" | "kt" | "swift" | "scala" | "dart" | "zig" | "objective-c" | "objective-cpp" => {
                LexicalSyntax::C_LIKE
            }
            "javascript" | "javascriptreact" | "typescript" | "typescriptreact" | "js" | "jsx" | "ts"
            | "tsx" | "mjs" | "cjs" | "php" | "jsonc" => LexicalSyntax::JS_LIKE,
            "python" | "py" | "ruby" | "rb" | "shellscript" | "bash" | "sh" | "zsh" | "fish" | "yaml"
            | "yml" | "toml" | "perl" | "pl" | "r" | "elixir" | "ex" | "exs" | "nim" | "make"
            | "makefile" | "dockerfile" | "cmake" | "powershell" | "ps1" | "julia" | "jl" => {
                LexicalSyntax::HASH
            }
            "lua" | "sql" | "haskell" | "hs" | "ada" | "elm" => LexicalSyntax::DOUBLE_DASH,
            "html" | "xml" | "vue" | "svelte" | "htm" => LexicalSyntax::MARKUP,
            "css" => LexicalSyntax::CSS,
            "scss" | "less" => LexicalSyntax {
                line_comments: &["//"],
                ..LexicalSyntax::CSS
            },
            _ => LexicalSyntax::PLAIN,
        }
    }
}

/// Where the scanner is after some text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LexState {
    #[default]
    Code,
    /// Inside a string opened by this quote.
    String(char),
    LineComment,
    BlockComment,
}

/// What the scanner reports while walking code (never inside strings or comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexEvent {
    /// `(`, `[` or `{` at this byte offset.
    Open(char, usize),
    /// `)`, `]` or `}` at this byte offset.
    Close(char, usize),
    /// A quote opening a string at this byte offset.
    QuoteOpen(char, usize),
    /// A quote closing a string at this byte offset.
    QuoteClose(char, usize),
    /// A line or block comment starts at this byte offset.
    CommentStart(usize),
    /// A comment ends just before this byte offset (after `*/`, or at the `\n` ending a line
    /// comment).
    CommentEnd(usize),
}

/// The opening bracket for a closing one.
pub fn opener_of(closer: char) -> Option<char> {
    match closer {
        ')' => Some('('),
        ']' => Some('['),
        '}' => Some('{'),
        _ => None,
    }
}

/// Walks `text` from `state`, calling `on_event` for brackets and string quotes in code, and
/// returns the state at the end.
pub fn scan(
    text: &str,
    mut state: LexState,
    syntax: &LexicalSyntax,
    mut on_event: impl FnMut(LexEvent),
) -> LexState {
    let mut byte_offset = 0;
    while byte_offset < text.len() {
        let rest = &text[byte_offset..];
        let Some(ch) = rest.chars().next() else { break };
        let ch_len = ch.len_utf8();
        match state {
            LexState::LineComment => {
                if ch == '\n' {
                    on_event(LexEvent::CommentEnd(byte_offset));
                    state = LexState::Code;
                }
            }
            LexState::BlockComment => {
                if let Some((_, end)) = syntax.block_comment {
                    if rest.starts_with(end) {
                        state = LexState::Code;
                        byte_offset += end.len();
                        on_event(LexEvent::CommentEnd(byte_offset));
                        continue;
                    }
                }
            }
            LexState::String(quote) => {
                if syntax.backslash_escapes && ch == '\\' {
                    // Skip the escaped character, whatever its width.
                    let escaped_len = rest[1..].chars().next().map_or(0, char::len_utf8);
                    if rest[1..].starts_with('\n') && quote != '`' {
                        state = LexState::Code;
                    }
                    byte_offset += 1 + escaped_len;
                    continue;
                }
                if ch == quote {
                    on_event(LexEvent::QuoteClose(quote, byte_offset));
                    state = LexState::Code;
                } else if ch == '\n' && quote != '`' {
                    // An unterminated one-line string: recover at the line end.
                    state = LexState::Code;
                }
            }
            LexState::Code => {
                if let Some(start) = syntax
                    .line_comments
                    .iter()
                    .find(|start| rest.starts_with(**start))
                {
                    on_event(LexEvent::CommentStart(byte_offset));
                    state = LexState::LineComment;
                    byte_offset += start.len();
                    continue;
                }
                if let Some((start, _)) = syntax.block_comment {
                    if rest.starts_with(start) {
                        on_event(LexEvent::CommentStart(byte_offset));
                        state = LexState::BlockComment;
                        byte_offset += start.len();
                        continue;
                    }
                }
                if syntax.string_quotes.contains(&ch) {
                    on_event(LexEvent::QuoteOpen(ch, byte_offset));
                    state = LexState::String(ch);
                } else if Some(ch) == syntax.char_quote {
                    if let Some(literal_len) = char_literal_len(rest, ch, syntax.backslash_escapes) {
                        byte_offset += literal_len;
                        continue;
                    }
                } else if matches!(ch, '(' | '[' | '{') {
                    on_event(LexEvent::Open(ch, byte_offset));
                } else if matches!(ch, ')' | ']' | '}') {
                    on_event(LexEvent::Close(ch, byte_offset));
                }
            }
        }
        byte_offset += ch_len;
    }
    state
}

/// Length in bytes of a char literal (`'a'`, `'\n'`, `'\u{1F600}'`) at the start of `text`, or
/// `None` when the quote is something else (a Rust lifetime, an apostrophe).
fn char_literal_len(text: &str, quote: char, backslash_escapes: bool) -> Option<usize> {
    let mut chars = text.char_indices().skip(1);
    let (_, first) = chars.next()?;
    if first == quote || first == '\n' {
        return None;
    }
    if first == '\\' && backslash_escapes {
        // An escape: the closing quote must come within a short distance, on this line.
        for (index, ch) in chars.take(12) {
            if ch == '\n' {
                return None;
            }
            if ch == quote {
                return Some(index + quote.len_utf8());
            }
        }
        return None;
    }
    let (index, second) = chars.next()?;
    (second == quote).then_some(index + quote.len_utf8())
}

/// `text` without its comments (strings are kept), e.g. to look at how a line of code ends.
pub fn without_comments(text: &str, syntax: &LexicalSyntax) -> String {
    let mut code = String::with_capacity(text.len());
    let mut segment_start = Some(0);
    scan(text, LexState::Code, syntax, |event| match event {
        LexEvent::CommentStart(offset) => {
            if let Some(start) = segment_start.take() {
                code.push_str(&text[start..offset]);
            }
        }
        LexEvent::CommentEnd(offset) => segment_start = Some(offset),
        _ => {}
    });
    if let Some(start) = segment_start {
        code.push_str(&text[start..]);
    }
    code
}

/// Where the cursor sits, lexically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorContext {
    Code,
    String,
    Comment,
}

/// Whether the end of `line_before_cursor` (the text before the cursor on its line) is in code,
/// a string or a comment — a lexical guess that sees this one line only (see the module limits).
/// When the server has a syntax tree, the tree's answer is better; this is the fallback for
/// languages without a grammar and for fragments.
pub fn cursor_context(line_before_cursor: &str, syntax: &LexicalSyntax) -> CursorContext {
    match scan(line_before_cursor, LexState::Code, syntax, |_| {}) {
        LexState::Code => CursorContext::Code,
        LexState::String(_) => CursorContext::String,
        LexState::LineComment | LexState::BlockComment => CursorContext::Comment,
    }
}

/// Shorthand for `cursor_context(..) != CursorContext::Code`.
pub fn cursor_in_string_or_comment(line_before_cursor: &str, syntax: &LexicalSyntax) -> bool {
    cursor_context(line_before_cursor, syntax) != CursorContext::Code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_context_cases() {
        let rust = LexicalSyntax::for_language("rust");
        let python = LexicalSyntax::for_language("python");
        let js = LexicalSyntax::for_language("typescript");
        let html = LexicalSyntax::for_language("html");
        let lua = LexicalSyntax::for_language("lua");
        let cases: &[(&LexicalSyntax, &str, CursorContext)] = &[
            (&rust, "let x = ", CursorContext::Code),
            (&rust, "let x = \"abc", CursorContext::String),
            (&rust, "let x = \"abc\"; ", CursorContext::Code),
            (&rust, "let x = \"a\\\"b", CursorContext::String),
            (&rust, "let x = 1; // note", CursorContext::Comment),
            (&rust, "let url = \"http://x\"; ", CursorContext::Code),
            (&rust, "let url = \"http://", CursorContext::String),
            (&rust, "/* open", CursorContext::Comment),
            (&rust, "/* closed */ x", CursorContext::Code),
            (&rust, "fn f<'a>(x: &'a str) -> ", CursorContext::Code),
            (&rust, "let c = '\"'; let s = ", CursorContext::Code),
            (&rust, "let c = '\\n'; let s = \"", CursorContext::String),
            (&rust, "let emoji = \"😀", CursorContext::String),
            (&rust, "let emoji = '😀'; ", CursorContext::Code),
            (&rust, "let 名前 = \"漢字\"; // 注", CursorContext::Comment),
            (&python, "x = 'it''s", CursorContext::String),
            (&python, "x = \"don't\" ", CursorContext::Code),
            (&python, "    # don't", CursorContext::Comment),
            (&python, "    \"\"\"", CursorContext::String),
            (&python, "    \"\"\"Docstring.\"\"\" ", CursorContext::Code),
            (&python, "print(f\"{x}", CursorContext::String),
            (&js, "const s = `hello ${", CursorContext::String),
            (&js, "const s = 'it", CursorContext::String),
            (&html, "<!-- note", CursorContext::Comment),
            (&html, "<a href=\"x", CursorContext::String),
            (&lua, "local x = 1 -- count", CursorContext::Comment),
            (&LexicalSyntax::PLAIN, "{\"key\": \"va", CursorContext::String),
            (&rust, "", CursorContext::Code),
            (&rust, "\"\\", CursorContext::String),
        ];
        for (syntax, line, expected) in cases {
            assert_eq!(cursor_context(line, syntax), *expected, "line {line:?}");
        }
    }

    #[test]
    fn scan_reports_brackets_outside_strings_and_comments() {
        let mut events = Vec::new();
        let state = scan(
            "f(\"(\", [1]) // }",
            LexState::Code,
            &LexicalSyntax::C_LIKE,
            |event| events.push(event),
        );
        assert_eq!(state, LexState::LineComment);
        assert_eq!(
            events,
            vec![
                LexEvent::Open('(', 1),
                LexEvent::QuoteOpen('"', 2),
                LexEvent::QuoteClose('"', 4),
                LexEvent::Open('[', 7),
                LexEvent::Close(']', 9),
                LexEvent::Close(')', 10),
                LexEvent::CommentStart(12),
            ]
        );
    }

    #[test]
    fn without_comments_cases() {
        let cases: &[(LexicalSyntax, &str, &str)] = &[
            (LexicalSyntax::C_LIKE, "if x {  // note", "if x {  "),
            (LexicalSyntax::C_LIKE, "a /* b */ c /* d", "a  c "),
            (
                LexicalSyntax::C_LIKE,
                "s = \"// not\"; // yes\nnext",
                "s = \"// not\"; \nnext",
            ),
            (LexicalSyntax::HASH, "if x:  # check", "if x:  "),
            (LexicalSyntax::HASH, "# all", ""),
            (LexicalSyntax::MARKUP, "<p><!-- c --></p>", "<p></p>"),
            (LexicalSyntax::PLAIN, "// kept", "// kept"),
            (LexicalSyntax::C_LIKE, "😀 // 漢字", "😀 "),
        ];
        for (syntax, text, expected) in cases {
            assert_eq!(without_comments(text, syntax), *expected, "{text:?}");
        }
    }

    #[test]
    fn one_line_strings_end_at_newline_but_template_literals_do_not() {
        let state = scan("\"open\nx", LexState::Code, &LexicalSyntax::JS_LIKE, |_| {});
        assert_eq!(state, LexState::Code);
        let state = scan("`open\nx", LexState::Code, &LexicalSyntax::JS_LIKE, |_| {});
        assert_eq!(state, LexState::String('`'));
    }

    #[test]
    fn scan_starting_inside_a_string_reports_its_closing_quote() {
        let mut events = Vec::new();
        scan("abc\")", LexState::String('"'), &LexicalSyntax::C_LIKE, |event| {
            events.push(event)
        });
        assert_eq!(
            events,
            vec![LexEvent::QuoteClose('"', 3), LexEvent::Close(')', 4)]
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let inputs = [
            "'",
            "'\\",
            "'\\'",
            "\\",
            "\"\\😀",
            "'😀",
            "/*",
            "*/",
            "<!--",
            "\r\n\"\r\n",
            "'a",
            "'\\u{1F600}'",
        ];
        for syntax in [
            LexicalSyntax::C_LIKE,
            LexicalSyntax::JS_LIKE,
            LexicalSyntax::HASH,
            LexicalSyntax::MARKUP,
        ] {
            for input in inputs {
                for start in [
                    LexState::Code,
                    LexState::String('"'),
                    LexState::BlockComment,
                    LexState::LineComment,
                ] {
                    scan(input, start, &syntax, |_| {});
                }
            }
        }
    }
}
