; Hearth imports for Rust: `use` declarations and `mod name;` declarations.
(use_declaration argument: (identifier) @import.module) @import
(use_declaration argument: (scoped_identifier path: (_) @import.module name: (_) @import.name)) @import
(use_declaration argument: (scoped_use_list path: (_) @import.module list: (use_list [(identifier) (self)] @import.name))) @import
(use_declaration argument: (scoped_use_list path: (_) @import.module list: (use_list (use_as_clause path: (identifier) @import.name)))) @import
(use_declaration argument: (use_as_clause path: (scoped_identifier path: (_) @import.module name: (_) @import.name))) @import
(use_declaration argument: (use_wildcard (_) @import.module)) @import
(mod_item name: (identifier) @import.module !body) @import
