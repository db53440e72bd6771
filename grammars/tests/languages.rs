//! Per-language tests: parse a small snippet and check what the queries capture.

use hearth_grammars::{
    extract_definitions, extract_imports, extract_outline, extract_references, parse, syntax_error_count,
    LanguageId,
};

/// Definitions as `kind name` or `kind Parent::name`, in source order.
fn definitions(language: LanguageId, text: &str) -> Vec<String> {
    let tree = parse(language, text).expect("grammar loads");
    let definitions = extract_definitions(language, &tree, text);
    // The one-pass outline finds exactly what the two separate queries find.
    let outline = extract_outline(language, &tree, text);
    assert_eq!(outline.definitions, definitions);
    assert_eq!(outline.imports, extract_imports(language, &tree, text));
    definitions
        .iter()
        .map(|definition| match definition.parent {
            Some(parent) => format!(
                "{} {}::{}",
                definition.kind.name(),
                definitions[parent].name,
                definition.name
            ),
            None => format!("{} {}", definition.kind.name(), definition.name),
        })
        .collect()
}

/// Signatures (text up to the body), in source order.
fn signatures(language: LanguageId, text: &str) -> Vec<String> {
    let tree = parse(language, text).expect("grammar loads");
    extract_definitions(language, &tree, text)
        .iter()
        .map(|definition| text[definition.byte_range.start..definition.signature_end_byte].to_string())
        .collect()
}

/// Imports as `modules | names`.
fn imports(language: LanguageId, text: &str) -> Vec<String> {
    let tree = parse(language, text).expect("grammar loads");
    extract_imports(language, &tree, text)
        .iter()
        .map(|import| format!("{} | {}", import.modules.join(","), import.names.join(",")))
        .collect()
}

fn references(language: LanguageId, text: &str) -> Vec<String> {
    let tree = parse(language, text).expect("grammar loads");
    extract_references(language, &tree, text, None)
        .into_iter()
        .map(|reference| reference.name)
        .collect()
}

#[test]
fn rust_definitions_imports_and_references() {
    let text = r#"use crate::store::{Store, open};
use std::collections::HashMap;
use super::config::*;
mod parser;

/// A point.
#[derive(Debug)]
pub struct Point { x: i32, y: i32 }

pub enum Shape { Circle(f64), Square }

pub trait Area {
    fn area(&self) -> f64;
}

impl Area for Point {
    fn area(&self) -> f64 { 0.0 }
}

impl<T> Wrapper<T> {
    pub fn new(value: T) -> Self { Wrapper(value) }
}

pub fn parse_config(text: &str) -> Result<Config, Error> {
    let inner = |x: u32| x + 1;
    todo!()
}

const LIMIT: usize = 10;
static NAME: &str = "x";
type Alias = HashMap<String, u32>;
macro_rules! square { ($x:expr) => { $x * $x }; }
mod inline { fn hidden() {} }
"#;
    assert_eq!(
        definitions(LanguageId::Rust, text),
        vec![
            "struct Point",
            "enum Shape",
            "trait Area",
            "method Area::area",
            "impl Point",
            "method Point::area",
            "impl Wrapper",
            "method Wrapper::new",
            "function parse_config",
            "constant LIMIT",
            "constant NAME",
            "type Alias",
            "macro square",
            "module inline",
            "function inline::hidden",
        ]
    );
    let signatures = signatures(LanguageId::Rust, text);
    assert_eq!(signatures[0], "pub struct Point");
    assert_eq!(signatures[3], "fn area(&self) -> f64;");
    assert_eq!(
        signatures[8],
        "pub fn parse_config(text: &str) -> Result<Config, Error>"
    );
    assert_eq!(signatures[9], "const LIMIT: usize = 10;");
    assert_eq!(
        imports(LanguageId::Rust, text),
        vec![
            "crate::store | Store,open",
            "std::collections | HashMap",
            "super::config | ",
            "parser | ",
        ]
    );
    let references = references(LanguageId::Rust, "fn f() { let total = helper(item.count); }");
    assert_eq!(references, vec!["f", "total", "helper", "item", "count"]);
}

#[test]
fn python_definitions_and_imports() {
    let text = r#"import os
import numpy as np
from app.models import User, Group as G
from . import helpers

MAX_USERS = 100

@dataclass
class Service(Base):
    """Service docs."""

    def __init__(self, store):
        self.store = store

    def find(self, user_id: int) -> User:
        def inner():
            pass
        return self.store.get(user_id)

def main():
    pass
"#;
    assert_eq!(
        definitions(LanguageId::Python, text),
        vec![
            "constant MAX_USERS",
            "class Service",
            "method Service::__init__",
            "method Service::find",
            "function find::inner",
            "function main",
        ]
    );
    let signatures = signatures(LanguageId::Python, text);
    assert_eq!(signatures[1], "class Service(Base):");
    assert_eq!(signatures[3], "def find(self, user_id: int) -> User:");
    assert_eq!(
        imports(LanguageId::Python, text),
        vec!["os | ", "numpy | ", "app.models | User,Group", ". | helpers"]
    );
}

#[test]
fn javascript_definitions_and_imports() {
    let text = r#"import fs from 'fs';
import { readConfig, writeConfig } from "./config";
export * from './util';
const path = require('path');

export const VERSION = "1.0";

export function main(args) {
  return readConfig(args);
}

const helper = (x) => x + 1;

class Cache extends Base {
  get(key) { return this.map.get(key); }
}
"#;
    assert_eq!(
        definitions(LanguageId::JavaScript, text),
        vec![
            "constant path",
            "constant VERSION",
            "function main",
            "function helper",
            "class Cache",
            "method Cache::get",
        ]
    );
    assert_eq!(
        signatures(LanguageId::JavaScript, text)[2],
        "export function main(args)"
    );
    assert_eq!(
        imports(LanguageId::JavaScript, text),
        vec![
            "fs | fs",
            "./config | readConfig,writeConfig",
            "./util | ",
            "path | ",
        ]
    );
}

#[test]
fn typescript_and_tsx_definitions_and_imports() {
    let text = r#"import { Store } from "./store";

export interface User {
  id: number;
  name(): string;
}

export type Id = string | number;

enum Color { Red, Green }

export abstract class Repo<T> implements Base {
  abstract find(id: Id): T;
  save(item: T): void {}
}

export function render(user: User): string {
  return user.name();
}
"#;
    let expected = vec![
        "interface User",
        "method User::name",
        "type Id",
        "enum Color",
        "class Repo",
        "method Repo::find",
        "method Repo::save",
        "function render",
    ];
    assert_eq!(definitions(LanguageId::TypeScript, text), expected);
    assert_eq!(definitions(LanguageId::Tsx, text), expected);
    assert_eq!(imports(LanguageId::TypeScript, text), vec!["./store | Store"]);
    let tsx = "export const App = () => <div className=\"x\">{title}</div>;\n";
    assert_eq!(definitions(LanguageId::Tsx, tsx), vec!["function App"]);
    assert_eq!(syntax_error_count(LanguageId::Tsx, tsx), 0);
}

#[test]
fn go_definitions_and_imports() {
    let text = r#"package store

import (
	"fmt"
	cfg "example.com/app/config"
)

const Limit = 10

type Store struct {
	items map[string]int
}

type Reader interface {
	Read(key string) int
}

type ID int

func Open(path string) (*Store, error) {
	return &Store{}, nil
}

func (s *Store) Get(key string) int {
	return s.items[key]
}
"#;
    assert_eq!(
        definitions(LanguageId::Go, text),
        vec![
            "constant Limit",
            "struct Store",
            "interface Reader",
            "type ID",
            "function Open",
            "method Get",
        ]
    );
    assert_eq!(
        signatures(LanguageId::Go, text)[4],
        "func Open(path string) (*Store, error)"
    );
    assert_eq!(
        imports(LanguageId::Go, text),
        vec!["fmt | ", "example.com/app/config | "]
    );
}

#[test]
fn java_definitions_and_imports() {
    let text = r#"package com.acme.app;

import com.acme.store.Store;
import java.util.*;

public class Service implements Runnable {
    private static final int LIMIT = 10;

    public Service(Store store) { this.store = store; }

    /** Runs it. */
    @Override
    public void run() {
        store.open();
    }
}

interface Handler { void handle(String event); }
"#;
    assert_eq!(
        definitions(LanguageId::Java, text),
        vec![
            "class Service",
            "constant Service::LIMIT",
            "method Service::Service",
            "method Service::run",
            "interface Handler",
            "method Handler::handle",
        ]
    );
    assert_eq!(
        imports(LanguageId::Java, text),
        vec!["com.acme.store.Store | ", "java.util | "]
    );
}

#[test]
fn c_definitions_and_imports() {
    let text = r#"#include <stdio.h>
#include "store.h"

#define MAX_ITEMS 64
#define SQUARE(x) ((x) * (x))

typedef struct store { int count; } store_t;

struct point { int x; int y; };

enum color { RED, GREEN };

int store_open(const char *path);
char *store_name(store_t *store);

int store_count(store_t *store) {
    return store->count;
}

static char *copy_name(const char *name) {
    return NULL;
}
"#;
    assert_eq!(
        definitions(LanguageId::C, text),
        vec![
            "constant MAX_ITEMS",
            "macro SQUARE",
            "type store_t",
            "struct store_t::store",
            "struct point",
            "enum color",
            "function store_open",
            "function store_name",
            "function store_count",
            "function copy_name",
        ]
    );
    assert_eq!(
        signatures(LanguageId::C, text)[8],
        "int store_count(store_t *store)"
    );
    assert_eq!(imports(LanguageId::C, text), vec!["stdio.h | ", "store.h | "]);
}

#[test]
fn cpp_definitions_and_imports() {
    let text = r#"#include "shape.hpp"

namespace geo {

class Shape {
public:
    virtual double area() const = 0;
    int id;
};

double Circle::area() const {
    return 3.14 * r * r;
}

using Id = int;

}  // namespace geo

int main() { return 0; }
"#;
    assert_eq!(
        definitions(LanguageId::Cpp, text),
        vec![
            "module geo",
            "class geo::Shape",
            "method Shape::area",
            "method geo::area",
            "type geo::Id",
            "function main",
        ]
    );
    assert_eq!(imports(LanguageId::Cpp, text), vec!["shape.hpp | "]);
}

#[test]
fn optional_languages_capture_definitions_and_imports() {
    let csharp = "using System.Text;\nnamespace App {\n  public class Greeter {\n    public string Greet(string name) { return name; }\n  }\n}\n";
    assert_eq!(
        definitions(LanguageId::CSharp, csharp),
        vec!["module App", "class App::Greeter", "method Greeter::Greet"]
    );
    assert_eq!(imports(LanguageId::CSharp, csharp), vec!["System.Text | "]);

    let ruby = "require_relative 'lib/store'\nmodule App\n  class Store\n    def open(path)\n    end\n    def self.build; end\n  end\nend\n";
    assert_eq!(
        definitions(LanguageId::Ruby, ruby),
        vec![
            "module App",
            "class App::Store",
            "method Store::open",
            "method Store::build"
        ]
    );
    assert_eq!(imports(LanguageId::Ruby, ruby), vec!["lib/store | "]);

    let php = "<?php\nuse App\\Models\\User;\nrequire_once 'lib.php';\nclass Repo {\n  public function find($id) { return null; }\n}\nfunction helper() {}\n";
    assert_eq!(
        definitions(LanguageId::Php, php),
        vec!["class Repo", "method Repo::find", "function helper"]
    );
    assert_eq!(
        imports(LanguageId::Php, php),
        vec!["App\\Models\\User | ", "lib.php | "]
    );

    let lua = "local util = require(\"util\")\nfunction M.open(path) end\nfunction M:close() end\nlocal function helper() end\n";
    assert_eq!(
        definitions(LanguageId::Lua, lua),
        vec!["function open", "method close", "function helper"]
    );
    assert_eq!(imports(LanguageId::Lua, lua), vec!["util | "]);

    let bash = "source ./lib.sh\ngreet() {\n  echo hi\n}\n";
    assert_eq!(definitions(LanguageId::Bash, bash), vec!["function greet"]);
    assert_eq!(imports(LanguageId::Bash, bash), vec!["./lib.sh | "]);
}

#[test]
fn syntax_error_count_counts_error_and_missing_nodes() {
    assert_eq!(
        syntax_error_count(LanguageId::Rust, "fn main() { let x = 1; }"),
        0
    );
    assert!(syntax_error_count(LanguageId::Rust, "fn main() { let x = ; }") >= 1);
    assert!(syntax_error_count(LanguageId::Rust, "fn main() { let x = (1 + 2; }") >= 1);
    assert_eq!(
        syntax_error_count(LanguageId::Python, "def f(x):\n    return x\n"),
        0
    );
    assert!(syntax_error_count(LanguageId::Python, "def f(x:\n    return x\n") >= 1);
    assert_eq!(syntax_error_count(LanguageId::Go, ""), 0);
    // A completion that closes the open brace fixes the error; one that adds garbage adds some.
    let before = syntax_error_count(LanguageId::JavaScript, "function f() {\n  return 1;\n");
    let fixed = syntax_error_count(LanguageId::JavaScript, "function f() {\n  return 1;\n}\n");
    let broken = syntax_error_count(LanguageId::JavaScript, "function f() {\n  return 1;\n}} ) (\n");
    assert!(before >= 1);
    assert_eq!(fixed, 0);
    assert!(broken >= 1);
}

#[test]
fn languages_from_paths_and_lsp_ids() {
    use std::path::Path;
    let cases = [
        ("src/main.rs", Some(LanguageId::Rust)),
        ("app/models.py", Some(LanguageId::Python)),
        ("web/index.mjs", Some(LanguageId::JavaScript)),
        ("web/App.jsx", Some(LanguageId::JavaScript)),
        ("web/api.ts", Some(LanguageId::TypeScript)),
        ("web/App.tsx", Some(LanguageId::Tsx)),
        ("cmd/main.go", Some(LanguageId::Go)),
        ("Main.java", Some(LanguageId::Java)),
        ("lib.c", Some(LanguageId::C)),
        ("lib.h", Some(LanguageId::C)),
        ("lib.HPP", Some(LanguageId::Cpp)),
        ("lib.cc", Some(LanguageId::Cpp)),
        ("Program.cs", Some(LanguageId::CSharp)),
        ("Rakefile", Some(LanguageId::Ruby)),
        ("index.php", Some(LanguageId::Php)),
        ("init.lua", Some(LanguageId::Lua)),
        ("build.sh", Some(LanguageId::Bash)),
        ("README.md", None),
        ("Makefile", None),
        ("noextension", None),
    ];
    for (path, expected) in cases {
        assert_eq!(LanguageId::from_path(Path::new(path)), expected, "{path}");
    }
    let lsp_cases = [
        ("rust", Some(LanguageId::Rust)),
        ("python", Some(LanguageId::Python)),
        ("javascript", Some(LanguageId::JavaScript)),
        ("javascriptreact", Some(LanguageId::JavaScript)),
        ("typescript", Some(LanguageId::TypeScript)),
        ("typescriptreact", Some(LanguageId::Tsx)),
        ("go", Some(LanguageId::Go)),
        ("java", Some(LanguageId::Java)),
        ("c", Some(LanguageId::C)),
        ("cpp", Some(LanguageId::Cpp)),
        ("csharp", Some(LanguageId::CSharp)),
        ("shellscript", Some(LanguageId::Bash)),
        ("markdown", None),
    ];
    for (id, expected) in lsp_cases {
        assert_eq!(LanguageId::from_lsp_language_id(id), expected, "{id}");
    }
    assert_eq!(LanguageId::Rust.comment_prefix(), "//");
    assert_eq!(LanguageId::Python.comment_prefix(), "#");
    assert_eq!(LanguageId::Lua.comment_prefix(), "--");
    for language in LanguageId::ALL {
        assert_eq!(LanguageId::ALL[language.index()], language);
        assert!(parse(language, "").is_some(), "{}", language.name());
    }
}
