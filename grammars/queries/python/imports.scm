; Hearth imports for Python.
(import_statement name: (dotted_name) @import.module) @import
(import_statement name: (aliased_import name: (dotted_name) @import.module)) @import
(import_from_statement module_name: (_) @import.module) @import
(import_from_statement name: (dotted_name) @import.name) @import
(import_from_statement name: (aliased_import name: (dotted_name) @import.name)) @import
