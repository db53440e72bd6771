//! Secret files are never read, and text that goes into a prompt has secret-looking values
//! replaced by `"<redacted>"`.

use std::borrow::Cow;
use std::path::{Component, Path};
use std::sync::LazyLock;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::{Captures, Regex};

/// File-name globs of files that are never read (matched case-insensitively against the
/// file name, and against the whole relative path for globs that contain a `/`).
pub const DEFAULT_SECRET_FILE_GLOBS: &[&str] = &[
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.gpg",
    "*.tfvars",
    "*.tfstate",
    "*.tfstate.*",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".htpasswd",
    ".git-credentials",
    ".dockercfg",
    "credentials*",
    "secrets.*",
    "secret.*",
    "*.secret",
    "*.secrets",
    "service-account*.json",
];

/// Directory names whose whole contents are never read.
pub const DEFAULT_SECRET_DIRECTORY_NAMES: &[&str] =
    &[".aws", ".ssh", ".gnupg", ".docker", ".kube", ".azure", ".gcloud"];

/// Which paths count as secret: the defaults plus `extra_secret_globs` from the config.
#[derive(Debug, Clone)]
pub struct SecretPolicy {
    extra_secret_globs: Vec<String>,
    file_globs: GlobSet,
    path_globs: GlobSet,
}

/// An `extra_secret_globs` entry is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretGlobError {
    pub glob: String,
    pub message: String,
}

impl std::fmt::Display for SecretGlobError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "invalid secret glob `{}`: {} — fix `extra-secret-globs` in the Hearth config",
            self.glob, self.message
        )
    }
}

impl std::error::Error for SecretGlobError {}

impl Default for SecretPolicy {
    fn default() -> Self {
        // The default globs are fixed strings that are known to compile (tested).
        SecretPolicy::with_extra_globs::<&str>(&[]).unwrap_or_else(|_| SecretPolicy {
            extra_secret_globs: Vec::new(),
            file_globs: GlobSet::empty(),
            path_globs: GlobSet::empty(),
        })
    }
}

fn build_glob(glob: &str) -> Result<globset::Glob, SecretGlobError> {
    GlobBuilder::new(glob)
        .case_insensitive(true)
        .literal_separator(true)
        .build()
        .map_err(|error| SecretGlobError {
            glob: glob.to_string(),
            message: error.to_string(),
        })
}

impl SecretPolicy {
    /// The default list plus `extra_globs`. A glob without `/` matches file names (or, ending
    /// in `/`, directory names); a glob with `/` matches the path relative to the workspace.
    pub fn with_extra_globs<S: AsRef<str>>(extra_globs: &[S]) -> Result<Self, SecretGlobError> {
        let mut file_globs = GlobSetBuilder::new();
        let mut path_globs = GlobSetBuilder::new();
        for glob in DEFAULT_SECRET_FILE_GLOBS {
            file_globs.add(build_glob(glob)?);
        }
        for directory in DEFAULT_SECRET_DIRECTORY_NAMES {
            path_globs.add(build_glob(&format!("**/{directory}/**"))?);
            path_globs.add(build_glob(&format!("{directory}/**"))?);
        }
        for glob in extra_globs {
            let glob = glob.as_ref().trim();
            if glob.is_empty() {
                continue;
            }
            if let Some(directory) = glob.strip_suffix('/') {
                path_globs.add(build_glob(&format!("**/{directory}/**"))?);
                path_globs.add(build_glob(&format!("{directory}/**"))?);
            } else if glob.contains('/') {
                path_globs.add(build_glob(glob.trim_start_matches('/'))?);
            } else {
                file_globs.add(build_glob(glob)?);
            }
        }
        let into_error = |error: globset::Error| SecretGlobError {
            glob: error.glob().unwrap_or("").to_string(),
            message: error.to_string(),
        };
        Ok(SecretPolicy {
            extra_secret_globs: extra_globs.iter().map(|glob| glob.as_ref().to_string()).collect(),
            file_globs: file_globs.build().map_err(into_error)?,
            path_globs: path_globs.build().map_err(into_error)?,
        })
    }

    pub fn extra_secret_globs(&self) -> &[String] {
        &self.extra_secret_globs
    }
}

/// True when `path` must never be read: its file name matches a secret glob, or it lies in
/// a secret directory (`.ssh/`, `.aws/`, ...). Check this BEFORE opening any file.
/// Works on relative and absolute paths; only the path text is looked at.
pub fn is_secret_path(path: &Path, policy: &SecretPolicy) -> bool {
    if let Some(file_name) = path.file_name() {
        if policy.file_globs.is_match(Path::new(file_name)) {
            return true;
        }
    }
    let normalized: Vec<String> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let relative = normalized.join("/");
    policy.path_globs.is_match(Path::new(&relative))
}

const REDACTED: &str = "<redacted>";

/// Whole-match patterns: the entire match is a secret.
static TOKEN_PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Private key blocks (terminated, or running to the end of the text).
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?s:.*?)(-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)",
        // AWS access key ids.
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
        // GitHub tokens.
        r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
        r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
        // OpenAI / Anthropic style keys.
        r"\bsk-[A-Za-z0-9_\-]{20,}",
        // Slack tokens.
        r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        // Google API keys.
        r"\bAIza[0-9A-Za-z_\-]{35}\b",
        // Stripe keys.
        r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b",
        // JSON web tokens.
        r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
    ]
    .iter()
    .filter_map(|pattern| Regex::new(pattern).ok())
    .collect()
});

/// `scheme://user:password@host`: the password of a URL (database URLs, git remotes, proxies).
static URL_CREDENTIALS_PATTERN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s"'`]+:)(?P<password>[^@/\s"'`]+)@"#).ok()
});

/// `password = "..."`, `api_key: '...'`, `"client_secret": "..."`: the quoted value of a
/// secret-named key, when it is at least 6 characters long.
static QUOTED_ASSIGNMENT_PATTERN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?P<key>[A-Za-z0-9_.\-]*(?:password|passwd|passphrase|secret|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|auth[_\-]?key|credentials?)[A-Za-z0-9_.\-]*["']?\s*(?::=|=>|[:=])\s*)(?P<quote>["'`])(?P<value>[^"'`\r\n]{6,})["'`]"#,
    )
    .ok()
});

/// `export API_TOKEN=abcdef...` / `DB_PASSWORD=hunter22` in shell and dotenv-like text.
static UNQUOTED_ASSIGNMENT_PATTERN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^(?P<key>\s*(?:export\s+)?[A-Za-z0-9_]*(?i:password|passwd|secret|token|api_?key|access_?key|private_?key)[A-Za-z0-9_]*\s*=\s*)(?P<value>[^\s'`\x22]{6,})",
    )
    .ok()
});

/// Long quoted strings of key-like characters; redacted when they look random.
static QUOTED_HIGH_ENTROPY_PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"(?P<quote>["'`])(?P<value>[A-Za-z0-9+/=_\-]{32,})["'`]"#).ok());

/// Shannon entropy in bits per character.
fn shannon_entropy(text: &str) -> f64 {
    let mut counts = [0usize; 256];
    for byte in text.bytes() {
        counts[byte as usize] += 1;
    }
    let length = text.len() as f64;
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let probability = count as f64 / length;
            -probability * probability.log2()
        })
        .sum()
}

/// A long string that mixes character classes and has high entropy: looks like a key.
/// Identifiers, paths, words and hex digests (≤ 4 bits per character) do not qualify.
fn looks_random(value: &str) -> bool {
    let has_upper = value.bytes().any(|byte| byte.is_ascii_uppercase());
    let has_lower = value.bytes().any(|byte| byte.is_ascii_lowercase());
    let has_digit = value.bytes().any(|byte| byte.is_ascii_digit());
    let classes = usize::from(has_upper) + usize::from(has_lower) + usize::from(has_digit);
    classes >= 2 && has_digit && shannon_entropy(value) > 4.2
}

fn looks_like_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    value == REDACTED
        || lower.starts_with("${")
        || lower.starts_with("{{")
        || lower.starts_with('<')
        || lower.starts_with("process.env")
        || lower.starts_with("os.environ")
        || lower.contains("your_")
        || lower.contains("your-")
        || lower
            .chars()
            .all(|character| character == '*' || character == 'x')
}

/// Replace each match of `pattern` in `text` with what `redact` returns (`None` keeps the match).
fn replace_matches(
    text: &mut Cow<'_, str>,
    pattern: Option<&Regex>,
    redact: impl Fn(&Captures<'_>) -> Option<String>,
) {
    let Some(pattern) = pattern else { return };
    if !pattern.is_match(text) {
        return;
    }
    let replaced = pattern.replace_all(text, |captures: &Captures<'_>| {
        redact(captures).unwrap_or_else(|| captures[0].to_string())
    });
    if let Cow::Owned(replaced) = replaced {
        *text = Cow::Owned(replaced);
    }
}

/// Replaces things that look like secrets with `<redacted>`: AWS key ids, GitHub / Slack /
/// Stripe / Google / `sk-` API keys, JWTs, private key blocks, passwords in URLs, the values of
/// `password = "..."`-style assignments (6+ characters), and long random-looking quoted
/// strings. Returns the input unchanged (borrowed) when nothing matched.
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let mut result: Cow<'_, str> = Cow::Borrowed(text);
    for pattern in TOKEN_PATTERNS.iter() {
        if pattern.is_match(&result) {
            result = Cow::Owned(pattern.replace_all(&result, REDACTED).into_owned());
        }
    }
    replace_matches(&mut result, URL_CREDENTIALS_PATTERN.as_ref(), |captures| {
        let password = &captures["password"];
        (!looks_like_placeholder(password) && !password.starts_with('$'))
            .then(|| format!("{}{REDACTED}@", &captures["prefix"]))
    });
    replace_matches(&mut result, QUOTED_ASSIGNMENT_PATTERN.as_ref(), |captures| {
        (!looks_like_placeholder(&captures["value"])).then(|| {
            format!(
                "{}{}{REDACTED}{}",
                &captures["key"], &captures["quote"], &captures["quote"]
            )
        })
    });
    replace_matches(&mut result, UNQUOTED_ASSIGNMENT_PATTERN.as_ref(), |captures| {
        let value = &captures["value"];
        (!looks_like_placeholder(value) && !value.starts_with('$'))
            .then(|| format!("{}{REDACTED}", &captures["key"]))
    });
    replace_matches(&mut result, QUOTED_HIGH_ENTROPY_PATTERN.as_ref(), |captures| {
        looks_random(&captures["value"])
            .then(|| format!("{}{REDACTED}{}", &captures["quote"], &captures["quote"]))
    });
    // Replacement closures may return the same text: keep the borrow when nothing changed.
    match result {
        Cow::Owned(owned) if owned == text => Cow::Borrowed(text),
        other => other,
    }
}
