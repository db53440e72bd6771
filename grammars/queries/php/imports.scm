; Hearth imports for PHP: `use` and require/include.
(namespace_use_declaration (namespace_use_clause) @import.module) @import
(expression_statement [(require_expression (string) @import.module) (require_once_expression (string) @import.module) (include_expression (string) @import.module) (include_once_expression (string) @import.module)]) @import
