use std::path::Path;

/// A language Hearth can parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LanguageId {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
    CSharp,
    Ruby,
    Php,
    Lua,
    Bash,
}

impl LanguageId {
    /// Every supported language, in declaration order.
    pub const ALL: [LanguageId; 14] = [
        LanguageId::Rust,
        LanguageId::Python,
        LanguageId::JavaScript,
        LanguageId::TypeScript,
        LanguageId::Tsx,
        LanguageId::Go,
        LanguageId::Java,
        LanguageId::C,
        LanguageId::Cpp,
        LanguageId::CSharp,
        LanguageId::Ruby,
        LanguageId::Php,
        LanguageId::Lua,
        LanguageId::Bash,
    ];

    /// Position in [`LanguageId::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short stable name; also the directory name of the language's query files.
    pub fn name(self) -> &'static str {
        match self {
            LanguageId::Rust => "rust",
            LanguageId::Python => "python",
            LanguageId::JavaScript => "javascript",
            LanguageId::TypeScript => "typescript",
            LanguageId::Tsx => "tsx",
            LanguageId::Go => "go",
            LanguageId::Java => "java",
            LanguageId::C => "c",
            LanguageId::Cpp => "cpp",
            LanguageId::CSharp => "csharp",
            LanguageId::Ruby => "ruby",
            LanguageId::Php => "php",
            LanguageId::Lua => "lua",
            LanguageId::Bash => "bash",
        }
    }

    /// Language from a file path, by extension (or a few well-known file names).
    /// A `.h` header is treated as C (the C grammar parses most C++ headers' declarations too).
    pub fn from_path(path: &Path) -> Option<LanguageId> {
        let file_name = path.file_name()?.to_str()?;
        match file_name {
            "Rakefile" | "Gemfile" => return Some(LanguageId::Ruby),
            ".bashrc" | ".bash_profile" | ".profile" => return Some(LanguageId::Bash),
            _ => {}
        }
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        let language = match extension.as_str() {
            "rs" => LanguageId::Rust,
            "py" | "pyi" | "pyw" => LanguageId::Python,
            "js" | "mjs" | "cjs" | "jsx" => LanguageId::JavaScript,
            "ts" | "mts" | "cts" => LanguageId::TypeScript,
            "tsx" => LanguageId::Tsx,
            "go" => LanguageId::Go,
            "java" => LanguageId::Java,
            "c" | "h" => LanguageId::C,
            "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" | "ipp" | "inl" => LanguageId::Cpp,
            "cs" => LanguageId::CSharp,
            "rb" | "rake" | "gemspec" => LanguageId::Ruby,
            "php" | "phtml" => LanguageId::Php,
            "lua" => LanguageId::Lua,
            "sh" | "bash" => LanguageId::Bash,
            _ => return None,
        };
        Some(language)
    }

    /// Language from an LSP `languageId` (as sent in `textDocument/didOpen`).
    pub fn from_lsp_language_id(language_id: &str) -> Option<LanguageId> {
        let language = match language_id {
            "rust" => LanguageId::Rust,
            "python" => LanguageId::Python,
            "javascript" | "javascriptreact" => LanguageId::JavaScript,
            "typescript" => LanguageId::TypeScript,
            "typescriptreact" => LanguageId::Tsx,
            "go" => LanguageId::Go,
            "java" => LanguageId::Java,
            "c" => LanguageId::C,
            "cpp" | "cuda-cpp" => LanguageId::Cpp,
            "csharp" => LanguageId::CSharp,
            "ruby" => LanguageId::Ruby,
            "php" => LanguageId::Php,
            "lua" => LanguageId::Lua,
            "shellscript" | "bash" | "sh" => LanguageId::Bash,
            _ => return None,
        };
        Some(language)
    }

    /// The tree-sitter grammar.
    pub fn tree_sitter_language(self) -> tree_sitter::Language {
        match self {
            LanguageId::Rust => tree_sitter_rust::LANGUAGE.into(),
            LanguageId::Python => tree_sitter_python::LANGUAGE.into(),
            LanguageId::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            LanguageId::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            LanguageId::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            LanguageId::Go => tree_sitter_go::LANGUAGE.into(),
            LanguageId::Java => tree_sitter_java::LANGUAGE.into(),
            LanguageId::C => tree_sitter_c::LANGUAGE.into(),
            LanguageId::Cpp => tree_sitter_cpp::LANGUAGE.into(),
            LanguageId::CSharp => tree_sitter_c_sharp::LANGUAGE.into(),
            LanguageId::Ruby => tree_sitter_ruby::LANGUAGE.into(),
            LanguageId::Php => tree_sitter_php::LANGUAGE_PHP.into(),
            LanguageId::Lua => tree_sitter_lua::LANGUAGE.into(),
            LanguageId::Bash => tree_sitter_bash::LANGUAGE.into(),
        }
    }

    /// Line comment prefix, e.g. `//`, `#`, `--`.
    pub fn comment_prefix(self) -> &'static str {
        match self {
            LanguageId::Python | LanguageId::Ruby | LanguageId::Bash => "#",
            LanguageId::Lua => "--",
            LanguageId::Rust
            | LanguageId::JavaScript
            | LanguageId::TypeScript
            | LanguageId::Tsx
            | LanguageId::Go
            | LanguageId::Java
            | LanguageId::C
            | LanguageId::Cpp
            | LanguageId::CSharp
            | LanguageId::Php => "//",
        }
    }

    /// Line prefixes (after indentation) of the lines that belong to a definition when they
    /// sit directly above it: comments, doc comments, attributes, decorators, annotations.
    pub fn leading_line_prefixes(self) -> &'static [&'static str] {
        match self {
            LanguageId::Rust => &["//", "/*", "*", "#[", "#!["],
            LanguageId::Python => &["#", "@"],
            LanguageId::JavaScript | LanguageId::TypeScript | LanguageId::Tsx => &["//", "/*", "*", "@"],
            LanguageId::Java => &["//", "/*", "*", "@"],
            LanguageId::CSharp => &["//", "/*", "*", "["],
            LanguageId::Php => &["//", "/*", "*", "#["],
            LanguageId::Go | LanguageId::C | LanguageId::Cpp => &["//", "/*", "*"],
            LanguageId::Ruby | LanguageId::Bash => &["#"],
            LanguageId::Lua => &["--"],
        }
    }

    /// Languages whose files may import each other's definitions (C with C++, JavaScript
    /// with TypeScript). Two languages are related when their families are equal.
    pub fn family(self) -> LanguageId {
        match self {
            LanguageId::Cpp => LanguageId::C,
            LanguageId::TypeScript | LanguageId::Tsx => LanguageId::JavaScript,
            other => other,
        }
    }
}
