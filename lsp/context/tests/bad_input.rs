//! Bad input for the index and the selection: huge lines, files that disappear while the index
//! is built, and a large workspace. Slower at worst; never a panic, a hang or a lost file.

mod common;

use std::path::Path;

use common::write_fixture;
use hearth_context::{select, EstimateTokenCounter, Index, IndexOptions, RenderFormat, SelectionRequest};

fn build(root: &Path) -> Index {
    let options = IndexOptions {
        threads: 2,
        ..IndexOptions::default()
    };
    Index::build(root, &options, &|_, _| {})
}

#[test]
fn huge_lines_are_indexed_or_skipped_and_selection_inside_them_stays_in_budget() {
    let fixture = write_fixture("//- /src/lib.rs\npub fn helper_for_huge() -> u32 { 7 }\n");
    // A 600 kB single line of real-looking code, and a file over the size limit.
    let line: String = (0..20_000)
        .map(|i| format!("let v{i} = helper_for_huge(); "))
        .collect();
    let huge = format!("pub fn huge_line() {{ {line} }}\n");
    std::fs::write(fixture.root().join("src/huge.rs"), &huge).expect("write");
    let over_limit = "// filler\n".repeat(200_000);
    std::fs::write(fixture.root().join("src/over.rs"), &over_limit).expect("write");
    let index = build(fixture.root());
    assert!(
        index.files().all(|file| &*file.relative_path != "src/over.rs"),
        "over the size limit"
    );
    assert_eq!(index.definitions_named("helper_for_huge").len(), 1);

    // The cursor in the middle of the huge line (not on a character boundary, even).
    let path = fixture.root().join("src/huge.rs");
    for cursor in [huge.len() / 2, huge.len() / 2 + 1, huge.len()] {
        for budget in [64, 2000] {
            let request = SelectionRequest::new(&path, &huge, cursor, budget, RenderFormat::PathComments);
            let selection = select(&index, &request, &EstimateTokenCounter);
            assert!(
                selection.total_tokens <= budget,
                "{} > {budget}",
                selection.total_tokens
            );
        }
    }
}

#[test]
fn files_deleted_while_indexing_are_skipped_and_the_rest_is_complete() {
    let fixture = write_fixture("//- /keep/anchor.rs\npub fn anchor() {}\n");
    let root = fixture.root().to_path_buf();
    std::fs::create_dir_all(root.join("gone")).expect("dir");
    for i in 0..1500 {
        std::fs::write(
            root.join(format!("keep/k{i}.rs")),
            format!("pub fn kept_{i}() {{}}\n"),
        )
        .expect("write");
        std::fs::write(
            root.join(format!("gone/g{i}.rs")),
            format!("pub fn gone_{i}() {{}}\n"),
        )
        .expect("write");
    }
    let deleter = {
        let root = root.clone();
        std::thread::spawn(move || {
            for i in 0..1500 {
                let _ = std::fs::remove_file(root.join(format!("gone/g{i}.rs")));
            }
            let _ = std::fs::remove_dir_all(root.join("gone"));
        })
    };
    let index = build(&root);
    deleter.join().expect("deleter");
    // Every file that stayed is in the index; of the deleted ones, whatever was read in time.
    for i in 0..1500 {
        assert_eq!(index.definitions_named(&format!("kept_{i}")).len(), 1, "kept_{i}");
    }
    let gone = index
        .files()
        .filter(|f| f.relative_path.starts_with("gone/"))
        .count();
    assert_eq!(index.file_count(), 1501 + gone);
}

#[test]
fn a_workspace_of_twenty_thousand_files_is_indexed_whole() {
    let fixture = write_fixture("//- /main.py\nfrom pkg.m123 import f_123\n\nf_123()\n");
    let root = fixture.root();
    for dir in 0..20 {
        let dir_path = root.join(format!("pkg{dir}"));
        std::fs::create_dir_all(&dir_path).expect("dir");
        for i in 0..1000 {
            let n = dir * 1000 + i;
            std::fs::write(
                dir_path.join(format!("m{n}.py")),
                format!("def f_{n}(x):\n    return x + {n}\n"),
            )
            .expect("write");
        }
    }
    let index = build(root);
    assert_eq!(index.file_count(), 20_001);
    let found = index.definitions_named("f_19999");
    assert_eq!(found.len(), 1);
    assert_eq!(&*found[0].0.relative_path, "pkg19/m19999.py");
    let text = "from pkg.m123 import f_123\n\nf_123()\n";
    let path = root.join("main.py");
    let request = SelectionRequest::new(&path, text, text.len() - 3, 500, RenderFormat::PathComments);
    let selection = select(&index, &request, &EstimateTokenCounter);
    assert!(selection.total_tokens <= 500);
    assert!(
        selection.snippets.iter().any(|s| s.path == "pkg0/m123.py"),
        "{:?}",
        selection.snippets.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
}
