//! A guard in front of tower-lsp's reader.
//!
//! tower-lsp stops reading (and the server exits) after the first frame whose body is not JSON:
//! its framed reader ends the stream on a decode error. This filter reads the client's frames
//! itself and replaces a malformed body with a `hearth/malformedMessage` notification, which the
//! server logs; every well-formed frame passes through untouched.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Largest message body accepted (a 64 MiB document is far past anything Hearth completes in).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub const MALFORMED_METHOD: &str = "hearth/malformedMessage";

/// Copy LSP frames from `input` to `output`, repairing what tower-lsp would die on.
pub async fn filter_frames<R, W>(input: R, mut output: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(input);
    loop {
        // Headers: until an empty line. Lines that are not headers are skipped.
        let mut content_length: Option<usize> = None;
        let mut saw_header = false;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let trimmed = line.trim_end_matches(['\r', '\n']);
            if trimmed.is_empty() {
                if saw_header {
                    break;
                }
                continue;
            }
            saw_header = true;
            if let Some((name, value)) = trimmed.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().ok();
                }
            }
        }
        let body = match content_length {
            Some(length) if length <= MAX_BODY_BYTES => {
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(_) => body,
                    Err(error) => malformed(&format!("invalid JSON body: {error}")),
                }
            }
            Some(length) => {
                // Too large to hold: skip it.
                let mut left = length as u64;
                let mut sink = tokio::io::sink();
                let mut limited = (&mut reader).take(left);
                left -= tokio::io::copy(&mut limited, &mut sink).await.unwrap_or(left);
                if left > 0 {
                    return;
                }
                malformed(&format!(
                    "message of {length} bytes is over the {MAX_BODY_BYTES}-byte limit"
                ))
            }
            None => malformed("a message without a valid Content-Length header"),
        };
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        if output.write_all(header.as_bytes()).await.is_err() || output.write_all(&body).await.is_err() {
            return;
        }
        if output.flush().await.is_err() {
            return;
        }
    }
}

fn malformed(reason: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "method": MALFORMED_METHOD,
        "params": { "reason": reason },
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(input: &[u8]) -> Vec<serde_json::Value> {
        let (mut write, read) = tokio::io::duplex(1 << 16);
        let mut output = Vec::new();
        let input = input.to_vec();
        let feed = async move {
            write.write_all(&input).await.unwrap();
            drop(write);
        };
        let ((), ()) = tokio::join!(feed, filter_frames(read, &mut output));
        let text = String::from_utf8(output).unwrap();
        text.split("Content-Length: ")
            .filter(|part| !part.is_empty())
            .map(|part| serde_json::from_str(part.split_once("\r\n\r\n").unwrap().1).unwrap())
            .collect()
    }

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[tokio::test]
    async fn good_frames_pass_and_bad_ones_become_notifications() {
        let good = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        let input = format!(
            "{}{}Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n{}{}",
            frame(good),
            frame("{this is not json"),
            frame(r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#),
            frame("[1, 2")
        );
        let messages = run(input.as_bytes()).await;
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0]["method"], "initialize");
        assert_eq!(messages[1]["method"], MALFORMED_METHOD);
        assert!(messages[1]["params"]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"));
        assert_eq!(messages[2]["method"], "initialized");
        assert_eq!(messages[3]["method"], MALFORMED_METHOD);
    }

    #[tokio::test]
    async fn a_frame_without_length_is_reported_and_the_next_one_still_arrives() {
        let input = format!(
            "X-Junk: 1\r\n\r\n{}",
            frame(r#"{"jsonrpc":"2.0","method":"exit"}"#)
        );
        let messages = run(input.as_bytes()).await;
        assert_eq!(messages[0]["method"], MALFORMED_METHOD);
        assert_eq!(messages[1]["method"], "exit");
    }
}
