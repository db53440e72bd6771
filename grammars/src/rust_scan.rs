//! A ctags-style scanner for the outline of Rust files, without tree-sitter.
//!
//! It reads the items of a file (`fn`, `struct`, `enum`, `union`, `trait`, `impl`, `mod`,
//! `const`, `static`, `type`, `macro_rules!`, `use`, `extern` blocks) from a token stream
//! (comments, strings, raw strings, char literals and lifetimes understood by the lexer of
//! `elide.rs`) and gives exactly the definitions and imports that the outline queries find in
//! tree-sitter's syntax tree: the same names, kinds, ranges, bodies, and the same depth limit
//! ([`OUTLINE_MAX_START_DEPTH`]). Function bodies, field lists, macro arguments and constant
//! values are skipped as balanced token groups.
//!
//! Whenever the scanner meets anything it is not sure to read as tree-sitter does (a syntax
//! it does not model, an item inside a nested block, braces in a signature, unbalanced
//! delimiters...), it gives up on the whole file and the caller parses it with tree-sitter.
//! `cargo run --release -p hearth-grammars --example outline_check` compares both on every
//! file of a tree.

use std::ops::Range;

use crate::elide::{is_item_keyword, is_keyword, is_word_start, Lexer, Token};
use crate::extract::{clean_module_text, finish_items, RawItem, OUTLINE_MAX_START_DEPTH};
use crate::{DefinitionKind, ExtractedImport, Outline};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Punct(u8),
    Literal,
}

#[derive(Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

/// The scanner is unsure: the file must be parsed with tree-sitter.
struct Unsure;

type Scan<T> = Result<T, Unsure>;

/// What a skipped group contained.
#[derive(Default, Clone, Copy)]
struct Contents {
    /// An item keyword outside macro arguments and attributes (`fn name`, `use`, ...).
    item_keyword: bool,
    /// A `{` group inside.
    brace: bool,
    /// An item keyword inside a `{` group inside (a block, not a token tree).
    block_item_keyword: bool,
}

/// Where items are being read: changes what `fn f();` and `type T;` are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    /// The file, a module, an impl, a trait, a function body.
    Items,
    /// An `extern "C" { ... }` block.
    Foreign,
}

/// Primitive types: `impl Trait for u32` is not an outline definition.
fn is_primitive_type(word: &[u8]) -> bool {
    matches!(
        word,
        b"u8"
            | b"i8"
            | b"u16"
            | b"i16"
            | b"u32"
            | b"i32"
            | b"u64"
            | b"i64"
            | b"u128"
            | b"i128"
            | b"isize"
            | b"usize"
            | b"f32"
            | b"f64"
            | b"bool"
            | b"str"
            | b"char"
    )
}

/// Words the scanner does not take as a name: keywords, and contextual keywords that
/// tree-sitter may read differently.
fn is_doubtful_name(word: &[u8]) -> bool {
    (is_keyword(word) && word != b"union") || matches!(word, b"macro_rules" | b"macro")
}

/// The outline of a Rust text, or `None` when the scanner is unsure of it (see the module
/// documentation). The same as `extract_outline(Rust, &parse(Rust, text), text)`.
pub fn scan_rust_outline(text: &str) -> Option<Outline> {
    let mut scanner = Scanner::new(text).ok()?;
    scanner.items(1, None, Container::Items).ok()?;
    let definitions = std::mem::take(&mut scanner.definitions);
    let mut imports = std::mem::take(&mut scanner.imports);
    drop(scanner);
    imports.sort_by_key(|import| (import.byte_range.start, import.byte_range.end));
    Some(Outline {
        definitions: finish_items(definitions, text),
        imports,
    })
}

/// Where the scanner gave up on `text` (a byte offset near the token it did not
/// understand), or `None` when it did not: for finding out which syntax makes it fall back.
#[doc(hidden)]
pub fn scan_rust_failure(text: &str) -> Option<usize> {
    let Ok(mut scanner) = Scanner::new(text) else {
        return Some(0);
    };
    match scanner.items(1, None, Container::Items) {
        Ok(_) => None,
        Err(Unsure) => Some(
            scanner
                .token(scanner.position)
                .map_or(text.len(), |token| token.start),
        ),
    }
}

thread_local! {
    /// The token buffer of the last scan on this thread, reused by the next one.
    static TOKEN_BUFFER: std::cell::Cell<Vec<Tok>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Token buffers larger than this are not kept for the next scan.
const MAX_KEPT_TOKENS: usize = 1 << 20;

impl Drop for Scanner<'_> {
    fn drop(&mut self) {
        let mut tokens = std::mem::take(&mut self.tokens);
        if tokens.capacity() <= MAX_KEPT_TOKENS {
            tokens.clear();
            TOKEN_BUFFER.with(|buffer| buffer.set(tokens));
        }
    }
}

struct Scanner<'text> {
    text: &'text str,
    bytes: &'text [u8],
    tokens: Vec<Tok>,
    position: usize,
    /// A byte offset and its row: rows are counted from the last one asked for.
    row_cursor: (usize, usize),
    /// Start offsets and rows of the items being read, innermost last.
    start_rows: Vec<(usize, usize)>,
    definitions: Vec<RawItem>,
    imports: Vec<ExtractedImport>,
}

impl<'text> Scanner<'text> {
    fn new(text: &'text str) -> Scan<Scanner<'text>> {
        let bytes = text.as_bytes();
        let mut lexer = Lexer {
            bytes,
            position: 0,
            token_start: 0,
        };
        let mut tokens = TOKEN_BUFFER.with(|buffer| buffer.take());
        tokens.clear();
        tokens.reserve(bytes.len() / 5);
        loop {
            let token = match lexer.next() {
                Ok(Some(token)) => token,
                Ok(None) => break,
                Err(()) => {
                    tokens.clear();
                    TOKEN_BUFFER.with(|buffer| buffer.set(tokens));
                    return Err(Unsure);
                }
            };
            let start = lexer.token_start;
            let end = lexer.position.min(bytes.len());
            let kind = match token {
                Token::Word(..) => Kind::Word,
                Token::Punct(byte, _) => Kind::Punct(byte),
                Token::Other => Kind::Literal,
            };
            tokens.push(Tok { kind, start, end });
        }
        Ok(Scanner {
            text,
            bytes,
            tokens,
            position: 0,
            row_cursor: (0, 0),
            start_rows: Vec::new(),
            definitions: Vec::new(),
            imports: Vec::new(),
        })
    }

    fn token(&self, index: usize) -> Option<Tok> {
        self.tokens.get(index).copied()
    }

    fn word(&self, index: usize) -> Option<&'text [u8]> {
        let token = self.token(index)?;
        (token.kind == Kind::Word).then(|| &self.bytes[token.start..token.end])
    }

    fn is_word(&self, index: usize, word: &[u8]) -> bool {
        self.word(index) == Some(word)
    }

    fn is_punct(&self, index: usize, byte: u8) -> bool {
        self.token(index)
            .is_some_and(|token| token.kind == Kind::Punct(byte))
    }

    fn current(&self) -> Scan<Tok> {
        self.token(self.position).ok_or(Unsure)
    }

    fn expect_punct(&mut self, byte: u8) -> Scan<Tok> {
        let token = self.current()?;
        if token.kind != Kind::Punct(byte) {
            return Err(Unsure);
        }
        self.position += 1;
        Ok(token)
    }

    /// A name (an identifier that is not a keyword); its token.
    fn expect_name(&mut self) -> Scan<Tok> {
        let token = self.current()?;
        if self.is_raw_identifier(self.position) {
            self.position += 1;
            return Ok(token);
        }
        let word = self.word(self.position).ok_or(Unsure)?;
        if is_doubtful_name(word) {
            return Err(Unsure);
        }
        self.position += 1;
        Ok(token)
    }

    /// A raw identifier (`r#type`), which the lexer gives as a literal.
    fn is_raw_identifier(&self, index: usize) -> bool {
        self.token(index).is_some_and(|token| {
            let text = &self.bytes[token.start..token.end];
            token.kind == Kind::Literal && text.len() > 2 && text.starts_with(b"r#") && is_word_start(text[2])
        })
    }

    /// Row of the start of the item being read (counted when it began).
    fn start_row(&mut self, start: usize) -> usize {
        match self.start_rows.last() {
            Some(&(item_start, row)) if item_start == start => row,
            _ => self.row(start),
        }
    }

    /// 0-based row of a byte offset.
    fn row(&mut self, offset: usize) -> usize {
        let count = |bytes: &[u8]| bytes.iter().filter(|&&byte| byte == b'\n').count();
        let (cursor_offset, cursor_row) = self.row_cursor;
        if offset >= cursor_offset {
            let row = cursor_row + count(&self.bytes[cursor_offset..offset]);
            self.row_cursor = (offset, row);
            row
        } else {
            cursor_row - count(&self.bytes[offset..cursor_offset])
        }
    }

    fn add_definition(
        &mut self,
        depth: u32,
        name: Tok,
        kind: DefinitionKind,
        range: Range<usize>,
        body: Option<usize>,
    ) {
        if depth > OUTLINE_MAX_START_DEPTH {
            return;
        }
        let end_row = self.row(range.end);
        let start_line = self.start_row(range.start);
        let end_line =
            if range.end > range.start && self.bytes[range.end - 1] == b'\n' && end_row > start_line {
                end_row - 1
            } else {
                end_row
            };
        self.definitions.push(RawItem {
            name: self.text[name.start..name.end].to_string(),
            kind,
            byte_range: range,
            start_line,
            end_line,
            body_start: body,
            pattern_index: 0,
        });
    }

    fn add_import(&mut self, depth: u32, range: Range<usize>, modules: Vec<String>, names: Vec<String>) {
        if depth > OUTLINE_MAX_START_DEPTH {
            return;
        }
        let end_line = self.row(range.end);
        let start_line = self.start_row(range.start);
        self.imports.push(ExtractedImport {
            byte_range: range,
            start_line,
            end_line,
            modules,
            names,
        });
    }

    /// Does the group opening at `index` hold a token tree (macro or attribute arguments)?
    fn opens_token_tree(&self, index: usize) -> bool {
        if index == 0 {
            return false;
        }
        if self.is_punct(index - 1, b'!') && index >= 2 {
            if let Some(word) = self.word(index - 2) {
                return !is_keyword(word);
            }
        }
        self.is_punct(index, b'[')
            && (self.is_punct(index - 1, b'#')
                || (index >= 2 && self.is_punct(index - 1, b'!') && self.is_punct(index - 2, b'#')))
    }

    /// Is the word at `index` an item keyword used as one (not `*const T`, `fn(u8)`,
    /// `set.union(other)`)?
    fn is_item_keyword_at(&self, index: usize) -> bool {
        let Some(word) = self.word(index) else {
            return false;
        };
        if !is_item_keyword(word) && word != b"union" {
            return false;
        }
        match word {
            b"const" => !(index > 0 && (self.is_punct(index - 1, b'*') || self.is_word(index - 1, b"raw"))),
            b"fn" => !self.is_punct(index + 1, b'('),
            b"union" | b"macro" => self.word(index + 1).is_some(),
            b"macro_rules" => self.is_punct(index + 1, b'!'),
            _ => true,
        }
    }

    /// Skips the group opening at the current token, up to and including its closing
    /// delimiter; what it contained. `opaque`: the group is a token tree.
    fn skip_group(&mut self, opaque: bool) -> Scan<Contents> {
        let mut contents = Contents::default();
        let mut stack: Vec<(u8, bool)> = Vec::new();
        // Open `{` groups inside the skipped one that are not token trees.
        let mut blocks = 0usize;
        loop {
            let index = self.position;
            let token = self.current()?;
            self.position += 1;
            match token.kind {
                Kind::Punct(open @ (b'{' | b'(' | b'[')) => {
                    let closer = match open {
                        b'{' => b'}',
                        b'(' => b')',
                        _ => b']',
                    };
                    let tree = match stack.last() {
                        None => opaque || self.opens_token_tree(index),
                        Some(&(_, outer)) => outer || self.opens_token_tree(index),
                    };
                    if open == b'{' && !stack.is_empty() {
                        contents.brace = true;
                        if !tree {
                            blocks += 1;
                        }
                    }
                    stack.push((closer, tree));
                }
                Kind::Punct(close @ (b'}' | b')' | b']')) => {
                    let Some((closer, tree)) = stack.pop() else {
                        return Err(Unsure);
                    };
                    if closer != close {
                        return Err(Unsure);
                    }
                    if close == b'}' && !tree && !stack.is_empty() {
                        blocks -= 1;
                    }
                    if stack.is_empty() {
                        return Ok(contents);
                    }
                }
                Kind::Word
                    if stack.last().is_some_and(|&(_, tree)| !tree) && self.is_item_keyword_at(index) =>
                {
                    contents.item_keyword = true;
                    contents.block_item_keyword |= blocks > 0;
                }
                _ => {}
            }
            if stack.is_empty() {
                return Err(Unsure);
            }
        }
    }

    /// Skips a group that must not declare items; whether it held a `{` group.
    fn skip_plain_group(&mut self) -> Scan<bool> {
        let index = self.position;
        let opaque = self.opens_token_tree(index);
        let contents = self.skip_group(opaque)?;
        if contents.item_keyword {
            return Err(Unsure);
        }
        Ok(contents.brace || self.is_punct(index, b'{'))
    }

    /// Skips a group in a header or a field list, where keywords are types (`impl Fn()`,
    /// `extern "C" fn()`) unless inside a block; whether it held a `{` group.
    fn skip_header_group(&mut self) -> Scan<bool> {
        let index = self.position;
        let opaque = self.opens_token_tree(index);
        let contents = self.skip_group(opaque)?;
        let block = self.is_punct(index, b'{');
        if contents.block_item_keyword || (block && contents.item_keyword && !opaque) {
            return Err(Unsure);
        }
        Ok(contents.brace || block)
    }

    /// Skips a header (generics, parameters, bounds, where clause, a type) up to one of
    /// `stops` outside brackets and angle brackets; the index of that stop, and whether a
    /// `{` group was skipped on the way.
    fn skip_header(&mut self, stops: &[u8]) -> Scan<(usize, bool)> {
        let mut angle = 0u32;
        let mut brace = false;
        // In a where clause, `(` is a bound's (`F: FnMut(u8)`), never a tuple body.
        let mut after_where = false;
        loop {
            let index = self.position;
            let token = self.current()?;
            match token.kind {
                Kind::Punct(byte)
                    if angle == 0 && stops.contains(&byte) && !(after_where && byte == b'(') =>
                {
                    return Ok((index, brace));
                }
                Kind::Word if angle == 0 && self.is_word(index, b"where") => {
                    after_where = true;
                    self.position += 1;
                }
                Kind::Punct(b'<') => {
                    angle += 1;
                    self.position += 1;
                }
                Kind::Punct(b'>') => {
                    let arrow = index > 0
                        && (self.is_punct(index - 1, b'-') || self.is_punct(index - 1, b'='))
                        && self.tokens[index - 1].end == token.start;
                    if !arrow {
                        angle = angle.checked_sub(1).ok_or(Unsure)?;
                    }
                    self.position += 1;
                }
                Kind::Punct(b'{') if angle == 0 => return Err(Unsure),
                Kind::Punct(b'{' | b'(' | b'[') => brace |= self.skip_header_group()?,
                Kind::Punct(b';' | b'}' | b')' | b']') => return Err(Unsure),
                _ => self.position += 1,
            }
        }
    }

    /// Reads items up to the `}` closing the group (consumed; its token is returned), or to
    /// the end of the file when `closed` is false. `depth`: tree-sitter depth of the items.
    fn items(&mut self, depth: u32, closed: Option<()>, container: Container) -> Scan<Option<Tok>> {
        loop {
            let Some(token) = self.token(self.position) else {
                return if closed.is_some() { Err(Unsure) } else { Ok(None) };
            };
            match token.kind {
                Kind::Punct(b'}') if closed.is_some() => {
                    self.position += 1;
                    return Ok(Some(token));
                }
                Kind::Punct(b';') => self.position += 1,
                Kind::Punct(b'#') => self.attribute()?,
                _ => self.item(depth, container)?,
            }
        }
    }

    /// `#[...]` or `#![...]`.
    fn attribute(&mut self) -> Scan<()> {
        self.expect_punct(b'#')?;
        if self.is_punct(self.position, b'!') {
            self.position += 1;
        }
        if !self.is_punct(self.position, b'[') {
            return Err(Unsure);
        }
        self.skip_group(true)?;
        Ok(())
    }

    /// One item, its attributes already read.
    fn item(&mut self, depth: u32, container: Container) -> Scan<()> {
        // The row of the start is counted now, while the scan moves forward.
        let start = self.current()?.start;
        let start_row = self.row(start);
        self.start_rows.push((start, start_row));
        let result = self.item_at(start, depth, container);
        self.start_rows.pop();
        result
    }

    fn item_at(&mut self, start: usize, depth: u32, container: Container) -> Scan<()> {
        let mut visibility = false;
        if self.is_word(self.position, b"pub") {
            visibility = true;
            self.position += 1;
            if self.is_punct(self.position, b'(') {
                self.skip_plain_group()?;
            }
        }
        let word = self.word(self.position).ok_or(Unsure)?;
        if !visibility
            && self.is_punct(self.position + 1, b'!')
            && matches!(word, b"default" | b"union" | b"safe")
        {
            return self.macro_invocation_named();
        }
        match word {
            b"use" => self.use_declaration(start, depth),
            b"mod" => self.module(start, depth),
            b"fn" | b"async" | b"default" => self.function(start, depth),
            b"unsafe" => match self.word(self.position + 1) {
                Some(b"impl") if !visibility => self.implementation(start, depth),
                Some(b"trait") => self.trait_item(start, depth),
                Some(b"extern")
                    if !visibility
                        && (self.is_punct(self.position + 2, b'{')
                            || self.is_punct(self.position + 3, b'{')) =>
                {
                    self.position += 1;
                    self.foreign_block(depth)
                }
                _ => self.function(start, depth),
            },
            b"extern" => match self.token(self.position + 1).map(|token| token.kind) {
                Some(Kind::Word) if self.is_word(self.position + 1, b"crate") => {
                    self.position += 2;
                    self.expect_name()?;
                    if self.is_word(self.position, b"as") {
                        self.position += 1;
                        self.expect_name()?;
                    }
                    self.expect_punct(b';')?;
                    Ok(())
                }
                Some(Kind::Punct(b'{')) if !visibility => self.foreign_block(depth),
                Some(Kind::Literal) if !visibility && self.is_punct(self.position + 2, b'{') => {
                    self.foreign_block(depth)
                }
                _ => self.function(start, depth),
            },
            b"const" => {
                if self.word(self.position + 1).is_some() && self.is_punct(self.position + 2, b':') {
                    self.constant(start, depth, false)
                } else {
                    self.function(start, depth)
                }
            }
            b"static" => self.constant(start, depth, true),
            b"struct" => self.type_with_body(start, depth, DefinitionKind::Struct),
            b"union" if self.word(self.position + 1).is_some() => {
                self.type_with_body(start, depth, DefinitionKind::Struct)
            }
            b"enum" => self.type_with_body(start, depth, DefinitionKind::Enum),
            b"trait" => self.trait_item(start, depth),
            b"impl" if !visibility => self.implementation(start, depth),
            b"type" => self.type_alias(start, depth, container),
            b"macro_rules" if !visibility && self.is_punct(self.position + 1, b'!') => {
                self.macro_rules(start, depth)
            }
            _ if !visibility && !is_doubtful_name(word) => self.macro_invocation(),
            _ => Err(Unsure),
        }
    }

    /// `name!(...);`, `path::name! { ... }` at item level.
    fn macro_invocation(&mut self) -> Scan<()> {
        self.expect_name()?;
        self.macro_invocation_rest()
    }

    /// A macro invocation whose name is a contextual keyword (`default!(...)`).
    fn macro_invocation_named(&mut self) -> Scan<()> {
        self.position += 1;
        self.macro_invocation_rest()
    }

    fn macro_invocation_rest(&mut self) -> Scan<()> {
        while self.is_punct(self.position, b':') && self.is_punct(self.position + 1, b':') {
            self.position += 2;
            self.expect_name()?;
        }
        self.expect_punct(b'!')?;
        let open = self.current()?;
        if !matches!(open.kind, Kind::Punct(b'(' | b'[' | b'{')) {
            return Err(Unsure);
        }
        self.skip_group(true)?;
        if open.kind != Kind::Punct(b'{') {
            self.expect_punct(b';')?;
        }
        Ok(())
    }

    /// `fn` with its modifiers (`const`, `async`, `unsafe`, `default`, `extern "C"`).
    fn function(&mut self, start: usize, depth: u32) -> Scan<()> {
        loop {
            match self.word(self.position) {
                Some(b"const" | b"async" | b"unsafe" | b"default") => self.position += 1,
                Some(b"extern") => {
                    self.position += 1;
                    if self
                        .token(self.position)
                        .is_some_and(|token| token.kind == Kind::Literal)
                    {
                        self.position += 1;
                    }
                }
                Some(b"fn") => break,
                _ => return Err(Unsure),
            }
        }
        self.position += 1;
        let name = self.expect_name()?;
        let (stop, brace) = self.skip_header(b"{;")?;
        let stop_token = self.tokens[stop];
        self.position = stop + 1;
        if stop_token.kind == Kind::Punct(b';') {
            if brace {
                return Err(Unsure);
            }
            self.add_definition(depth, name, DefinitionKind::Method, start..stop_token.end, None);
            return Ok(());
        }
        let close = self.function_body(depth + 2)?;
        self.add_definition(
            depth,
            name,
            DefinitionKind::Function,
            start..close.end,
            Some(stop_token.start),
        );
        Ok(())
    }

    /// A function body after its `{`, up to and including its `}`. Items directly in the
    /// body are read (at `depth`); an item anywhere deeper makes the scanner unsure.
    fn function_body(&mut self, depth: u32) -> Scan<Tok> {
        let mut statement_start = true;
        loop {
            let index = self.position;
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b'}') => {
                    self.position += 1;
                    return Ok(token);
                }
                Kind::Punct(b';') => {
                    self.position += 1;
                    statement_start = true;
                }
                Kind::Punct(b'#') if statement_start => self.attribute()?,
                Kind::Punct(b'{') | Kind::Word | Kind::Literal
                    if statement_start && self.try_block_statement(depth) =>
                {
                    statement_start = true;
                }
                Kind::Punct(open @ (b'{' | b'(' | b'[')) => {
                    self.skip_plain_group()?;
                    statement_start = open == b'{';
                }
                Kind::Punct(b')' | b']') => return Err(Unsure),
                Kind::Word => {
                    if statement_start && self.item_starts_at(index) {
                        self.item(depth, Container::Items)?;
                        statement_start = true;
                    } else if self.is_item_keyword_at(index) {
                        return Err(Unsure);
                    } else {
                        self.position += 1;
                        statement_start = false;
                    }
                }
                _ => {
                    self.position += 1;
                    statement_start = false;
                }
            }
        }
    }

    /// At the start of a statement at `depth`: reads a block-like statement (`{ ... }`,
    /// `unsafe { ... }`, `if`/`else`, `loop`, `while`, `for`) with the items of its blocks at
    /// their tree-sitter depths. False (nothing read, nothing recorded) when there is none
    /// or it is not sure of one; the caller then skips the statement as before.
    fn try_block_statement(&mut self, depth: u32) -> bool {
        let saved = (self.position, self.definitions.len(), self.imports.len());
        match self.block_statement(depth) {
            Ok(true) => true,
            Ok(false) | Err(Unsure) => {
                self.position = saved.0;
                self.definitions.truncate(saved.1);
                self.imports.truncate(saved.2);
                false
            }
        }
    }

    fn block_statement(&mut self, depth: u32) -> Scan<bool> {
        let index = self.position;
        let token = self.current()?;
        // expression_statement (depth) > block (depth + 1), or > if_expression /
        // loop_expression / unsafe_block (depth + 1) > block (depth + 2).
        match token.kind {
            Kind::Punct(b'{') => {
                self.position += 1;
                self.function_body(depth + 2)?;
            }
            Kind::Word => match self.word(index) {
                Some(b"unsafe") if self.is_punct(index + 1, b'{') => {
                    self.position += 2;
                    self.function_body(depth + 3)?;
                }
                Some(b"if") => self.if_expression(depth + 1)?,
                Some(b"loop" | b"while" | b"for") => self.loop_expression(depth + 1)?,
                Some(b"match") => self.match_expression(depth + 1)?,
                _ => return Ok(false),
            },
            Kind::Literal
                if self.bytes[token.start] == b'\''
                    && self.is_punct(index + 1, b':')
                    && matches!(self.word(index + 2), Some(b"loop" | b"while" | b"for")) =>
            {
                self.position += 2;
                self.loop_expression(depth + 1)?;
            }
            _ => return Ok(false),
        }
        // What follows must start a statement (or end the block): not `.method()`, `?`, `as`.
        let next = self.current()?;
        match next.kind {
            Kind::Punct(b'}' | b';' | b'#' | b'{') => Ok(true),
            Kind::Word if !self.is_word(self.position, b"as") => Ok(true),
            // A label: `'outer: loop`.
            Kind::Literal if self.bytes[next.start] == b'\'' && self.is_punct(self.position + 1, b':') => {
                Ok(true)
            }
            _ => Err(Unsure),
        }
    }

    /// `if condition { ... } else if ... { ... } else { ... }`, the `if_expression` at `depth`.
    fn if_expression(&mut self, depth: u32) -> Scan<()> {
        self.position += 1;
        self.skip_condition()?;
        self.function_body(depth + 2)?;
        if self.is_word(self.position, b"else") {
            self.position += 1;
            if self.is_word(self.position, b"if") {
                // else_clause (depth + 1) > if_expression (depth + 2).
                self.if_expression(depth + 2)?;
            } else {
                self.expect_punct(b'{')?;
                self.function_body(depth + 3)?;
            }
        }
        Ok(())
    }

    /// `match value { pattern => { ... } pattern => expression, }`, the `match_expression` at
    /// `depth`: match_block (+1) > match_arm (+2) > block (+3) > items (+4).
    fn match_expression(&mut self, depth: u32) -> Scan<()> {
        self.position += 1;
        self.skip_condition()?;
        loop {
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b'}') => {
                    self.position += 1;
                    return Ok(());
                }
                Kind::Punct(b',') => self.position += 1,
                Kind::Punct(b'#') => self.attribute()?,
                _ => {
                    self.skip_until_fat_arrow()?;
                    if self.is_punct(self.position, b'{') {
                        self.position += 1;
                        self.function_body(depth + 4)?;
                    } else {
                        self.skip_arm_expression()?;
                    }
                }
            }
        }
    }

    /// A match arm's pattern and guard, up to and including `=>`.
    fn skip_until_fat_arrow(&mut self) -> Scan<()> {
        loop {
            let index = self.position;
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b'=')
                    if self.is_punct(index + 1, b'>') && self.tokens[index + 1].start == token.end =>
                {
                    self.position += 2;
                    return Ok(());
                }
                Kind::Punct(b'{' | b'(' | b'[') => {
                    self.skip_plain_group()?;
                }
                Kind::Punct(b'}' | b')' | b']' | b';') => return Err(Unsure),
                Kind::Word if self.is_item_keyword_at(index) => return Err(Unsure),
                _ => self.position += 1,
            }
        }
    }

    /// A match arm's expression, up to its `,` (consumed) or the match's `}` (not consumed).
    fn skip_arm_expression(&mut self) -> Scan<()> {
        loop {
            let index = self.position;
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b',') => {
                    self.position += 1;
                    return Ok(());
                }
                Kind::Punct(b'}') => return Ok(()),
                Kind::Punct(b'{' | b'(' | b'[') => {
                    self.skip_plain_group()?;
                }
                Kind::Punct(b')' | b']' | b';') => return Err(Unsure),
                Kind::Word if self.is_item_keyword_at(index) => return Err(Unsure),
                _ => self.position += 1,
            }
        }
    }

    /// `loop { ... }`, `while condition { ... }`, `for pattern in expression { ... }`.
    fn loop_expression(&mut self, depth: u32) -> Scan<()> {
        self.position += 1;
        self.skip_condition()?;
        self.function_body(depth + 2)?;
        Ok(())
    }

    /// Skips a condition up to and including the `{` of the block after it.
    fn skip_condition(&mut self) -> Scan<()> {
        loop {
            let index = self.position;
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b'{') => {
                    self.position += 1;
                    return Ok(());
                }
                Kind::Punct(b'(' | b'[') => {
                    self.skip_plain_group()?;
                }
                Kind::Punct(b';' | b'}' | b')' | b']') => return Err(Unsure),
                Kind::Word if self.is_item_keyword_at(index) => return Err(Unsure),
                _ => self.position += 1,
            }
        }
    }

    /// Does an item start at the word at `index`, at the start of a statement?
    fn item_starts_at(&self, index: usize) -> bool {
        match self.word(index) {
            Some(b"pub" | b"fn" | b"struct" | b"enum" | b"trait" | b"impl" | b"mod" | b"use" | b"type") => {
                true
            }
            Some(b"static" | b"extern" | b"const" | b"macro_rules" | b"macro") => true,
            Some(b"union") => self.word(index + 1).is_some(),
            Some(b"unsafe") => matches!(self.word(index + 1), Some(b"fn" | b"impl" | b"trait" | b"extern")),
            Some(b"async") => matches!(self.word(index + 1), Some(b"fn" | b"unsafe")),
            _ => false,
        }
    }

    /// `mod name;` (an import) or `mod name { ... }` (a definition).
    fn module(&mut self, start: usize, depth: u32) -> Scan<()> {
        self.position += 1;
        let name = self.expect_name()?;
        let token = self.current()?;
        self.position += 1;
        match token.kind {
            Kind::Punct(b';') => {
                let module = self.text[name.start..name.end].to_string();
                self.add_import(depth, start..token.end, vec![module], Vec::new());
                Ok(())
            }
            Kind::Punct(b'{') => {
                let close = self.items(depth + 2, Some(()), Container::Items)?.ok_or(Unsure)?;
                self.add_definition(
                    depth,
                    name,
                    DefinitionKind::Module,
                    start..close.end,
                    Some(token.start),
                );
                Ok(())
            }
            _ => Err(Unsure),
        }
    }

    /// `extern "C" { ... }` (after `unsafe`): items, no definition of its own.
    fn foreign_block(&mut self, depth: u32) -> Scan<()> {
        self.position += 1;
        if self
            .token(self.position)
            .is_some_and(|token| token.kind == Kind::Literal)
        {
            self.position += 1;
        }
        self.expect_punct(b'{')?;
        self.items(depth + 2, Some(()), Container::Foreign)?;
        Ok(())
    }

    /// `const NAME: Type = value;` or `static mut NAME: Type;`.
    fn constant(&mut self, start: usize, depth: u32, is_static: bool) -> Scan<()> {
        self.position += 1;
        if is_static && self.is_word(self.position, b"mut") {
            self.position += 1;
        }
        let name_token = self.current()?;
        let name_word = self.word(self.position).ok_or(Unsure)?;
        if name_word != b"_" && is_doubtful_name(name_word) {
            return Err(Unsure);
        }
        self.position += 1;
        self.expect_punct(b':')?;
        let (stop, _) = self.skip_header(b"=;")?;
        self.position = stop + 1;
        let end = if self.is_punct(stop, b'=')
            && self.is_punct(stop + 1, b'{')
            && self.block_value_ends(stop + 1)
        {
            // `const _: () = { impl Trait for Type { ... } };`: the block's items count.
            self.position = stop + 2;
            self.function_body(depth + 2)?;
            self.expect_punct(b';')?.end
        } else if self.is_punct(stop, b'=') {
            self.skip_value()?
        } else {
            self.tokens[stop].end
        };
        self.add_definition(depth, name_token, DefinitionKind::Constant, start..end, None);
        Ok(())
    }

    /// Is the value whose `{` is at `open` a block followed by the item's `;`?
    fn block_value_ends(&self, open: usize) -> bool {
        let mut depth = 0usize;
        for index in open..self.tokens.len() {
            match self.tokens[index].kind {
                Kind::Punct(b'{' | b'(' | b'[') => depth += 1,
                Kind::Punct(b'}' | b')' | b']') => {
                    depth -= 1;
                    if depth == 0 {
                        return self.is_punct(index + 1, b';');
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// An expression up to and including its `;`; the end of the `;`.
    fn skip_value(&mut self) -> Scan<usize> {
        loop {
            let index = self.position;
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b';') => {
                    self.position += 1;
                    return Ok(token.end);
                }
                Kind::Punct(b'{' | b'(' | b'[') => {
                    self.skip_plain_group()?;
                }
                Kind::Punct(b'}' | b')' | b']') => return Err(Unsure),
                Kind::Word if self.is_item_keyword_at(index) => return Err(Unsure),
                _ => self.position += 1,
            }
        }
    }

    /// `struct`, `union`, `enum`: a `{ ... }` body, a tuple body `( ... );`, or `;`.
    fn type_with_body(&mut self, start: usize, depth: u32, kind: DefinitionKind) -> Scan<()> {
        self.position += 1;
        let name = self.expect_name()?;
        let stops: &[u8] = if kind == DefinitionKind::Enum {
            b"{"
        } else {
            b"{(;"
        };
        let (stop, brace) = self.skip_header(stops)?;
        let stop_token = self.tokens[stop];
        self.position = stop;
        match stop_token.kind {
            Kind::Punct(b'{') => {
                if self.skip_group(false)?.block_item_keyword {
                    return Err(Unsure);
                }
                let close = self.tokens[self.position - 1];
                self.add_definition(depth, name, kind, start..close.end, Some(stop_token.start));
            }
            Kind::Punct(b'(') => {
                self.skip_header_group()?;
                let (end, _) = self.skip_header(b";")?;
                self.position = end + 1;
                self.add_definition(
                    depth,
                    name,
                    kind,
                    start..self.tokens[end].end,
                    Some(stop_token.start),
                );
            }
            _ => {
                if brace {
                    return Err(Unsure);
                }
                self.position = stop + 1;
                self.add_definition(depth, name, kind, start..stop_token.end, None);
            }
        }
        Ok(())
    }

    /// `unsafe? trait Name<...>: Bounds where ... { items }`.
    fn trait_item(&mut self, start: usize, depth: u32) -> Scan<()> {
        if self.is_word(self.position, b"unsafe") {
            self.position += 1;
        }
        self.position += 1;
        let name = self.expect_name()?;
        let (stop, _) = self.skip_header(b"{")?;
        self.position = stop + 1;
        let close = self.items(depth + 2, Some(()), Container::Items)?.ok_or(Unsure)?;
        let body = self.tokens[stop].start;
        self.add_definition(depth, name, DefinitionKind::Trait, start..close.end, Some(body));
        Ok(())
    }

    /// `unsafe? impl<...> Trait for Type where ... { items }`; a definition named after the
    /// type when it is a plain, generic or scoped type name, as the query captures it.
    fn implementation(&mut self, start: usize, depth: u32) -> Scan<()> {
        if self.is_word(self.position, b"unsafe") {
            self.position += 1;
        }
        self.position += 1;
        if self.is_punct(self.position, b'<') {
            // Generic parameters: up to the matching `>`.
            let mut angle = 0u32;
            loop {
                let index = self.position;
                let token = self.current()?;
                match token.kind {
                    Kind::Punct(b'<') => angle += 1,
                    Kind::Punct(b'>') => {
                        let arrow =
                            self.is_punct(index - 1, b'-') && self.tokens[index - 1].end == token.start;
                        if !arrow {
                            angle -= 1;
                            if angle == 0 {
                                self.position += 1;
                                break;
                            }
                        }
                    }
                    Kind::Punct(b'{') => return Err(Unsure),
                    Kind::Punct(b'(' | b'[') => {
                        if self.skip_header_group()? {
                            return Err(Unsure);
                        }
                        continue;
                    }
                    Kind::Punct(b';' | b'}' | b')' | b']') => return Err(Unsure),
                    _ => {}
                }
                self.position += 1;
            }
        }
        let header_start = self.position;
        let (stop, brace) = self.skip_header(b"{")?;
        if brace {
            return Err(Unsure);
        }
        // The type: after `for` (outside angle brackets), up to `where`.
        let mut type_start = header_start;
        let mut type_end = stop;
        let mut angle = 0i32;
        let mut nesting = 0i32;
        for index in header_start..stop {
            let token = self.tokens[index];
            match token.kind {
                Kind::Punct(b'(' | b'[' | b'{') => nesting += 1,
                Kind::Punct(b')' | b']' | b'}') => nesting -= 1,
                Kind::Punct(b'<') if nesting == 0 => angle += 1,
                Kind::Punct(b'>') if nesting == 0 => {
                    let arrow = self.is_punct(index - 1, b'-') && self.tokens[index - 1].end == token.start;
                    if !arrow {
                        angle -= 1;
                    }
                }
                Kind::Word if angle == 0 && nesting == 0 => match self.word(index) {
                    Some(b"for") => {
                        if self.is_punct(index + 1, b'<') || type_start != header_start {
                            return Err(Unsure);
                        }
                        type_start = index + 1;
                    }
                    Some(b"where") => {
                        type_end = index;
                        break;
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let name = self.impl_type_name(type_start, type_end)?;
        self.position = stop + 1;
        let close = self.items(depth + 2, Some(()), Container::Items)?.ok_or(Unsure)?;
        if let Some(name) = name {
            let body = self.tokens[stop].start;
            self.add_definition(depth, name, DefinitionKind::Impl, start..close.end, Some(body));
        }
        Ok(())
    }

    /// The name the query captures for an impl's type `tokens[start..end]`, `None` when it
    /// captures none (a primitive, reference, tuple, `dyn` type, a scoped generic type).
    fn impl_type_name(&self, start: usize, end: usize) -> Scan<Option<Tok>> {
        let first = self.token(start).filter(|_| start < end).ok_or(Unsure)?;
        match first.kind {
            Kind::Punct(b'&' | b'*' | b'(' | b'[' | b'!') => return Ok(None),
            Kind::Word => {}
            _ => return Err(Unsure),
        }
        let first_word = self.word(start).ok_or(Unsure)?;
        if matches!(first_word, b"dyn" | b"fn" | b"unsafe" | b"extern" | b"_") {
            return Ok(None);
        }
        // Path: Word (:: Word)*, then optional generic arguments to the end.
        let mut index = start;
        let mut segments = 0;
        let mut last: Tok;
        loop {
            let word = self.word(index).ok_or(Unsure)?;
            if segments > 0
                && is_doubtful_name(word)
                && !matches!(word, b"crate" | b"self" | b"super" | b"Self")
            {
                return Err(Unsure);
            }
            if is_doubtful_name(word) && segments == 0 && !matches!(word, b"crate" | b"self" | b"super") {
                return Err(Unsure);
            }
            last = self.tokens[index];
            segments += 1;
            index += 1;
            if index + 1 < end && self.is_punct(index, b':') && self.is_punct(index + 1, b':') {
                index += 2;
                continue;
            }
            break;
        }
        let last_word = &self.bytes[last.start..last.end];
        if matches!(last_word, b"crate" | b"self" | b"super" | b"Self") {
            return Err(Unsure);
        }
        if index == end {
            if segments == 1 && is_primitive_type(last_word) {
                return Ok(None);
            }
            return Ok(Some(last));
        }
        // Generic arguments must close at `end`.
        if !self.is_punct(index, b'<') || !self.is_punct(end - 1, b'>') {
            return Err(Unsure);
        }
        if segments == 1 {
            if is_primitive_type(last_word) {
                return Err(Unsure);
            }
            Ok(Some(last))
        } else {
            Ok(None)
        }
    }

    /// `type Name<...> = Type;` (a definition) or `type Name: Bounds;` (an associated type:
    /// none).
    fn type_alias(&mut self, start: usize, depth: u32, _container: Container) -> Scan<()> {
        self.position += 1;
        let name = self.expect_name()?;
        let (stop, brace) = self.skip_header(b"=;")?;
        if brace {
            return Err(Unsure);
        }
        self.position = stop + 1;
        if self.is_punct(stop, b';') {
            return Ok(());
        }
        let (end, brace) = self.skip_header(b";")?;
        if brace {
            return Err(Unsure);
        }
        self.position = end + 1;
        self.add_definition(
            depth,
            name,
            DefinitionKind::Type,
            start..self.tokens[end].end,
            None,
        );
        Ok(())
    }

    /// `macro_rules! name { ... }` or `macro_rules! name ( ... );`.
    fn macro_rules(&mut self, start: usize, depth: u32) -> Scan<()> {
        self.position += 2;
        let name = self.expect_name()?;
        let open = self.current()?;
        if !matches!(open.kind, Kind::Punct(b'(' | b'[' | b'{')) {
            return Err(Unsure);
        }
        self.skip_group(true)?;
        let mut end = self.tokens[self.position - 1].end;
        if open.kind != Kind::Punct(b'{') {
            end = self.expect_punct(b';')?.end;
        }
        self.add_definition(depth, name, DefinitionKind::Macro, start..end, None);
        Ok(())
    }

    /// A `use` declaration: the import the queries capture, if any.
    fn use_declaration(&mut self, start: usize, depth: u32) -> Scan<()> {
        self.position += 1;
        if self.is_punct(self.position, b'{') {
            // `use {a::b, c};`: a bare use list, which no pattern captures.
            self.skip_group(true)?;
            self.expect_punct(b';')?;
            return Ok(());
        }
        // Path: `::`? Word (:: Word)*. A leading `::` is a scoped identifier without a path.
        let leading = if self.is_punct(self.position, b':') && self.is_punct(self.position + 1, b':') {
            self.position += 2;
            Some(self.tokens[self.position - 2])
        } else {
            None
        };
        let mut words: Vec<Tok> = Vec::new();
        loop {
            if !self.is_raw_identifier(self.position) {
                let word = self.word(self.position).ok_or(Unsure)?;
                if is_doubtful_name(word) && !matches!(word, b"crate" | b"self" | b"super") {
                    return Err(Unsure);
                }
            }
            words.push(self.tokens[self.position]);
            self.position += 1;
            if self.is_punct(self.position, b':') && self.is_punct(self.position + 1, b':') {
                self.position += 2;
                if self.word(self.position).is_some() {
                    continue;
                }
            }
            break;
        }
        let path_start = leading.unwrap_or(words[0]);
        let path_text = |_: &Tok, to: &Tok| clean_module_text(&self.text[path_start.start..to.end]);
        let token = self.current()?;
        let mut modules = Vec::new();
        let mut names = Vec::new();
        let after_colons = self.tokens[self.position - 1].kind == Kind::Punct(b':');
        match token.kind {
            Kind::Punct(b';') if !after_colons => {
                self.position += 1;
                let last = words[words.len() - 1];
                if words.len() == 1 && leading.is_some() {
                    // `use ::name;`: no path, no capture.
                } else if words.len() == 1 {
                    if matches!(&self.bytes[last.start..last.end], b"crate" | b"self" | b"super") {
                        return Err(Unsure);
                    }
                    modules.push(path_text(&last, &last));
                } else {
                    modules.push(path_text(&words[0], &words[words.len() - 2]));
                    names.push(self.text[last.start..last.end].to_string());
                }
            }
            Kind::Word if !after_colons && self.is_word(self.position, b"as") => {
                self.position += 1;
                let alias = self.word(self.position).ok_or(Unsure)?;
                if alias != b"_" && is_doubtful_name(alias) {
                    return Err(Unsure);
                }
                self.position += 1;
                self.expect_punct(b';')?;
                let last = words[words.len() - 1];
                if words.len() > 1 {
                    modules.push(path_text(&words[0], &words[words.len() - 2]));
                    names.push(self.text[last.start..last.end].to_string());
                }
            }
            Kind::Punct(b'*') if after_colons => {
                self.position += 1;
                self.expect_punct(b';')?;
                modules.push(path_text(&words[0], &words[words.len() - 1]));
            }
            Kind::Punct(b'{') if after_colons => {
                self.use_list(&mut names)?;
                self.expect_punct(b';')?;
                if !names.is_empty() {
                    modules.push(path_text(&words[0], &words[words.len() - 1]));
                }
            }
            _ => return Err(Unsure),
        }
        let end = self.tokens[self.position - 1].end;
        if !modules.is_empty() {
            modules.retain(|module: &String| !module.is_empty());
            names.retain(|name: &String| !name.is_empty());
            self.add_import(depth, start..end, modules, names);
        }
        Ok(())
    }

    /// `{ a, b as c, self, d::e, f::{g}, * }`: the names the query captures (identifiers,
    /// `self`, the original names of `as` clauses), without duplicates.
    fn use_list(&mut self, names: &mut Vec<String>) -> Scan<()> {
        self.expect_punct(b'{')?;
        loop {
            let index = self.position;
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b'}') => {
                    self.position += 1;
                    return Ok(());
                }
                Kind::Punct(b',') => self.position += 1,
                Kind::Word | Kind::Literal if token.kind == Kind::Word || self.is_raw_identifier(index) => {
                    // A raw identifier (`r#async`) is an identifier like any other.
                    let word = self.word(index).unwrap_or(b"r#");
                    let ends_entry = |at: usize| self.is_punct(at, b',') || self.is_punct(at, b'}');
                    if ends_entry(index + 1) {
                        if is_doubtful_name(word) && word != b"self" {
                            return Err(Unsure);
                        }
                        self.push_name(names, token);
                        self.position += 1;
                    } else if self.is_word(index + 1, b"as") && word == b"self" {
                        // `self as name`: the path is `self`, not an identifier: no capture.
                        self.skip_use_entry()?;
                    } else if self.is_word(index + 1, b"as") {
                        if is_doubtful_name(word) {
                            return Err(Unsure);
                        }
                        let alias = self.word(index + 2).ok_or(Unsure)?;
                        if alias != b"_" && is_doubtful_name(alias) {
                            return Err(Unsure);
                        }
                        if !ends_entry(index + 3) {
                            return Err(Unsure);
                        }
                        self.push_name(names, token);
                        self.position += 3;
                    } else {
                        self.skip_use_entry()?;
                    }
                }
                Kind::Punct(b'*') => self.position += 1,
                // `::std::fmt`, `r#type`: entries the query does not capture as names.
                Kind::Punct(b':') | Kind::Literal => self.skip_use_entry()?,
                _ => return Err(Unsure),
            }
        }
    }

    fn push_name(&self, names: &mut Vec<String>, token: Tok) {
        let name = self.text[token.start..token.end].to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }

    /// A use-list entry the query does not capture (`a::b`, `a::{b, c}`, `a::*`), up to the
    /// `,` or `}` after it.
    fn skip_use_entry(&mut self) -> Scan<()> {
        loop {
            let token = self.current()?;
            match token.kind {
                Kind::Punct(b',' | b'}') => return Ok(()),
                Kind::Punct(b'{') => {
                    self.skip_group(false)?;
                }
                Kind::Punct(b'(' | b'[' | b')' | b']' | b';') => return Err(Unsure),
                _ => self.position += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{extract_outline, parse, LanguageId};

    fn full(text: &str) -> Outline {
        let tree = parse(LanguageId::Rust, text).expect("the Rust grammar loads");
        extract_outline(LanguageId::Rust, &tree, text)
    }

    /// The scanner reads `text` and gives exactly the tree-sitter outline.
    fn assert_same(text: &str) -> Outline {
        let scanned = scan_rust_outline(text).expect("the scanner is sure of this text");
        assert_eq!(scanned, full(text), "scanner vs tree-sitter on:\n{text}");
        scanned
    }

    fn names(outline: &Outline) -> Vec<(&str, &str)> {
        outline
            .definitions
            .iter()
            .map(|definition| (definition.name.as_str(), definition.kind.name()))
            .collect()
    }

    #[test]
    fn common_items_match_tree_sitter() {
        let outline = assert_same(
            "//! Crate docs.\n#![allow(dead_code)]\nuse std::collections::HashMap;\n\
             use crate::store::{Store, User as U, self, nested::Thing, *};\nuse super::*;\n\
             pub(crate) use a::b::c as d;\nextern crate alloc;\nmod declared;\n\n\
             /// A struct.\n#[derive(Debug)]\npub struct Point<T: Copy> {\n    pub x: T,\n    y: fn(u8) -> u8,\n}\n\
             pub struct Tuple(pub u32, *const u8);\nstruct Unit;\n\
             pub enum Shape { Circle { r: f64 }, Square(f64), Empty = 3 }\n\
             union Bits { i: u32, f: f32 }\n\
             pub type Result<T> = std::result::Result<T, Error>;\n\
             pub const LIMIT: usize = 1 << 10;\nstatic mut COUNTER: u32 = 0;\nconst _: () = ();\n\
             pub trait Named: Sized where Self: Clone {\n    type Item;\n    type Other = u8;\n    \
             const ID: u32;\n    fn name(&self) -> &str;\n    fn provided(&self) -> u32 { 1 }\n}\n\
             impl<T> Named for Point<T> where T: Copy {\n    type Item = T;\n    const ID: u32 = 2;\n    \
             fn name(&self) -> &str { \"p\" }\n}\n\
             impl std::fmt::Display for Unit { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { Ok(()) } }\n\
             impl Named for u32 { fn name(&self) -> &str { \"u\" } }\n\
             impl<T> From<T> for Box<dyn Named> { fn from(value: T) -> Self { todo!() } }\n\
             unsafe impl Send for Tuple {}\nimpl !Sync for Unit {}\n\
             pub mod inner {\n    pub(super) fn helper() {}\n    mod deeper { fn deepest() {} }\n}\n\
             pub async unsafe fn run() -> impl Iterator<Item = u8> { std::iter::empty() }\n\
             const fn double(x: u32) -> u32 { x * 2 }\npub extern \"C\" fn exported() {}\n",
        );
        assert!(names(&outline).contains(&("Point", "impl")));
        assert!(names(&outline).contains(&("deepest", "function")));
        assert_eq!(outline.imports.len(), 5);
    }

    #[test]
    fn literals_comments_and_lifetimes_are_lexed() {
        assert_same(
            "fn strings() -> &'static str {\n    let raw = r#\"} fn nope() { \"#;\n    let raw2 = r##\"\"# }\"##;\n    \
             let c = '}'; let q = '\\''; let b = b'{'; let bytes = br#\"{\"#;\n    \
             /* } /* nested fn x() {} */ still a comment { */\n    // fn commented() {}\n    \
             let label = 'outer: loop { break 'outer; };\n    \"}\"\n}\n\
             fn lifetimes<'a, 'b: 'a>(x: &'a str, y: &'b str) -> &'a str where 'b: 'a { x }\n\
             struct Holder<'a> { r: &'a str, c: char }\nconst C: char = 'x';\n",
        );
    }

    #[test]
    fn macros_and_attributes_match_tree_sitter() {
        let outline = assert_same(
            "#[macro_export]\nmacro_rules! square {\n    ($x:expr) => { $x * $x };\n}\n\
             macro_rules! paren ( () => {} );\n\
             lazy_static! { static ref TABLE: Vec<u8> = vec![]; }\n\
             thread_local!(static CACHE: u32 = 0);\ncrate_macro::define! { fn hidden() {} }\n\
             #[cfg(all(test, not(feature = \"x\")))]\n#[allow(unused)]\nfn attributed() { println!(\"{} {}\", 1, \"fn x() {}\"); }\n",
        );
        assert_eq!(
            names(&outline),
            [
                ("square", "macro"),
                ("paren", "macro"),
                ("attributed", "function")
            ]
        );
    }

    #[test]
    fn generics_where_clauses_and_const_generics() {
        assert_same(
            "pub struct Array<T, const N: usize> where T: Default { items: [T; N] }\n\
             impl<T: Default + Copy, const N: usize> Array<T, N> {\n    \
             pub fn new() -> Self where T: Fn(u8) -> u8 { Self { items: [T::default(); N] } }\n}\n\
             fn with_braces<const N: usize>() -> [u8; { N + 1 }] { [0; { N + 1 }] }\n\
             fn callback<F>(f: F) -> Box<dyn Fn(u32) -> u32> where F: FnOnce() -> u32 + 'static { Box::new(|x| x) }\n\
             impl<'a, T> Iterator for Iter<'a, T> where T: 'a { type Item = &'a T; fn next(&mut self) -> Option<&'a T> { None } }\n",
        );
    }

    #[test]
    fn visibility_extern_blocks_and_modules() {
        let outline = assert_same(
            "pub(crate) fn a() {}\npub(in crate::x) struct B;\npub(self) const C: u8 = 1;\n\
             extern \"C\" {\n    pub fn strlen(s: *const c_char) -> usize;\n    static errno: c_int;\n}\n\
             unsafe extern \"C\" { fn abort() -> !; }\nextern { fn old(); }\n\
             mod x;\npub mod y;\nmod z { use super::x; }\n",
        );
        assert_eq!(outline.imports.len(), 3);
        assert!(names(&outline).contains(&("strlen", "method")));
    }

    #[test]
    fn items_in_function_bodies_and_constant_blocks() {
        assert_same(
            "fn outer() -> u32 {\n    use std::fmt::Write;\n    #[derive(Clone)]\n    struct Local(u8);\n    \
             fn helper(x: u32) -> u32 { x }\n    impl Local { fn get(&self) -> u8 { self.0 } }\n    \
             let f: fn(u32) -> u32 = helper;\n    let p = &0u8 as *const u8;\n    unsafe { p.read(); }\n    helper(1)\n}\n\
             const _: () = {\n    impl Clone for Marker { fn clone(&self) -> Self { Marker } }\n};\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn works() { assert_eq!(outer(), 1); }\n}\n",
        );
    }

    #[test]
    fn contextual_keywords_raw_identifiers_and_rare_use_forms() {
        let outline = assert_same(
            "impl Set { pub fn union(&self, other: &Set) -> Set { todo!() } fn default() -> Self { Set } }\n\
             pub fn r#type(&self) -> u8 { 0 }\nstruct r#Match;\ndefault!(Set);\n\
             use ::alloc::vec::Vec;\nuse ::core;\nuse crossbeam::{epoch::{self as epoch, Atomic}, self as cb, Owned, r#async};\n\
             use a::{::b::C, d};\npub struct Filter<F>\nwhere\n    F: FnMut(&u8) -> bool,\n{\n    f: F,\n}\n",
        );
        assert!(names(&outline).contains(&("union", "method")));
        assert!(names(&outline).contains(&("r#type", "function")));
    }

    #[test]
    fn items_in_block_statements_if_else_and_loops() {
        let outline = assert_same(
            "impl Socket {\n    fn into_std(self) -> u32 {\n        #[cfg(unix)]\n        {\n            use std::os::fd::AsRawFd;\n            \
             self.fd\n        }\n        #[cfg(windows)]\n        {\n            use std::os::windows::io::AsRawSocket;\n            self.socket\n        }\n    }\n}\n\
             fn checks(x: Option<u8>) {\n    if let Some(value) = x {\n        fn inner(v: u8) -> u8 { v }\n        inner(value);\n    \
             } else if x.is_none() {\n        struct Nothing;\n    } else {\n        use std::fmt::Debug;\n    }\n    \
             unsafe { impl Marker for u8 {} }\n    'outer: for i in 0..3 { const LIMIT: usize = 2; if i > LIMIT { break 'outer; } }\n    \
             while x.is_some() { mod never {} }\n    loop { fn looped() {} break; }\n}\n",
        );
        for name in ["inner", "Nothing", "LIMIT", "never", "looped"] {
            assert!(
                names(&outline).iter().any(|(found, _)| *found == name),
                "{name} is missing"
            );
        }
        assert_eq!(outline.imports.len(), 3);
    }

    #[test]
    fn items_in_match_arms_bare_use_lists_and_the_never_type() {
        let outline = assert_same(
            "use {std::fmt, crate::Error};\nimpl<'de> Deserialize<'de> for ! { fn f() {} }\n\
             fn writer(method: Method) -> u32 {\n    match method {\n        #[allow(deprecated)]\n        \
             Method::Stored { level, .. } if level > 0 => {\n            use std::io::Write;\n            1\n        }\n        \
             Method::Deflated => 2,\n        Method::Zstd(x) => { fn helper() {} 3 }\n        _ => x.map(|v| { v + 1 }).unwrap_or(4),\n    }\n}\n",
        );
        assert!(names(&outline).contains(&("helper", "function")));
        assert_eq!(outline.imports.len(), 1);
    }

    #[test]
    fn unsure_syntax_falls_back() {
        // An item inside a nested block, a trait alias, an unterminated string, a stray `}`.
        for text in [
            "fn f() { let g = || { fn nested() {} }; }\n",
            "trait Alias = Clone + Send;\n",
            "fn f() { let s = \"open; }\n",
            "fn f() {}\n}\n",
        ] {
            assert!(scan_rust_outline(text).is_none(), "should fall back: {text}");
        }
    }

    #[test]
    fn deep_items_follow_the_query_depth_limit() {
        assert_same(
            "mod a { mod b { mod c { mod d { mod e { fn deep() { struct Deeper; fn deepest() {} } } } } } }\n",
        );
    }
}
