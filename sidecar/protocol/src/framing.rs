//! Length-delimited JSON frames: a 4-byte big-endian length, then one JSON document.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// Largest frame either side accepts. A 128k-token prompt is well under this.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .length_field_type::<u32>()
        .new_codec()
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
}

pub fn encode<T: Serialize>(message: &T) -> Bytes {
    // Serializing our own message types cannot fail: they hold no maps with non-string keys.
    Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(frame)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::*;

    #[test]
    fn round_trip_every_prompt_part() {
        let message = ClientMessage::Complete {
            id: 7,
            params: CompletionParams {
                prompt: vec![
                    PromptPart::Special(SpecialToken::FimPre),
                    PromptPart::Text("fn main() {".into()),
                    PromptPart::SpecialText("<|file_sep|>".into()),
                ],
                add_bos: true,
                sampling: SamplingParams {
                    max_tokens: 5,
                    stop: vec!["\n".into()],
                    ..Default::default()
                },
                priority: Priority::Background,
                stream: true,
                reuse_cache: true,
            },
        };
        let bytes = encode(&message);
        let back: ClientMessage = decode(&bytes).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn malformed_frame_is_an_error_not_a_panic() {
        let error = decode::<ClientMessage>(b"{\"type\":\"complete\",\"id\":").unwrap_err();
        assert!(error.to_string().starts_with("malformed frame"), "{error}");
        let error = decode::<ClientMessage>(b"{\"type\":\"launch_missiles\"}").unwrap_err();
        assert!(error.to_string().contains("launch_missiles"), "{error}");
    }

    #[test]
    fn sampling_defaults_are_greedy() {
        let params: SamplingParams = serde_json::from_str("{}").unwrap();
        assert_eq!(params.temperature, 0.0);
        assert_eq!(params.max_tokens, 64);
    }
}
