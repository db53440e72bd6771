//! Code actions through the real `hearth lsp`, its sidecar and the default model: listing never
//! touches the model, resolving gives a versioned edit that applies cleanly to the document it
//! was computed for, and is refused once the document moved on.

mod support;

use hearth_tests::*;
use serde_json::{json, Value};
use support::*;

fn titles(actions: &Value) -> Vec<String> {
    actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn actions_are_listed_without_the_model_resolved_to_a_versioned_edit_and_refused_when_stale() {
    let _serial = serial();
    let root = cart_fixture(false);
    let runtime = private_dir();
    let mut client = start_server(root.path(), runtime.path());
    let path = root.path().join("cart").join("cart.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = client.open(&path, "python", &text);

    let before = sidecar_requests(&mut client);
    // The cursor inside `apply_discount`: actions for that function.
    let line = text
        .lines()
        .position(|l| l.starts_with("def apply_discount"))
        .unwrap();
    let listed = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri},
               "range": {"start": {"line": line + 1, "character": 8}, "end": {"line": line + 1, "character": 8}},
               "context": {"diagnostics": []}}),
    );
    let actions = listed["result"].clone();
    let names = titles(&actions);
    assert!(
        names
            .iter()
            .any(|t| t.contains("documentation comment of `apply_discount`")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|t| t.contains("rewrite `apply_discount`")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|t| t.contains("unit tests for `apply_discount`")),
        "{names:?}"
    );
    for action in actions.as_array().unwrap() {
        assert!(action.get("edit").is_none(), "listed actions are lazy: {action}");
        assert_eq!(action["data"]["version"], 1, "{action}");
        assert!(action["kind"].as_str().unwrap().starts_with("refactor") || action["kind"] == "source.tests");
    }
    assert_eq!(
        sidecar_requests(&mut client),
        before,
        "listing code actions must not send anything to the sidecar"
    );

    // Resolve "document": a JSON-schema-constrained comment, inserted as a docstring.
    let document = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "refactor.rewrite.document")
        .unwrap()
        .clone();
    let resolved = client.request("codeAction/resolve", document.clone());
    let edit = &resolved["result"]["edit"];
    let changes = edit["documentChanges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edit: {resolved}"));
    assert_eq!(changes.len(), 1, "{edit}");
    assert_eq!(changes[0]["textDocument"]["uri"], uri);
    assert_eq!(
        changes[0]["textDocument"]["version"], 1,
        "tied to the version it was computed for"
    );
    let edits = changes[0]["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 1, "one minimal edit: {edits:?}");
    for edit in edits {
        assert_range_inside(&text, &edit["range"]);
    }
    let documented = apply_edits(&text, edits);
    assert_ne!(documented, text);
    // Only the docstring was added: every original line is still there, in order.
    let added: Vec<&str> = documented
        .lines()
        .filter(|l| !text.lines().any(|o| o == *l))
        .collect();
    assert!(added.iter().any(|l| l.contains("\"\"\"")), "{added:?}");
    assert_eq!(documented.lines().count() - text.lines().count(), added.len());

    // Apply it the way an editor does (version 2), and check the server agrees on the text.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": edits.iter().map(|e| json!({"range": e["range"], "text": e["newText"]})).collect::<Vec<_>>()}),
    );
    let server_copy = client.request("hearth/document", json!({"uri": uri}));
    assert_eq!(server_copy["result"]["text"].as_str(), Some(documented.as_str()));

    // The same action, computed for version 1, is refused now: the user's text is never clobbered.
    let stale = client.request("codeAction/resolve", document);
    assert_eq!(stale["error"]["code"], -32801, "{stale}");
    assert!(
        stale["error"]["message"].as_str().unwrap().contains("changed"),
        "{stale}"
    );
    assert!(stale.get("result").is_none());

    // `hearth.rewrite` with an instruction: an edit for version 2 (or "no change"), sent with
    // workspace/applyEdit.
    let range =
        json!({"start": {"line": line + 1, "character": 0}, "end": {"line": line + 2, "character": 0}});
    let rewrite = client.request(
        "workspace/executeCommand",
        json!({"command": "hearth.rewrite",
               "arguments": [{"uri": uri, "range": range, "instruction": "use a local variable for the discount"}]}),
    );
    let result = &rewrite["result"];
    assert!(rewrite.get("error").is_none(), "{rewrite}");
    if let Some(edit) = result.get("edit") {
        let change = &edit["documentChanges"][0];
        assert_eq!(change["textDocument"]["version"], 2);
        for text_edit in change["edits"].as_array().unwrap() {
            assert_range_inside(&documented, &text_edit["range"]);
        }
        client.pump_until(|c| {
            c.server_requests
                .iter()
                .any(|r| r["method"] == "workspace/applyEdit" && r["params"]["edit"] == *edit)
        });
    } else {
        assert_eq!(result["applied"], false, "{rewrite}");
    }

    let client = client.shutdown();
    assert!(client
        .notifications
        .iter()
        .all(|n| n["method"] != "window/logMessage"
            || !n["params"]["message"].as_str().unwrap_or("").contains("panicked")));
}

#[test]
fn quick_fixes_are_offered_for_any_diagnostic_without_the_model() {
    let _serial = serial();
    let root = cart_fixture(false);
    let runtime = private_dir();
    let mut client = start_server(root.path(), runtime.path());
    let path = root.path().join("cart").join("items.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = client.open(&path, "python", &text);
    let before = sidecar_requests(&mut client);
    let diagnostic = json!({
        "range": {"start": {"line": 11, "character": 4}, "end": {"line": 11, "character": 45}},
        "severity": 2, "source": "pyright", "message": "quantity may be negative"
    });
    let hearth_diagnostic = json!({
        "range": {"start": {"line": 11, "character": 4}, "end": {"line": 11, "character": 45}},
        "severity": 2, "source": "hearth", "code": "bug", "message": "quantity may be negative",
        "data": {"key": "0123456789abcdef", "replacement": "    return item.price_cents * max(item.quantity, 0)"}
    });
    let listed = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri},
               "range": {"start": {"line": 11, "character": 4}, "end": {"line": 11, "character": 4}},
               "context": {"diagnostics": [diagnostic, hearth_diagnostic], "only": ["quickfix"]}}),
    );
    let actions = listed["result"].as_array().unwrap().clone();
    let names = titles(&listed["result"]);
    assert_eq!(
        names,
        vec![
            "Hearth: fix “quantity may be negative”",
            "Hearth: apply the suggested fix",
            "Hearth: fix “quantity may be negative”",
            "Hearth: ignore this finding",
        ]
    );
    // The finding's own replacement is a ready edit (no model), versioned.
    let fix = &actions[1];
    let change = &fix["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["version"], 1);
    let fixed = apply_edits(&text, change["edits"].as_array().unwrap());
    assert!(
        fixed.contains("    return item.price_cents * max(item.quantity, 0)\n"),
        "{fixed}"
    );
    assert_eq!(fixed.lines().count(), text.lines().count());
    assert_eq!(actions[3]["command"]["command"], "hearth.dismissFinding");
    assert_eq!(sidecar_requests(&mut client), before);
    client.shutdown();
}
