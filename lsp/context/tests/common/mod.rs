//! Multi-file fixtures: `//- /path` starts a file, `$0` marks the cursor (once).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hearth_context::{
    select, EstimateTokenCounter, Index, IndexOptions, RenderFormat, Selection, SelectionRequest,
    TokenCounter,
};

pub struct Fixture {
    pub directory: tempfile::TempDir,
    /// (relative path, text without the cursor marker)
    pub files: Vec<(String, String)>,
    pub cursor_path: Option<String>,
    pub cursor_offset: usize,
}

impl Fixture {
    pub fn root(&self) -> &Path {
        self.directory.path()
    }

    pub fn cursor_text(&self) -> &str {
        let path = self.cursor_path.as_deref().expect("fixture has a $0 cursor");
        self.files
            .iter()
            .find(|(file, _)| file == path)
            .map(|(_, text)| text.as_str())
            .expect("cursor file exists")
    }

    pub fn cursor_absolute_path(&self) -> PathBuf {
        self.root()
            .join(self.cursor_path.as_deref().expect("fixture has a $0 cursor"))
    }
}

/// Parses the fixture text and writes its files into a fresh temporary directory.
pub fn write_fixture(fixture: &str) -> Fixture {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut files: Vec<(String, String)> = Vec::new();
    for line in fixture.split_inclusive('\n') {
        if let Some(path) = line.strip_prefix("//- /") {
            files.push((path.trim().to_string(), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
        } else {
            assert!(
                line.trim().is_empty(),
                "text before the first //- header: {line:?}"
            );
        }
    }
    let mut cursor_path = None;
    let mut cursor_offset = 0;
    for (path, text) in &mut files {
        if let Some(offset) = text.find("$0") {
            assert!(cursor_path.is_none(), "more than one $0 cursor");
            text.replace_range(offset..offset + 2, "");
            cursor_path = Some(path.clone());
            cursor_offset = offset;
        }
        let absolute = directory.path().join(&*path);
        std::fs::create_dir_all(absolute.parent().expect("file has a parent")).expect("create directories");
        std::fs::write(&absolute, text.as_bytes()).expect("write fixture file");
    }
    Fixture {
        directory,
        files,
        cursor_path,
        cursor_offset,
    }
}

pub fn build_index(fixture: &Fixture) -> Index {
    Index::build(fixture.root(), &IndexOptions::default(), &|_, _| {})
}

pub fn file_sep() -> RenderFormat {
    RenderFormat::FileSep {
        file_sep: "<|file_sep|>".to_string(),
    }
}

/// Selects at the fixture's cursor with the estimate counter.
pub fn select_at(index: &Index, fixture: &Fixture, budget_tokens: usize) -> Selection {
    select_with(
        index,
        fixture,
        fixture.cursor_text(),
        fixture.cursor_offset,
        budget_tokens,
        &EstimateTokenCounter,
    )
}

pub fn select_with(
    index: &Index,
    fixture: &Fixture,
    text: &str,
    cursor_offset: usize,
    budget_tokens: usize,
    counter: &dyn TokenCounter,
) -> Selection {
    let path = fixture.cursor_absolute_path();
    let request = SelectionRequest::new(&path, text, cursor_offset, budget_tokens, file_sep());
    select(index, &request, counter)
}

/// One line per snippet: `kind path:start-end reason`.
pub fn manifest(selection: &Selection) -> Vec<String> {
    selection
        .snippets
        .iter()
        .map(|snippet| {
            format!(
                "{} {}:{}-{} {}",
                serde_json::to_value(snippet.kind)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_string))
                    .unwrap_or_default(),
                snippet.path,
                snippet.start_line,
                snippet.end_line,
                snippet.reason
            )
        })
        .collect()
}

/// Budget invariants that must hold for every selection.
pub fn assert_budget_respected(selection: &Selection, counter: &dyn TokenCounter) {
    let snippet_total: usize = selection.snippets.iter().map(|snippet| snippet.tokens).sum();
    assert!(
        snippet_total <= selection.budget_tokens,
        "snippet tokens {snippet_total} > budget {}",
        selection.budget_tokens
    );
    assert_eq!(counter.count(&selection.rendered), selection.total_tokens);
    assert!(selection.total_tokens <= selection.budget_tokens);
}
