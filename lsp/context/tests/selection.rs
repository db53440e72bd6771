//! Data-driven selection tests: one multi-file fixture per language.

mod common;

use common::{assert_budget_respected, build_index, manifest, select_at, select_with, write_fixture};
use hearth_context::{
    select, EstimateTokenCounter, RecentRegion, RecentRegionKind, RenderFormat, Selection, SelectionRequest,
    SnippetKind, TokenCounter,
};

const SECRET_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

fn snippet_with<'a>(
    selection: &'a Selection,
    path: &str,
    kind: SnippetKind,
) -> Option<&'a hearth_context::Snippet> {
    selection
        .snippets
        .iter()
        .find(|snippet| snippet.path == path && snippet.kind == kind)
}

fn assert_no_secret(selection: &Selection) {
    assert!(
        !selection.rendered.contains(SECRET_TOKEN),
        "{}",
        selection.rendered
    );
    assert!(selection
        .snippets
        .iter()
        .all(|snippet| !snippet.path.ends_with(".env")));
}

const RUST_FIXTURE: &str = r#"
//- /src/main.rs
use crate::store::Store;
mod config;
mod store;

fn main() {
    let config = config::parse_config("path = /tmp/db");
    let store = Store::open(&config.path);
    let value = store.get("key");
    println!("{value:?} {}", store.$0);
}
//- /src/store.rs
use std::collections::HashMap;

/// An in-memory key-value store.
#[derive(Debug, Default)]
pub struct Store {
    path: String,
    entries: HashMap<String, String>,
}

impl Store {
    /// Opens the store at `path`.
    pub fn open(path: &str) -> Store {
        Store { path: path.to_string(), entries: HashMap::new() }
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.entries.get(key)
    }
}
//- /src/config.rs
pub struct Config {
    pub path: String,
}

/// Parses the configuration text.
pub fn parse_config(text: &str) -> Config {
    let path = text.trim_start_matches("path = ").to_string();
    Config { path }
}

const API_KEY: &str = "sk-live0123456789abcdefghijklmnop";
//- /.env
GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345
"#;

#[test]
fn rust_cross_file_definitions_imports_and_no_secrets() {
    let fixture = write_fixture(RUST_FIXTURE);
    let index = build_index(&fixture);
    assert_eq!(index.file_count(), 3);
    let selection = select_at(&index, &fixture, 4000);
    let manifest = manifest(&selection);
    let parse_config = selection
        .snippets
        .iter()
        .find(|snippet| snippet.reason.starts_with("definition of `parse_config`"))
        .expect("parse_config definition");
    assert_eq!(parse_config.path, "src/config.rs");
    assert!(parse_config
        .text
        .starts_with("/// Parses the configuration text.\npub fn parse_config(text: &str) -> Config {"));
    let store_module = snippet_with(&selection, "src/store.rs", SnippetKind::ModuleSignatures).is_some()
        || selection.snippets.iter().any(|snippet| {
            snippet.path == "src/store.rs" && snippet.text.contains("pub fn open(path: &str) -> Store")
        });
    assert!(store_module, "{manifest:#?}");
    assert_no_secret(&selection);
    assert_budget_respected(&selection, &EstimateTokenCounter);
}

/// Checks the common expectations of a language fixture: a definition from another file
/// whose text contains `definition_text`, signatures of the imported module `module_path`
/// containing `module_text`, no secret, and the budget.
fn check_language_fixture(
    fixture_text: &str,
    definition_path: &str,
    definition_text: &str,
    module_path: &str,
    module_text: &str,
) -> Selection {
    let fixture = write_fixture(fixture_text);
    let index = build_index(&fixture);
    let selection = select_at(&index, &fixture, 4000);
    let manifest = manifest(&selection);
    let shown = format!("{manifest:#?}\n{}", selection.rendered);
    assert!(
        selection
            .snippets
            .iter()
            .any(|snippet| snippet.path == definition_path
                && snippet.kind == SnippetKind::Definition
                && snippet.text.contains(definition_text)),
        "missing definition `{definition_text}` from {definition_path}:\n{shown}"
    );
    assert!(
        selection
            .snippets
            .iter()
            .any(|snippet| snippet.path == module_path
                && matches!(
                    snippet.kind,
                    SnippetKind::ModuleSignatures | SnippetKind::Definition
                )
                && snippet.text.contains(module_text)),
        "missing signatures `{module_text}` of the imported {module_path}:\n{shown}"
    );
    assert!(
        selection
            .snippets
            .iter()
            .any(|snippet| snippet.path == module_path && snippet.reason.contains("import")),
        "no import-based snippet of {module_path}:\n{shown}"
    );
    assert_no_secret(&selection);
    assert_budget_respected(&selection, &EstimateTokenCounter);
    selection
}

const PYTHON_FIXTURE: &str = r#"
//- /app/main.py
from app.models import User
from app import helpers

def register(name):
    user = User(helpers.slugify(name))
    return helpers.$0
//- /app/models.py
class User:
    """A registered user."""

    def __init__(self, slug):
        self.slug = slug

    def display_name(self) -> str:
        return self.slug.title()
//- /app/helpers.py
import re

def slugify(text: str) -> str:
    """Lower-case, dash-separated."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
//- /app/__init__.py
//- /.env
GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345
//- /app/.env.production
API_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345
"#;

#[test]
fn python_cross_file_definitions_imports_and_no_secrets() {
    let selection = check_language_fixture(
        PYTHON_FIXTURE,
        "app/helpers.py",
        "def slugify(text: str) -> str:",
        "app/models.py",
        "class User:",
    );
    let user = selection
        .snippets
        .iter()
        .find(|snippet| snippet.path == "app/models.py")
        .expect("models snippet");
    assert!(
        user.text.contains("def display_name(self) -> str:"),
        "{}",
        user.text
    );
}

const TYPESCRIPT_FIXTURE: &str = r#"
//- /src/app.ts
import { loadConfig } from "./config";
import { Logger } from "./log/logger";

export function start(path: string) {
  const logger = new Logger("app");
  const config = loadConfig(path);
  logger.info(formatBanner(config.name));
  $0
}
//- /src/config.ts
export interface AppConfig {
  name: string;
  port: number;
}

export function loadConfig(path: string): AppConfig {
  return { name: path, port: 8080 };
}
//- /src/log/logger.ts
export class Logger {
  constructor(private scope: string) {}

  info(message: string): void {
    console.log(`[${this.scope}] ${message}`);
  }
}
//- /src/banner.js
export function formatBanner(name) {
  return `== ${name} ==`;
}
//- /node_modules/left-pad/index.js
export function formatBanner(name) { return name; }
//- /.env
GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345
"#;

#[test]
fn typescript_and_javascript_cross_file_definitions_imports_and_no_secrets() {
    let selection = check_language_fixture(
        TYPESCRIPT_FIXTURE,
        "src/config.ts",
        "export function loadConfig(path: string): AppConfig {",
        "src/log/logger.ts",
        "info(message: string): void {",
    );
    // A JavaScript definition used from TypeScript, found by name; never node_modules.
    assert!(selection
        .snippets
        .iter()
        .any(|snippet| snippet.path == "src/banner.js"
            && snippet.text.contains("export function formatBanner(name)")));
    assert!(selection
        .snippets
        .iter()
        .all(|snippet| !snippet.path.starts_with("node_modules")));
}

const GO_FIXTURE: &str = r#"
//- /go.mod
module example.com/app
//- /cmd/server/main.go
package main

import (
	"fmt"

	"example.com/app/internal/store"
)

func main() {
	db, err := store.Open("/tmp/db")
	if err != nil {
		panic(err)
	}
	fmt.Println(db.$0)
}
//- /internal/store/store.go
package store

// Store keeps values by key.
type Store struct {
	path  string
	items map[string]string
}

// Open opens the store at path.
func Open(path string) (*Store, error) {
	return &Store{path: path, items: map[string]string{}}, nil
}

func (s *Store) Get(key string) string {
	return s.items[key]
}
//- /internal/store/credentials.json
{"token": "ghp_0123456789abcdefghijABCDEFGHIJ012345"}
"#;

#[test]
fn go_cross_file_definitions_imports_and_no_secrets() {
    check_language_fixture(
        GO_FIXTURE,
        "internal/store/store.go",
        "func Open(path string) (*Store, error) {",
        "internal/store/store.go",
        "type Store struct {",
    );
}

const JAVA_FIXTURE: &str = r#"
//- /src/main/java/com/acme/App.java
package com.acme;

import com.acme.store.Store;

public class App {
    public static void main(String[] args) {
        Store store = new Store("/tmp/db");
        store.save("key", Formatter.pretty(args));
        $0
    }
}
//- /src/main/java/com/acme/store/Store.java
package com.acme.store;

/** Keeps values. */
public class Store {
    private final String path;

    public Store(String path) { this.path = path; }

    public void save(String key, String value) {
        System.out.println(key + value);
    }
}
//- /src/main/java/com/acme/Formatter.java
package com.acme;

class Formatter {
    static String pretty(String[] values) {
        return String.join(", ", values);
    }
}
//- /src/main/resources/secrets.properties
token=ghp_0123456789abcdefghijABCDEFGHIJ012345
"#;

#[test]
fn java_cross_file_definitions_imports_and_no_secrets() {
    check_language_fixture(
        JAVA_FIXTURE,
        "src/main/java/com/acme/Formatter.java",
        "static String pretty(String[] values) {",
        "src/main/java/com/acme/store/Store.java",
        "public void save(String key, String value) {",
    );
}

const C_FIXTURE: &str = r#"
//- /src/main.c
#include <stdio.h>
#include "store.h"

int main(void) {
    store_t *store = store_open("/tmp/db");
    printf("%d\n", store_count(store));
    $0
    return 0;
}
//- /src/store.h
#ifndef STORE_H
#define STORE_H

typedef struct store {
    int count;
    char *path;
} store_t;

/* Opens the store at path. */
store_t *store_open(const char *path);
int store_count(const store_t *store);

#endif
//- /src/store.c
#include "store.h"

int store_count(const store_t *store) {
    return store->count;
}
//- /keys/server.pem
-----BEGIN PRIVATE KEY-----
ghp_0123456789abcdefghijABCDEFGHIJ012345
-----END PRIVATE KEY-----
"#;

#[test]
fn c_cross_file_definitions_imports_and_no_secrets() {
    check_language_fixture(
        C_FIXTURE,
        "src/store.c",
        "int store_count(const store_t *store) {",
        "src/store.h",
        "store_t *store_open(const char *path);",
    );
}

const CPP_FIXTURE: &str = r#"
//- /src/main.cpp
#include "shapes/shape.hpp"

int main() {
    geo::Circle circle(2.0);
    double total = circle.area() + unit_square().area();
    $0
    return 0;
}
//- /src/shapes/shape.hpp
#pragma once
namespace geo {

class Shape {
public:
    virtual ~Shape() = default;
    virtual double area() const = 0;
};

class Circle : public Shape {
public:
    explicit Circle(double radius) : radius_(radius) {}
    double area() const override;
private:
    double radius_;
};

}  // namespace geo
//- /src/shapes/square.cpp
#include "shape.hpp"

geo::Circle unit_square() {
    return geo::Circle(1.0);
}
//- /id_rsa
ghp_0123456789abcdefghijABCDEFGHIJ012345
"#;

#[test]
fn cpp_cross_file_definitions_imports_and_no_secrets() {
    check_language_fixture(
        CPP_FIXTURE,
        "src/shapes/square.cpp",
        "geo::Circle unit_square() {",
        "src/shapes/shape.hpp",
        "class Circle : public Shape {",
    );
}

#[test]
fn budgets_are_never_exceeded_for_any_fixture_and_budget() {
    let fixtures = [
        RUST_FIXTURE,
        PYTHON_FIXTURE,
        TYPESCRIPT_FIXTURE,
        GO_FIXTURE,
        JAVA_FIXTURE,
        C_FIXTURE,
        CPP_FIXTURE,
    ];
    // A counter that charges more for a concatenation than for its parts (like a
    // tokenizer that merges poorly across boundaries), to exercise the final trim.
    let superadditive = |text: &str| text.len() / 3 + text.len() * text.len() / 20_000;
    for fixture_text in fixtures {
        let fixture = write_fixture(fixture_text);
        let index = build_index(&fixture);
        for budget in [0, 1, 7, 20, 50, 100, 150, 300, 600, 1000, 4000, 128_000] {
            let selection = select_at(&index, &fixture, budget);
            assert_budget_respected(&selection, &EstimateTokenCounter);
            assert_eq!(selection.budget_tokens, budget);
            let selection = select_with(
                &index,
                &fixture,
                fixture.cursor_text(),
                fixture.cursor_offset,
                budget,
                &superadditive,
            );
            assert_budget_respected(&selection, &superadditive);
        }
        // A generous budget includes something; a zero budget nothing.
        assert!(!select_at(&index, &fixture, 128_000).snippets.is_empty());
        let empty = select_at(&index, &fixture, 0);
        assert!(empty.snippets.is_empty() && empty.rendered.is_empty());
    }
}

#[test]
fn small_budget_keeps_the_best_snippets_within_it() {
    let fixture = write_fixture(RUST_FIXTURE);
    let index = build_index(&fixture);
    let large = select_at(&index, &fixture, 4000);
    let small = select_at(&index, &fixture, 120);
    assert!(small.total_tokens <= 120);
    assert!(!small.snippets.is_empty());
    assert!(small.snippets.len() < large.snippets.len());
    // What the small budget kept is among the best scored of the large selection.
    let best_score = large
        .snippets
        .iter()
        .map(|snippet| snippet.score)
        .fold(0.0, f32::max);
    assert!(small
        .snippets
        .iter()
        .any(|snippet| snippet.score >= best_score * 0.6));
}

/// Typing a character at the cursor must not change the rendered context.
#[test]
fn rendered_front_is_stable_while_typing_at_the_cursor() {
    for fixture_text in [
        RUST_FIXTURE,
        PYTHON_FIXTURE,
        TYPESCRIPT_FIXTURE,
        GO_FIXTURE,
        JAVA_FIXTURE,
        C_FIXTURE,
        CPP_FIXTURE,
    ] {
        let fixture = write_fixture(fixture_text);
        let index = build_index(&fixture);
        for budget in [150, 600, 4000] {
            let mut text = fixture.cursor_text().to_string();
            let mut cursor = fixture.cursor_offset;
            let before = select_with(&index, &fixture, &text, cursor, budget, &EstimateTokenCounter);
            for typed in ['g', 'e', 't', '_'] {
                text.insert(cursor, typed);
                cursor += 1;
                let after = select_with(&index, &fixture, &text, cursor, budget, &EstimateTokenCounter);
                assert_eq!(
                    before.rendered, after.rendered,
                    "budget {budget}, typed up to {typed:?}"
                );
            }
        }
    }
}

#[test]
fn same_file_definitions_far_from_cursor_and_enclosing_impl_skeleton() {
    let filler: String = (0..70)
        .map(|line| format!("        let step_{line} = {line};\n"))
        .collect();
    let fixture_text = format!(
        r#"
//- /src/engine.rs
/// Tunes the engine.
pub fn far_helper(level: u32) -> u32 {{
    level * 2
}}

impl Engine {{
    pub fn start(&mut self) {{
{filler}        let tuned = far_helper(near_helper());
        $0
    }}

    pub fn stop(&mut self) {{}}
}}

pub fn near_helper() -> u32 {{ 1 }}
//- /src/model.rs
pub struct Engine {{
    pub speed: u32,
}}
"#
    );
    let fixture = write_fixture(&fixture_text);
    let index = build_index(&fixture);
    let selection = select_at(&index, &fixture, 4000);
    let manifest = manifest(&selection);
    let far = selection
        .snippets
        .iter()
        .find(|snippet| snippet.reason.starts_with("definition of `far_helper`"))
        .unwrap_or_else(|| panic!("{manifest:#?}"));
    assert_eq!(
        (far.path.as_str(), far.start_line, far.end_line),
        ("src/engine.rs", 1, 4)
    );
    assert!(far.reason.ends_with("(same file)"), "{}", far.reason);
    // near_helper is within the same-file distance: the prompt already has it.
    assert!(
        !selection
            .snippets
            .iter()
            .any(|snippet| snippet.reason.contains("near_helper")),
        "{manifest:#?}"
    );
    let skeleton = snippet_with(&selection, "src/engine.rs", SnippetKind::EnclosingScope)
        .unwrap_or_else(|| panic!("{manifest:#?}"));
    assert_eq!(skeleton.reason, "enclosing impl `Engine`");
    assert!(
        skeleton
            .text
            .contains("pub fn start(&mut self) {\n        // ...\n    }"),
        "{}",
        skeleton.text
    );
    assert!(
        skeleton.text.contains("pub fn stop(&mut self) {}"),
        "{}",
        skeleton.text
    );
    let model = snippet_with(&selection, "src/model.rs", SnippetKind::Definition)
        .unwrap_or_else(|| panic!("{manifest:#?}"));
    assert!(model.text.contains("pub speed: u32,"));
    // Order: enclosing scope before definitions.
    let kinds: Vec<SnippetKind> = selection.snippets.iter().map(|snippet| snippet.kind).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(kinds, sorted);
}

#[test]
fn recent_edits_come_last_most_recent_first_in_score_and_skip_secrets() {
    let fixture = write_fixture(
        r#"
//- /src/main.rs
fn main() {
    $0
}
//- /src/edited.rs
pub fn one() {}
pub fn two() {}
pub fn three() {}
pub fn four() {}
pub fn five() {}
pub fn six() {}
pub fn seven() {}
pub fn eight() {}
pub fn nine() {}
pub fn ten() {}
//- /src/older.rs
pub fn older_change() {}
//- /.env
TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345
"#,
    );
    let index = build_index(&fixture);
    let regions = [
        RecentRegion {
            path: fixture.root().join("src/older.rs"),
            start_line: 1,
            end_line: 1,
            sequence: 1,
            kind: RecentRegionKind::View,
        },
        RecentRegion {
            path: "src/edited.rs".into(),
            start_line: 5,
            end_line: 6,
            sequence: 7,
            kind: RecentRegionKind::Edit,
        },
        RecentRegion {
            path: ".env".into(),
            start_line: 1,
            end_line: 1,
            sequence: 9,
            kind: RecentRegionKind::Edit,
        },
        RecentRegion {
            path: "src/main.rs".into(),
            start_line: 1,
            end_line: 2,
            sequence: 10,
            kind: RecentRegionKind::Edit,
        },
    ];
    let path = fixture.cursor_absolute_path();
    let mut request = SelectionRequest::new(
        &path,
        fixture.cursor_text(),
        fixture.cursor_offset,
        4000,
        common::file_sep(),
    );
    request.recent_regions = &regions;
    let selection = select(&index, &request, &EstimateTokenCounter);
    assert_eq!(
        manifest(&selection),
        vec![
            "recent_edit src/edited.rs:2-9 recent edit",
            "recent_edit src/older.rs:1-1 recently viewed",
        ]
    );
    assert!(selection.snippets[0].score > selection.snippets[1].score);
    assert_eq!(
        selection.rendered,
        "<|file_sep|>src/edited.rs\npub fn two() {}\npub fn three() {}\npub fn four() {}\npub fn five() {}\npub fn six() {}\npub fn seven() {}\npub fn eight() {}\npub fn nine() {}\n<|file_sep|>src/older.rs\npub fn older_change() {}\n"
    );
    assert_no_secret(&selection);
}

#[test]
fn path_comment_format_uses_each_language_comment_prefix() {
    let fixture = write_fixture(
        r#"
//- /web/app.ts
import { greet } from "./greet";
greet($0);
//- /web/greet.ts
export function greet(name: string): string {
  return `hi ${name}`;
}
"#,
    );
    let index = build_index(&fixture);
    let path = fixture.cursor_absolute_path();
    let request = SelectionRequest::new(
        &path,
        fixture.cursor_text(),
        fixture.cursor_offset,
        4000,
        RenderFormat::PathComments,
    );
    let selection = select(&index, &request, &EstimateTokenCounter);
    assert_eq!(
        selection.rendered,
        "// path: web/greet.ts\nexport function greet(name: string): string {\n  return `hi ${name}`;\n}\n\n"
    );
    assert_eq!(selection.snippets.len(), 1);
    assert_eq!(
        selection.snippets[0].reason,
        "definition of `greet` used at cursor; definition of `greet` imported from `./greet`; import `./greet`"
    );
    assert_eq!(
        selection.total_tokens,
        EstimateTokenCounter.count(&selection.rendered)
    );

    let python =
        write_fixture("//- /a.py\nfrom b import thing\nthing($0)\n//- /b.py\ndef thing():\n    return 1\n");
    let index = build_index(&python);
    let path = python.cursor_absolute_path();
    let request = SelectionRequest::new(
        &path,
        python.cursor_text(),
        python.cursor_offset,
        4000,
        RenderFormat::PathComments,
    );
    let selection = select(&index, &request, &EstimateTokenCounter);
    assert!(
        selection.rendered.starts_with("# path: b.py\ndef thing():\n"),
        "{}",
        selection.rendered
    );
}

#[test]
fn similar_code_from_other_files_is_found_without_shared_names() {
    let fixture = write_fixture(
        r#"
//- /src/handlers/users.py
def handle_users(request):
    payload = request.json()
    validate_payload(payload, schema="users")
    record = database.insert("users", payload)
    audit_log.write("created", record.identifier)
    return respond(201, record)
//- /src/handlers/orders.py
def handle_orders(request):
    payload = request.json()
    validate_payload(payload, schema="orders")
    record = database.insert("orders", payload)
    $0
//- /src/unrelated.py
def plot_histogram(values, buckets):
    figure = canvas.figure()
    figure.bars(values, buckets)
    return figure
"#,
    );
    let index = build_index(&fixture);
    let selection = select_at(&index, &fixture, 4000);
    let similar = snippet_with(&selection, "src/handlers/users.py", SnippetKind::SimilarCode)
        .unwrap_or_else(|| panic!("{:#?}", manifest(&selection)));
    assert!(similar
        .text
        .contains("audit_log.write(\"created\", record.identifier)"));
    assert!(!selection
        .snippets
        .iter()
        .any(|snippet| snippet.path == "src/unrelated.py"));
}

#[test]
fn selection_manifest_serialises_to_json() {
    let fixture = write_fixture(RUST_FIXTURE);
    let index = build_index(&fixture);
    let selection = select_at(&index, &fixture, 4000);
    let json = serde_json::to_value(&selection).expect("serialisable");
    let first = &json["snippets"][0];
    assert!(first["path"].is_string());
    assert!(first["start_line"].as_u64().is_some_and(|line| line >= 1));
    assert!(first["kind"].is_string());
    assert!(first["reason"].is_string());
    assert_eq!(json["budget_tokens"], 4000);
    assert_eq!(json["total_tokens"].as_u64(), Some(selection.total_tokens as u64));
    let format = serde_json::to_value(common::file_sep()).expect("serialisable");
    assert_eq!(
        format,
        serde_json::json!({"type": "file_sep", "file_sep": "<|file_sep|>"})
    );
}

#[test]
fn cursor_positions_out_of_range_or_inside_characters_do_not_panic() {
    let fixture =
        write_fixture("//- /src/main.rs\nfn main() { let é = \"ü\"; $0 }\n//- /src/b.rs\npub fn b() {}\n");
    let index = build_index(&fixture);
    let text = fixture.cursor_text();
    for cursor in [0, 1, 17, 18, 19, 22, text.len(), text.len() + 10, usize::MAX] {
        let selection = select_with(&index, &fixture, text, cursor, 500, &EstimateTokenCounter);
        assert_budget_respected(&selection, &EstimateTokenCounter);
    }
    for text in ["", "\n\n\n", "fn (((", "\u{feff}fn main() {}"] {
        let selection = select_with(&index, &fixture, text, 3, 500, &EstimateTokenCounter);
        assert_budget_respected(&selection, &EstimateTokenCounter);
    }
}

/// An imported module's outline must not show one class's methods under another: when a class
/// header is left out of the outline (it is shown elsewhere), its methods go with it.
#[test]
fn outlines_never_attach_methods_to_the_wrong_class() {
    let fixture = write_fixture(
        r#"//- /shop/models.py
from dataclasses import dataclass


@dataclass
class Product:
    sku: str
    name: str
    price_cents: int

    def discounted(self, percent: int) -> int:
        return self.price_cents * (100 - percent) // 100


class Cart:
    def __init__(self):
        self.items = []

    def add(self, product: Product):
        self.items.append(product)

    def total(self) -> int:
        return sum(item.price_cents for item in self.items)
//- /shop/app.py
from shop.models import Product, Cart


def checkout(cart: Cart, product: Product) -> int:
    cart.add(product)
    return product.discounted(10) + $0
"#,
    );
    let index = build_index(&fixture);
    for budget in (30..600).step_by(5) {
        let selection = select_at(&index, &fixture, budget);
        for snippet in selection.snippets.iter().filter(|s| s.path == "shop/models.py") {
            let mut class = None;
            for line in snippet.text.lines() {
                if let Some(name) = line.strip_prefix("class ") {
                    class = Some(name.trim_end_matches(':').to_string());
                }
                for method in ["def __init__", "def add", "def total"] {
                    // A snippet may be the method alone; under a class header, it must be Cart's.
                    if line.trim_start().starts_with(method) && class.is_some() {
                        assert_eq!(
                            class.as_deref(),
                            Some("Cart"),
                            "budget {budget}: {method} shown under {class:?}:\n{}",
                            snippet.text
                        );
                    }
                }
            }
        }
    }
}
