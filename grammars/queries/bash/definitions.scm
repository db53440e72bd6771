; Hearth definitions for Bash.
(function_definition name: (word) @name) @definition.function
