//! Data-driven selection tests: one multi-file fixture per language.

mod common;

use common::{assert_budget_respected, build_index, manifest, select_at, select_with, write_fixture};
use hearth_context::{EstimateTokenCounter, Selection, SnippetKind};

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
