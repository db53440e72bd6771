use std::fmt;
use std::sync::OnceLock;

use crate::LanguageId;

/// One of the three query files each language has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    Definitions,
    Imports,
    References,
}

impl QueryKind {
    pub const ALL: [QueryKind; 3] = [QueryKind::Definitions, QueryKind::Imports, QueryKind::References];

    pub fn file_name(self) -> &'static str {
        match self {
            QueryKind::Definitions => "definitions.scm",
            QueryKind::Imports => "imports.scm",
            QueryKind::References => "references.scm",
        }
    }
}

/// The three compiled queries of one language.
pub struct LanguageQueries {
    pub definitions: tree_sitter::Query,
    pub imports: tree_sitter::Query,
    pub references: tree_sitter::Query,
    /// `definitions.scm` and `imports.scm` compiled together, for one-pass outlines.
    pub outline: tree_sitter::Query,
}

impl LanguageQueries {
    pub fn get(&self, kind: QueryKind) -> &tree_sitter::Query {
        match kind {
            QueryKind::Definitions => &self.definitions,
            QueryKind::Imports => &self.imports,
            QueryKind::References => &self.references,
        }
    }
}

/// A query file failed to compile against its grammar (a bug in a `.scm` file; the test
/// `every_query_of_every_language_compiles` catches it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryCompileError {
    pub language: LanguageId,
    pub kind: QueryKind,
    pub message: String,
}

impl fmt::Display for QueryCompileError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "query grammars/queries/{}/{} does not compile: {}",
            self.language.name(),
            self.kind.file_name(),
            self.message
        )
    }
}

impl std::error::Error for QueryCompileError {}

macro_rules! query_files {
    ($directory:literal) => {
        [
            include_str!(concat!("../queries/", $directory, "/definitions.scm")),
            include_str!(concat!("../queries/", $directory, "/imports.scm")),
            include_str!(concat!("../queries/", $directory, "/references.scm")),
        ]
    };
}

fn query_sources(language: LanguageId) -> [&'static str; 3] {
    match language {
        LanguageId::Rust => query_files!("rust"),
        LanguageId::Python => query_files!("python"),
        LanguageId::JavaScript => query_files!("javascript"),
        LanguageId::TypeScript => query_files!("typescript"),
        LanguageId::Tsx => query_files!("tsx"),
        LanguageId::Go => query_files!("go"),
        LanguageId::Java => query_files!("java"),
        LanguageId::C => query_files!("c"),
        LanguageId::Cpp => query_files!("cpp"),
        LanguageId::CSharp => query_files!("csharp"),
        LanguageId::Ruby => query_files!("ruby"),
        LanguageId::Php => query_files!("php"),
        LanguageId::Lua => query_files!("lua"),
        LanguageId::Bash => query_files!("bash"),
    }
}

/// The text of one query file.
pub fn query_source(language: LanguageId, kind: QueryKind) -> &'static str {
    let sources = query_sources(language);
    match kind {
        QueryKind::Definitions => sources[0],
        QueryKind::Imports => sources[1],
        QueryKind::References => sources[2],
    }
}

type CompiledQueries = Result<LanguageQueries, QueryCompileError>;

static COMPILED_QUERIES: [OnceLock<CompiledQueries>; LanguageId::ALL.len()] =
    [const { OnceLock::new() }; LanguageId::ALL.len()];

fn compile(language: LanguageId, kind: QueryKind) -> Result<tree_sitter::Query, QueryCompileError> {
    tree_sitter::Query::new(&language.tree_sitter_language(), query_source(language, kind)).map_err(|error| {
        QueryCompileError {
            language,
            kind,
            message: error.to_string(),
        }
    })
}

/// The compiled queries of `language`, compiled on first use and cached for the process.
pub fn language_queries(language: LanguageId) -> Result<&'static LanguageQueries, QueryCompileError> {
    let compiled = COMPILED_QUERIES[language.index()].get_or_init(|| {
        Ok(LanguageQueries {
            definitions: compile(language, QueryKind::Definitions)?,
            imports: compile(language, QueryKind::Imports)?,
            references: compile(language, QueryKind::References)?,
            outline: tree_sitter::Query::new(
                &language.tree_sitter_language(),
                &format!(
                    "{}\n{}",
                    query_source(language, QueryKind::Definitions),
                    query_source(language, QueryKind::Imports)
                ),
            )
            .map_err(|error| QueryCompileError {
                language,
                kind: QueryKind::Imports,
                message: format!("combined with definitions.scm: {error}"),
            })?,
        })
    });
    compiled.as_ref().map_err(Clone::clone)
}
