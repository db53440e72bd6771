//! Outline parsing: skip function bodies that cannot hold an outline entry.
//!
//! Most of a source file is function bodies, and no definition or import of the outline
//! queries lives in a body unless the body declares an item of its own (`fn`, `struct`,
//! `use`...). A lexical scan (comments, strings, raw strings, char literals and lifetimes
//! understood; no parser) finds the bodies that contain none of the item keywords; the
//! parser is then given the file minus those bodies' interiors as its included ranges. Node
//! positions stay those of the whole text, the body itself is still a (empty) block from
//! its `{` to its `}`, so definitions, their ranges, signatures and imports are the same as
//! from a full parse.
//!
//! When the scan is unsure (unbalanced braces, an unterminated literal), nothing is skipped.

use std::ops::Range;

/// Bodies with fewer interior bytes than this are parsed: skipping them saves nothing.
const MIN_SKIPPED_BODY_BYTES: usize = 24;
/// The same for the value of a constant (`= 0x8008_0206_u32 as _`).
const MIN_SKIPPED_VALUE_BYTES: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// An identifier or keyword, as a byte range.
    Word(usize, usize),
    /// One punctuation byte (`{`, `}`, `(`, `;`, `*`...) at an offset.
    Punct(u8, usize),
    /// A literal, lifetime or number: nothing the scan cares about.
    Other,
}

pub(crate) struct Lexer<'text> {
    pub(crate) bytes: &'text [u8],
    pub(crate) position: usize,
    /// Where the last token returned by `next` starts.
    pub(crate) token_start: usize,
}

/// First offset of `needle` in `haystack`, eight bytes at a time (comments are long).
fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES.wrapping_mul(u64::from(needle));
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word) ^ pattern;
        // Non-zero exactly when some byte of `word` is zero, i.e. matched `needle`.
        if word.wrapping_sub(ONES) & !word & HIGHS != 0 {
            return chunk
                .iter()
                .position(|&byte| byte == needle)
                .map(|found| offset + found);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| byte == needle)
        .map(|found| offset + found)
}

/// Bit 0: starts a word (`[A-Za-z_]`, non-ASCII); bit 1: continues one (`[A-Za-z0-9_]`,
/// non-ASCII).
const WORD_CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let start = b.is_ascii_alphabetic() || b == b'_' || b >= 0x80;
        classes[byte] = (start as u8) | (((start || b.is_ascii_digit()) as u8) << 1);
        byte += 1;
    }
    classes
};

#[inline]
pub(crate) fn is_word_start(byte: u8) -> bool {
    WORD_CLASSES[byte as usize] & 1 != 0
}

#[inline]
fn is_word_byte(byte: u8) -> bool {
    WORD_CLASSES[byte as usize] & 2 != 0
}

impl Lexer<'_> {
    fn peek(&self, offset: usize) -> u8 {
        self.bytes.get(self.position + offset).copied().unwrap_or(0)
    }

    /// The next token; `Ok(None)` at the end, `Err(())` at an unterminated literal or comment.
    pub(crate) fn next(&mut self) -> Result<Option<Token>, ()> {
        let bytes = self.bytes;
        loop {
            let Some(&byte) = bytes.get(self.position) else {
                return Ok(None);
            };
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => self.position += 1,
                b'/' if self.peek(1) == b'/' => {
                    self.position = find_byte(b'\n', &bytes[self.position..])
                        .map_or(bytes.len(), |offset| self.position + offset);
                }
                b'/' if self.peek(1) == b'*' => self.block_comment()?,
                _ => break,
            }
        }
        let start = self.position;
        self.token_start = start;
        let byte = bytes[start];
        if byte == b'"' {
            self.position += 1;
            self.quoted(b'"')?;
            return Ok(Some(Token::Other));
        }
        if byte == b'\'' {
            self.quote_or_lifetime()?;
            return Ok(Some(Token::Other));
        }
        if byte.is_ascii_digit() {
            while self.position < bytes.len() && is_word_byte(bytes[self.position]) {
                self.position += 1;
            }
            return Ok(Some(Token::Other));
        }
        if is_word_start(byte) {
            // Literal prefixes: b"", b'', c"", r"", r#""#, br"", cr#""#; raw identifiers r#name.
            let prefix_length = match (byte, self.peek(1)) {
                (b'b' | b'c', b'r') if matches!(self.peek(2), b'"' | b'#') => Some(2),
                (b'r', b'"' | b'#') => Some(1),
                (b'b', b'\'') => {
                    self.position += 1;
                    self.quote_or_lifetime()?;
                    return Ok(Some(Token::Other));
                }
                (b'b' | b'c', b'"') => {
                    self.position += 2;
                    self.quoted(b'"')?;
                    return Ok(Some(Token::Other));
                }
                _ => None,
            };
            if let Some(prefix_length) = prefix_length {
                let mut hashes = 0;
                while self.peek(prefix_length + hashes) == b'#' {
                    hashes += 1;
                }
                if self.peek(prefix_length + hashes) == b'"' {
                    self.position += prefix_length + hashes + 1;
                    self.raw_string(hashes)?;
                    return Ok(Some(Token::Other));
                }
                if byte == b'r' && hashes == 1 {
                    // `r#name`: a raw identifier, never a keyword.
                    self.position += 2;
                    while self.position < bytes.len() && is_word_byte(bytes[self.position]) {
                        self.position += 1;
                    }
                    return Ok(Some(Token::Other));
                }
            }
            self.position += 1;
            while self.position < bytes.len() && is_word_byte(bytes[self.position]) {
                self.position += 1;
            }
            return Ok(Some(Token::Word(start, self.position)));
        }
        self.position += 1;
        Ok(Some(Token::Punct(byte, start)))
    }

    fn block_comment(&mut self) -> Result<(), ()> {
        let bytes = self.bytes;
        self.position += 2;
        let mut depth = 1;
        while self.position < bytes.len() {
            match (bytes[self.position], self.peek(1)) {
                (b'*', b'/') => {
                    self.position += 2;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                (b'/', b'*') => {
                    self.position += 2;
                    depth += 1;
                }
                _ => self.position += 1,
            }
        }
        Err(())
    }

    /// After an opening quote: up to and including the closing `quote`, escapes skipped.
    fn quoted(&mut self, quote: u8) -> Result<(), ()> {
        let bytes = self.bytes;
        while self.position < bytes.len() {
            match bytes[self.position] {
                b'\\' => self.position += 2,
                byte if byte == quote => {
                    self.position += 1;
                    return Ok(());
                }
                _ => self.position += 1,
            }
        }
        Err(())
    }

    /// After `r#..#"`: up to and including `"#..#`.
    fn raw_string(&mut self, hashes: usize) -> Result<(), ()> {
        let bytes = self.bytes;
        while let Some(offset) = find_byte(b'"', &bytes[self.position..]) {
            let quote = self.position + offset;
            self.position = quote + 1;
            if bytes[self.position..].len() >= hashes
                && bytes[self.position..][..hashes].iter().all(|&b| b == b'#')
            {
                self.position += hashes;
                return Ok(());
            }
        }
        Err(())
    }

    /// At `'`: a char literal (`'a'`, `'\n'`, `'é'`) or a lifetime / label (`'a`, `'static`).
    fn quote_or_lifetime(&mut self) -> Result<(), ()> {
        let bytes = self.bytes;
        self.position += 1;
        match self.peek(0) {
            b'\\' => {
                self.position += 2;
                let close = find_byte(b'\'', &bytes[self.position.min(bytes.len())..]).ok_or(())?;
                self.position += close + 1;
            }
            0 => return Err(()),
            first => {
                let char_length = match first {
                    0x00..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                if self.peek(char_length) == b'\'' {
                    self.position += char_length + 1;
                } else {
                    while self.position < bytes.len() && is_word_byte(bytes[self.position]) {
                        self.position += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Words that may start an item (or an import) inside a function body.
pub(crate) fn is_item_keyword(word: &[u8]) -> bool {
    matches!(
        word,
        b"fn"
            | b"struct"
            | b"enum"
            | b"union"
            | b"trait"
            | b"impl"
            | b"mod"
            | b"macro_rules"
            | b"macro"
            | b"const"
            | b"static"
            | b"type"
            | b"use"
            | b"extern"
    )
}

/// Keywords that may stand before `!` without being a macro's name (`if !(a && b)`).
pub(crate) fn is_keyword(word: &[u8]) -> bool {
    is_item_keyword(word)
        || matches!(
            word,
            b"as"
                | b"async"
                | b"await"
                | b"break"
                | b"continue"
                | b"crate"
                | b"dyn"
                | b"else"
                | b"false"
                | b"for"
                | b"if"
                | b"in"
                | b"let"
                | b"loop"
                | b"match"
                | b"move"
                | b"mut"
                | b"pub"
                | b"ref"
                | b"return"
                | b"self"
                | b"Self"
                | b"super"
                | b"true"
                | b"unsafe"
                | b"where"
                | b"while"
                | b"yield"
        )
}

/// What the interior of a delimited group is, as far as the outline is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    /// A function body: skippable when it holds no item keyword.
    FunctionBody,
    /// The fields of a struct or union, the variants of an enum: skippable when no block
    /// (`{ ... }`, as in an array length) inside holds an item keyword. Keywords of field
    /// types (`fn(u32)`, `*const u8`) do not count.
    TypeBody,
    /// Always skippable: a token tree (macro arguments, attribute arguments). tree-sitter
    /// does not parse items inside token trees, so keywords there never count.
    TokenTree,
    /// The brackets of an attribute (`#[...]`): its arguments are token trees.
    Attribute,
    /// Anything else: never skipped.
    Other,
}

/// The body a `fn` or a `struct` / `enum` / `union` keyword is waiting for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    Function,
    Type,
}

/// Where a `const` / `static` item directly in a group is: `const NAME: Type = value;`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Constant {
    None,
    Name,
    Colon,
    /// In the type, inside this many `<`.
    Type(u32),
    /// After the `=` at this offset; `outer_item` is the group's `contains_item` before it.
    Value {
        equals: usize,
        outer_item: bool,
    },
}

struct Frame {
    /// Offset of the opening delimiter.
    open: usize,
    group: Group,
    /// An item keyword inside (token trees excepted).
    contains_item: bool,
    /// An item keyword inside a block (a `{` group other than a type body) inside.
    contains_block_item: bool,
    /// A keyword directly in this group waits for its body.
    pending: Pending,
    constant: Constant,
}

impl Frame {
    fn new(open: usize, group: Group) -> Frame {
        Frame {
            open,
            group,
            contains_item: false,
            contains_block_item: false,
            pending: Pending::None,
            constant: Constant::None,
        }
    }
}

/// Interiors (after the opening delimiter, before the closing one) of the groups of a Rust
/// text that hold nothing the outline queries capture: function bodies, struct / union /
/// enum bodies without item keywords, macro and attribute arguments. Sorted and disjoint.
/// Empty when the scan is unsure of the text's structure.
pub(crate) fn rust_skippable_bodies(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut lexer = Lexer {
        bytes,
        position: 0,
        token_start: 0,
    };
    let mut frames = vec![Frame::new(0, Group::Other)];
    let mut skippable: Vec<Range<usize>> = Vec::new();
    // The two previous tokens: `*const`, `name!(`, `#[`, `#![`.
    let mut previous = [Token::Other, Token::Other];
    loop {
        let token = match lexer.next() {
            Ok(Some(token)) => token,
            Ok(None) => break,
            Err(()) => return Vec::new(),
        };
        let Some(frame) = frames.last_mut() else {
            return Vec::new();
        };
        frame.constant = next_constant_state(frame, token, previous[1], bytes, &mut skippable);
        match token {
            Token::Word(start, end) => {
                let word = &bytes[start..end];
                // `*const T` is a pointer type, not a constant item.
                let pointer = matches!(previous[1], Token::Punct(b'*', _)) && word == b"const";
                if is_item_keyword(word) && !pointer {
                    frame.contains_item = true;
                    match word {
                        b"fn" => frame.pending = Pending::Function,
                        b"struct" | b"enum" | b"union" => frame.pending = Pending::Type,
                        _ => {}
                    }
                }
            }
            Token::Punct(b';', _) => frame.pending = Pending::None,
            Token::Punct(delimiter @ (b'{' | b'(' | b'['), open) => {
                let after_bang = matches!(previous[1], Token::Punct(b'!', _));
                let macro_arguments = after_bang
                    && matches!(previous[0], Token::Word(start, end) if !is_keyword(&bytes[start..end]));
                let group = if frame.group == Group::Attribute
                    || frame.group == Group::TokenTree
                    || macro_arguments
                {
                    Group::TokenTree
                } else if delimiter == b'['
                    && (matches!(previous[1], Token::Punct(b'#', _))
                        || (after_bang && matches!(previous[0], Token::Punct(b'#', _))))
                {
                    Group::Attribute
                } else if delimiter == b'{' && frame.pending == Pending::Function {
                    frame.pending = Pending::None;
                    Group::FunctionBody
                } else if delimiter != b'[' && frame.pending == Pending::Type {
                    frame.pending = Pending::None;
                    Group::TypeBody
                } else {
                    Group::Other
                };
                frames.push(Frame::new(open, group));
            }
            Token::Punct(close_delimiter @ (b'}' | b')' | b']'), close) => {
                if frames.len() < 2 {
                    return Vec::new();
                }
                let Some(mut closed) = frames.pop() else {
                    return Vec::new();
                };
                if let Constant::Value { outer_item, .. } = closed.constant {
                    closed.contains_item |= outer_item;
                }
                let matching = matches!(
                    (bytes[closed.open], close_delimiter),
                    (b'{', b'}') | (b'(', b')') | (b'[', b']')
                );
                if !matching {
                    return Vec::new();
                }
                let skip = match closed.group {
                    Group::FunctionBody => !closed.contains_item,
                    Group::TypeBody => !closed.contains_block_item,
                    Group::TokenTree => true,
                    Group::Attribute | Group::Other => false,
                };
                if skip && close - closed.open > MIN_SKIPPED_BODY_BYTES {
                    skippable.push(closed.open + 1..close);
                }
                if let Some(parent) = frames.last_mut() {
                    // Token trees hide their items from the parser.
                    if closed.group != Group::TokenTree {
                        parent.contains_item |= closed.contains_item;
                        let is_block = close_delimiter == b'}' && closed.group != Group::TypeBody;
                        parent.contains_block_item |=
                            closed.contains_block_item || (is_block && closed.contains_item);
                    }
                    if close_delimiter == b'}' {
                        parent.pending = Pending::None;
                    }
                }
            }
            Token::Punct(..) | Token::Other => {}
        }
        previous = [previous[1], token];
    }
    if frames.len() != 1 {
        return Vec::new();
    }
    // Groups were recorded innermost first; keep the outermost of nested ones.
    skippable.sort_unstable_by_key(|range| (range.start, std::cmp::Reverse(range.end)));
    let mut disjoint: Vec<Range<usize>> = Vec::with_capacity(skippable.len());
    for range in skippable {
        if disjoint.last().is_none_or(|last| range.start >= last.end) {
            disjoint.push(range);
        }
    }
    disjoint
}

/// The value of a `const` or `static` item holds no outline entry unless it declares an
/// item (`= { fn helper() {} ... }`); tree-sitter's grammar makes the value optional, so
/// `= value` can be left out of the parse. Only items that start as items do
/// (`pub(crate) const`, not `<const N: usize = 3>`) are considered.
fn next_constant_state(
    frame: &mut Frame,
    token: Token,
    previous: Token,
    bytes: &[u8],
    skippable: &mut Vec<Range<usize>>,
) -> Constant {
    let word = match token {
        Token::Word(start, end) => Some(&bytes[start..end]),
        _ => None,
    };
    match (frame.constant, token) {
        (Constant::None, _) if matches!(word, Some(b"const" | b"static")) => {
            let item_start = match previous {
                Token::Punct(byte, _) => matches!(byte, b';' | b'}' | b'{' | b']' | b')'),
                Token::Word(start, end) => &bytes[start..end] == b"pub",
                Token::Other => false,
            };
            if item_start || frame.open == 0 && previous == Token::Other {
                Constant::Name
            } else {
                Constant::None
            }
        }
        (Constant::Name, _) if matches!(word, Some(b"mut" | b"ref")) => Constant::Name,
        (Constant::Name, Token::Word(..)) if !word.is_some_and(is_keyword) => Constant::Colon,
        (Constant::Colon, Token::Punct(b':', _)) => Constant::Type(0),
        (Constant::Type(depth), Token::Punct(b'<', _)) => Constant::Type(depth + 1),
        // `->` of a function pointer type is no closing angle.
        (Constant::Type(depth), Token::Punct(b'>', _)) if !matches!(previous, Token::Punct(b'-', _)) => {
            if depth == 0 {
                Constant::None
            } else {
                Constant::Type(depth - 1)
            }
        }
        (Constant::Type(0), Token::Punct(b'=', equals)) => {
            let outer_item = frame.contains_item;
            frame.contains_item = false;
            Constant::Value { equals, outer_item }
        }
        (Constant::Type(_), Token::Punct(b'{' | b'}' | b';', _)) => Constant::None,
        (Constant::Type(_), _) => frame.constant,
        (Constant::Value { equals, outer_item }, Token::Punct(b';', semicolon)) => {
            if !frame.contains_item && semicolon - equals >= MIN_SKIPPED_VALUE_BYTES {
                skippable.push(equals..semicolon);
            }
            frame.contains_item |= outer_item;
            Constant::None
        }
        (Constant::Value { .. }, _) => frame.constant,
        _ => Constant::None,
    }
}

/// The parts of `text` outside `skipped` (sorted, disjoint), as tree-sitter ranges.
pub(crate) fn included_ranges(text: &str, skipped: &[Range<usize>]) -> Vec<tree_sitter::Range> {
    let bytes = text.as_bytes();
    let mut ranges = Vec::with_capacity(skipped.len() + 1);
    let mut row = 0;
    let mut line_start = 0;
    let mut counted_to = 0;
    let mut point_at = |offset: usize| {
        for (newline, _) in bytes[counted_to..offset]
            .iter()
            .enumerate()
            .filter(|(_, &byte)| byte == b'\n')
        {
            row += 1;
            line_start = counted_to + newline + 1;
        }
        counted_to = offset;
        tree_sitter::Point::new(row, offset - line_start)
    };
    let mut start = 0;
    let mut start_point = point_at(0);
    for range in skipped {
        let end_point = point_at(range.start);
        ranges.push(tree_sitter::Range {
            start_byte: start,
            end_byte: range.start,
            start_point,
            end_point,
        });
        start = range.end;
        start_point = point_at(range.end);
    }
    let end_point = point_at(bytes.len());
    ranges.push(tree_sitter::Range {
        start_byte: start,
        end_byte: bytes.len(),
        start_point,
        end_point,
    });
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_a_plain_search() {
        let text = b"0123456\n89abcdef\"hijklmnopqrstuvwxyz\n\xff\x80";
        for start in 0..text.len() {
            for needle in [b'\n', b'"', b'z', b'#', 0x80] {
                let haystack = &text[start..];
                let plain = haystack.iter().position(|&byte| byte == needle);
                assert_eq!(find_byte(needle, haystack), plain, "{needle} from {start}");
            }
        }
    }

    fn skipped_texts(text: &str) -> Vec<&str> {
        rust_skippable_bodies(text)
            .into_iter()
            .map(|range| text[range].trim())
            .collect()
    }

    #[test]
    fn plain_bodies_are_skipped_and_bodies_with_items_are_kept() {
        let text = "fn plain(x: u32) -> u32 {\n    let total = x + 1; total * 2\n}\n\
                    fn with_item() {\n    struct Local; fn helper() { let value = 1 + 2 + 3 + 4; }\n}\n\
                    impl S { pub fn method(&self) -> fn(u8) { let a_long_name = 1; a_long_name } }\n\
                    trait T { fn required(&self); fn provided(&self) { println!(\"{}\", 1234567) } }\n";
        assert_eq!(
            skipped_texts(text),
            vec![
                "let total = x + 1; total * 2",
                "let value = 1 + 2 + 3 + 4;",
                "let a_long_name = 1; a_long_name",
                "println!(\"{}\", 1234567)",
            ]
        );
    }

    #[test]
    fn literals_and_comments_do_not_confuse_the_scan() {
        let text = "fn f() {\n    let s = \"}{ fn struct\"; let r = r#\"}\"# ; let c = '}'; let l: &'static str = \"\";\n    // } fn\n    /* } /* nested */ use */ let b = b'{'; let e = '\\'';\n}\n";
        let skipped = skipped_texts(text);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("let s ="));
        assert!(skipped[0].ends_with("let e = '\\'';"));
    }

    #[test]
    fn pointer_const_is_not_an_item_but_uses_are() {
        assert_eq!(
            skipped_texts("fn f(p: *const u8) { let q = p as *const u16; q.read() }").len(),
            1
        );
        assert!(skipped_texts("fn f() { use std::fmt::Write; let mut s = String::new(); }").is_empty());
        assert!(skipped_texts("fn f() { const LIMIT: usize = 10; let v = LIMIT * 2; }").is_empty());
    }

    #[test]
    fn type_bodies_macro_and_attribute_arguments_are_skipped() {
        let text = "#[derive(Clone, Copy, Debug, PartialEq)]\npub struct Fields { pub callback: Option<fn(u32)>, pub p: *const u8 }\n\
                    enum Choice { First(u32), Second { inner: u64 } }\n\
                    link!(\"kernel32.dll\" \"system\" fn CloseHandle(h: HANDLE) -> BOOL);\n\
                    fn f(items: &[u32]) -> bool { if !(items.is_empty()) { return false; } true }\n\
                    struct Strange { field: [u8; { const N: usize = 3; N }] }\n";
        assert_eq!(
            skipped_texts(text),
            vec![
                "Clone, Copy, Debug, PartialEq",
                "pub callback: Option<fn(u32)>, pub p: *const u8",
                "First(u32), Second { inner: u64 }",
                "\"kernel32.dll\" \"system\" fn CloseHandle(h: HANDLE) -> BOOL",
                "if !(items.is_empty()) { return false; } true",
            ]
        );
        // Parameters are not a body; a trait method without a body skips nothing.
        assert!(
            skipped_texts("trait T { fn required(&self, first_argument: u32, second: u64); }").is_empty()
        );
        // Items in a macro's arguments are invisible to the parser: they do not keep a body.
        assert_eq!(
            skipped_texts("fn f() { thread_local! { static CACHE: u32 = 0; } let value = 1; }").len(),
            1
        );
    }

    #[test]
    fn constant_values_are_skipped_unless_they_declare_items() {
        let text = "pub const ERROR_CODE: WIN32_ERROR = 0x8008_0206_u32 as _;\n\
                    pub(crate) static mut COUNTER: Option<Box<dyn Iterator<Item = u8>>> = None;\n\
                    const WITH_ITEM: u32 = { const INNER: u32 = 1; INNER + 100000 };\n\
                    struct Generic<const N: usize = 3> { pub field_with_a_long_name: [u8; N] }\n\
                    trait Required { const LIMIT: u32; }\n";
        assert_eq!(
            skipped_texts(text),
            vec![
                "= 0x8008_0206_u32 as _",
                "= None",
                "pub field_with_a_long_name: [u8; N]"
            ]
        );
        // A function whose body declares a constant keeps its body; the value goes.
        assert_eq!(
            skipped_texts("fn f() { const LIMIT: usize = 10_000_000; let v = LIMIT * 2; }"),
            vec!["= 10_000_000"]
        );
    }

    #[test]
    fn unsure_scans_skip_nothing() {
        assert!(rust_skippable_bodies("fn f() { let s = \"unterminated; }").is_empty());
        assert!(rust_skippable_bodies("fn f() { let value = 1 + 2 + 3 + 4 + 5;").is_empty());
        assert!(rust_skippable_bodies("fn f() { let value = 1 + 2 + 3 + 4 + 5; } }").is_empty());
    }

    #[test]
    fn included_ranges_have_points_of_the_whole_text() {
        let text = "fn a() {\n  body_of_a_long_enough_function();\n}\nfn b() {}\n";
        let skipped = rust_skippable_bodies(text);
        assert_eq!(skipped.len(), 1);
        let ranges = included_ranges(text, &skipped);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].end_byte, 8);
        assert_eq!(ranges[0].end_point, tree_sitter::Point::new(0, 8));
        assert_eq!(ranges[1].start_point, tree_sitter::Point::new(2, 0));
        assert_eq!(ranges[1].end_point, tree_sitter::Point::new(4, 0));
    }
}
