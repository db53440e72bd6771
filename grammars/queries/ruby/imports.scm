; Hearth imports for Ruby: require and require_relative.
((call method: (identifier) @_method arguments: (argument_list (string (string_content) @import.module))) @import
  (#match? @_method "^(require|require_relative|load)$"))
