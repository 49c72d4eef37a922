//! The Kubernetes WebSocket stream framing (`v4.channel.k8s.io`, `v5.channel.k8s.io`): each
//! binary message is one channel byte then the payload — 0 stdin, 1 stdout, 2 stderr, 3 error
//! (a JSON `Status`), 4 resize (JSON `{"Width":…,"Height":…}`), and in v5 255 "close" whose
//! payload is the channel being closed. Also the Status that ends an exec.

use bytes::Bytes;
use serde_json::{Value, json};

pub const STDIN: u8 = 0;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// The negotiated subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V4,
    V5,
}

impl Protocol {
    /// What the server offers, best first.
    pub const NAMES: [&'static str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "v5.channel.k8s.io" => Some(Protocol::V5),
            "v4.channel.k8s.io" => Some(Protocol::V4),
            _ => None,
        }
    }
}

/// A message from the client, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Stdin(Bytes),
    CloseStdin,
    Resize {
        width: u16,
        height: u16,
    },
    /// A close of another channel, or an unknown channel: ignored.
    Other,
}

/// One server message: the channel byte, then `data`.
pub fn encode(channel: u8, data: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Bytes::from(v)
}

/// Decodes a client message; None for an empty one (clients may send them as keep-alives).
pub fn decode_client(protocol: Protocol, msg: &[u8]) -> Option<ClientFrame> {
    let (&channel, payload) = msg.split_first()?;
    Some(match channel {
        STDIN => ClientFrame::Stdin(Bytes::copy_from_slice(payload)),
        RESIZE => {
            let size: Value = serde_json::from_slice(payload).ok()?;
            let dim = |k: &str| {
                size[k]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .unwrap_or(0)
            };
            ClientFrame::Resize {
                width: dim("Width"),
                height: dim("Height"),
            }
        }
        CLOSE if protocol == Protocol::V5 && payload.first() == Some(&STDIN) => {
            ClientFrame::CloseStdin
        }
        _ => ClientFrame::Other,
    })
}

/// The Status that ends an exec: Success for exit code 0; for another code a Failure with reason
/// `NonZeroExitCode` and an `ExitCode` cause (kubectl exits with that code); for a command
/// that could not run, a Failure with the node's message.
pub fn exit_status(exit_code: Option<i32>, error: Option<&str>, command: &[String]) -> Value {
    match (exit_code, error) {
        (Some(0), None) => json!({"metadata": {}, "status": "Success"}),
        (Some(code), None) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        (_, error) => failure_status(error.unwrap_or("the command did not report how it ended")),
    }
}

/// A Failure Status with `message` (kubectl prints it as the error).
pub fn failure_status(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_channel_first() {
        assert_eq!(&encode(1, b"hi")[..], b"\x01hi");
        assert_eq!(&encode(ERROR, b"")[..], b"\x03");
    }

    #[test]
    fn client_frames_decode_by_channel() {
        let v5 = Protocol::V5;
        assert_eq!(
            decode_client(v5, b"\x00data"),
            Some(ClientFrame::Stdin(Bytes::from_static(b"data")))
        );
        assert_eq!(
            decode_client(v5, b"\xff\x00"),
            Some(ClientFrame::CloseStdin)
        );
        // v4 has no close channel.
        assert_eq!(
            decode_client(Protocol::V4, b"\xff\x00"),
            Some(ClientFrame::Other)
        );
        assert_eq!(
            decode_client(v5, b"\x04{\"Width\":80,\"Height\":24}"),
            Some(ClientFrame::Resize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(decode_client(v5, b""), None);
    }

    #[test]
    fn exit_codes_become_statuses_kubectl_understands() {
        let argv = ["sh".to_string(), "-c".into(), "exit 3".into()];
        assert_eq!(exit_status(Some(0), None, &argv)["status"], "Success");
        let s = exit_status(Some(3), None, &argv);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let f = exit_status(None, Some("container not running"), &argv);
        assert_eq!(f["status"], "Failure");
        assert_eq!(f["message"], "container not running");
    }
}
