; Hearth imports for TypeScript: ES modules, re-exports and require().
(import_statement source: (string) @import.module) @import
(import_statement (import_clause (identifier) @import.name)) @import
(import_statement (import_clause (named_imports (import_specifier name: (identifier) @import.name)))) @import
(export_statement source: (string) @import.module) @import
((call_expression function: (identifier) @_require arguments: (arguments (string) @import.module)) @import
  (#eq? @_require "require"))
