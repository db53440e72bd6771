//! Secret paths are never read; secret-looking values are redacted.

use std::borrow::Cow;
use std::path::Path;

use hearth_context::{is_secret_path, redact_secrets, SecretPolicy};

#[test]
fn default_secret_paths() {
    let policy = SecretPolicy::default();
    let secret = [
        ".env",
        ".env.local",
        ".env.production",
        "config/.env",
        "deploy/prod.env",
        ".envrc",
        "certs/server.pem",
        "certs/server.key",
        "CERTS/SERVER.KEY",
        "id_rsa",
        "id_rsa.pub",
        "home/.ssh/id_ed25519",
        "keystore.p12",
        "cert.pfx",
        "release.keystore",
        "app.jks",
        ".npmrc",
        ".pypirc",
        ".netrc",
        ".git-credentials",
        ".htpasswd",
        ".pgpass",
        "credentials",
        "credentials.json",
        "config/credentials.yml",
        // `credentials*` is deliberately broad.
        "src/credentials_form.tsx",
        "secrets.yaml",
        "config/secrets.json",
        "prod.tfvars",
        "terraform.tfstate",
        "terraform.tfstate.backup",
        ".aws/config",
        "home/.aws/credentials",
        ".ssh/config",
        "home/.ssh/known_hosts",
        ".gnupg/pubring.kbx",
        "gcp/service-account-prod.json",
        "/home/user/project/.env",
    ];
    for path in secret {
        assert!(
            is_secret_path(Path::new(path), &policy),
            "{path} should be secret"
        );
    }
    let not_secret = [
        "src/main.rs",
        "src/env.rs",
        "src/environment.py",
        "src/keyboard.ts",
        "docs/keys.md",
        "src/secret_santa.rs",
        "README.md",
        "src/ssh/client.go",
        "aws/lambda.py",
        "monkey.py",
        "src/token.rs",
    ];
    for path in not_secret {
        assert!(
            !is_secret_path(Path::new(path), &policy),
            "{path} should not be secret"
        );
    }
}

#[test]
fn extra_secret_globs_extend_the_defaults() {
    let policy =
        SecretPolicy::with_extra_globs(&["*.vault", "private/", "config/prod/*.toml"]).expect("valid globs");
    assert!(is_secret_path(Path::new("db.vault"), &policy));
    assert!(is_secret_path(Path::new("src/private/notes.rs"), &policy));
    assert!(is_secret_path(Path::new("private/x.py"), &policy));
    assert!(is_secret_path(Path::new("config/prod/db.toml"), &policy));
    assert!(!is_secret_path(Path::new("config/dev/db.toml"), &policy));
    assert!(is_secret_path(Path::new(".env"), &policy), "defaults still apply");
    assert!(!is_secret_path(Path::new("src/lib.rs"), &policy));
    assert_eq!(policy.extra_secret_globs().len(), 3);
    assert!(SecretPolicy::with_extra_globs(&["a[b"]).is_err());
}

fn redacted(text: &str) -> String {
    redact_secrets(text).into_owned()
}

#[test]
fn redacts_known_token_formats() {
    let cases = [
        ("key = AKIAIOSFODNN7EXAMPLE;", "key = <redacted>;"),
        ("token: ghp_0123456789abcdefghijABCDEFGHIJ012345", "token: <redacted>"),
        ("gho_0123456789abcdefghijABCDEFGHIJ012345 end", "<redacted> end"),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789",
            "<redacted>",
        ),
        ("OPENAI=sk-proj-abcdefghijklmnopqrstuvwxyz012345", "OPENAI=<redacted>"),
        ("anthropic sk-ant-api03-abcdefghijklmnopqrstuv", "anthropic <redacted>"),
        ("slack xoxb-1234567890-abcdefghij", "slack <redacted>"),
        ("maps AIzaSyA0123456789abcdefghijklmnopqrstuv", "maps <redacted>"),
        ("stripe sk_live_0123456789abcdefghij", "stripe <redacted>"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt <redacted>",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(redacted(input), expected, "{input}");
    }
}

#[test]
fn redacts_private_key_blocks() {
    let text = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----\nafter";
    assert_eq!(redacted(text), "before\n<redacted>\nafter");
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----";
    assert_eq!(redacted(openssh), "<redacted>");
    let unterminated = "x\n-----BEGIN PRIVATE KEY-----\nMIIEvQ";
    assert_eq!(redacted(unterminated), "x\n<redacted>");
}

#[test]
fn redacts_passwords_in_urls() {
    assert_eq!(
        redacted(r#"DB_URL = "postgres://admin:SuperS3cretPw@db.internal:5432/shop""#),
        r#"DB_URL = "postgres://admin:<redacted>@db.internal:5432/shop""#
    );
    assert_eq!(
        redacted("git remote add o https://bot:hunter2@git.example.com/x.git"),
        "git remote add o https://bot:<redacted>@git.example.com/x.git"
    );
    // No password, a port, or a placeholder: unchanged.
    for kept in [
        "https://user@example.com/path",
        "http://localhost:8080/v1",
        "redis://:${REDIS_PASSWORD}@cache:6379",
        "postgres://app:<password>@db/shop",
    ] {
        assert_eq!(redacted(kept), kept);
    }
}

#[test]
fn redacts_secret_assignments_with_long_values() {
    let cases = [
        (r#"password = "hunter2hunter2""#, r#"password = "<redacted>""#),
        (r#"db_password: 'correct horse'"#, r#"db_password: '<redacted>'"#),
        (
            r#"const API_KEY = "abcdef123456";"#,
            r#"const API_KEY = "<redacted>";"#,
        ),
        (
            r#"{"client_secret": "s3cr3t-value"}"#,
            r#"{"client_secret": "<redacted>"}"#,
        ),
        (r#"auth_token := "0123456789""#, r#"auth_token := "<redacted>""#),
        (r#"'apiKey' => 'abcdefgh'"#, r#"'apiKey' => '<redacted>'"#),
        (
            "export DB_PASSWORD=hunter2hunter2",
            "export DB_PASSWORD=<redacted>",
        ),
        ("SECRET_KEY=abcdef0123", "SECRET_KEY=<redacted>"),
    ];
    for (input, expected) in cases {
        assert_eq!(redacted(input), expected, "{input}");
    }
}

#[test]
fn keeps_ordinary_code_and_placeholders() {
    let unchanged = [
        "fn main() { println!(\"hello\"); }",
        r#"password = "short""#,
        r#"let password = read_password(prompt);"#,
        r#"api_key = os.environ["API_KEY"]"#,
        r#"token = "${GITHUB_TOKEN}""#,
        r#"password: "<your password here>""#,
        "PASSWORD=$DB_PASSWORD",
        r#"path = "src/components/navigation/sidebar_item""#,
        r#"sha = "3f786850e387550fdab836ed7e6dc881de23001b""#,
        r#"name = "ThisIsAVeryLongIdentifierNameWithoutDigits""#,
        "let tokens = tokenize(text);",
        "task-runner sk-8",
        "",
    ];
    for input in unchanged {
        let result = redact_secrets(input);
        assert_eq!(result, input, "{input}");
        assert!(matches!(result, Cow::Borrowed(_)), "{input} should not allocate");
    }
}

#[test]
fn redacts_long_random_quoted_strings() {
    assert_eq!(
        redacted(r#"let k = "q8Zr4LmT2xWv9BnYc3Hs7JdK1pFg6QaE";"#),
        r#"let k = "<redacted>";"#
    );
    assert_eq!(
        redacted("x = 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdo'"),
        "x = '<redacted>'"
    );
}
