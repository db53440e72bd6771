use hearth_grammars::{language_queries, query_source, LanguageId, QueryKind};

#[test]
fn every_query_of_every_language_compiles() {
    let mut failures = Vec::new();
    for language in LanguageId::ALL {
        for kind in QueryKind::ALL {
            let source = query_source(language, kind);
            if let Err(error) = tree_sitter::Query::new(&language.tree_sitter_language(), source) {
                failures.push(format!("{}/{}: {error}", language.name(), kind.file_name()));
            }
        }
        if failures.is_empty() {
            let queries = language_queries(language).expect("compiled queries");
            assert!(queries.definitions.pattern_count() > 0, "{}", language.name());
            assert!(queries.imports.pattern_count() > 0, "{}", language.name());
            assert!(queries.references.pattern_count() > 0, "{}", language.name());
        }
    }
    assert!(
        failures.is_empty(),
        "queries that do not compile:\n{}",
        failures.join("\n")
    );
}
