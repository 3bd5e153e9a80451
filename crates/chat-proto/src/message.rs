//! How a typed message becomes a frame body and back.
//!
//! Every kind's body is a UTF-8 JSON object, except the binary kinds (file chunks). [`Body`] is
//! the per-type encoding; [`WireMessage`] is the per-direction enum that maps kinds to types. The
//! two direction enums live in [`crate::client`] and [`crate::server`].

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::{EncodeError, MessageError};
use crate::frame::{HEADER_LEN, Header, VERSION};
use crate::kind;

/// A value that can be a frame body.
pub trait Body: Sized {
    /// Appends the body bytes to `dst`.
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError>;
    /// Parses a body that arrived in a frame of `kind`.
    fn decode_body(kind: u32, body: Bytes) -> Result<Self, MessageError>;

    /// Parses a body still in the read buffer, if this type keeps nothing of it: every JSON
    /// body. `None` (the default) asks for the body as [`Bytes`], which a binary kind keeps
    /// without copying. Reading in place spares the read buffer's shared count an update per
    /// frame and lets the buffer be reused, since no frame holds a piece of it.
    fn decode_in_place(kind: u32, body: &[u8]) -> Option<Result<Self, MessageError>> {
        let _ = (kind, body);
        None
    }
}

/// One direction's message enum: each variant has a kind number and a [`Body`].
pub trait WireMessage: Sized {
    /// The kind number of this message.
    fn kind(&self) -> u32;
    /// Appends the body bytes to `dst`.
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError>;
    /// Parses the body of a frame of `kind`.
    fn decode(kind: u32, body: Bytes) -> Result<Self, MessageError>;
    /// Parses the body of a frame of `kind` in place, if its type allows (see
    /// [`Body::decode_in_place`]); `None` means: call [`WireMessage::decode`].
    fn decode_in_place(kind: u32, body: &[u8]) -> Option<Result<Self, MessageError>>;

    /// Appends the whole frame (header and body) to `dst`.
    fn encode_frame(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let start = dst.len();
        Header {
            version: VERSION,
            body_len: 0,
            kind: self.kind(),
        }
        .write(dst);
        self.encode_body(dst)?;
        let body_len = u32::try_from(dst.len() - start - HEADER_LEN).map_err(|_| {
            dst.truncate(start);
            EncodeError::TooLarge
        })?;
        dst[start + 4..start + 8].copy_from_slice(&body_len.to_be_bytes());
        Ok(())
    }

    /// Encodes the whole frame once into shareable bytes (for fan-out to many recipients).
    fn to_frame_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::with_capacity(128);
        self.encode_frame(&mut buf)?;
        Ok(buf.freeze())
    }
}

/// Parses a JSON-object body: UTF-8 first, then "is an object", then the fields.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    kind: u32,
    body: &[u8],
) -> Result<T, MessageError> {
    let text = std::str::from_utf8(body).map_err(|_| MessageError::InvalidUtf8 { kind })?;
    // serde would also accept a JSON array for a struct; the protocol says "object".
    if !text.trim_start().starts_with('{') {
        return Err(MessageError::InvalidJson {
            kind,
            detail: "body must be a json object".to_owned(),
        });
    }
    // Only a body with more opening brackets than the limit can nest deeper than it: counting
    // them costs a fraction of the full scan, which an ordinary message then skips.
    let opens = body.iter().filter(|&&b| matches!(b, b'[' | b'{')).count();
    if opens > MAX_JSON_DEPTH && nesting_depth(text.as_bytes()) > MAX_JSON_DEPTH {
        return Err(MessageError::InvalidJson {
            kind,
            detail: format!("json nested deeper than {MAX_JSON_DEPTH} levels"),
        });
    }
    serde_json::from_str(text).map_err(|e| MessageError::from_json(kind, &e))
}

/// Deepest array/object nesting a body may have. Real messages nest at most 4 levels.
pub const MAX_JSON_DEPTH: usize = 16;

/// The maximum `[`/`{` nesting depth of JSON text, ignoring brackets inside strings.
///
/// A single cheap pass that bounds the work any parser (here or in another language's client)
/// could be asked to do; serde_json skips unknown fields without its own depth limit.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Implements [`Body`] as a JSON object for serde types.
macro_rules! json_body {
    ($($ty:ty),* $(,)?) => {$(
        impl $crate::message::Body for $ty {
            fn encode_body(
                &self,
                dst: &mut ::bytes::BytesMut,
            ) -> Result<(), $crate::error::EncodeError> {
                // Into a Vec first: serde_json writes a body in many small pieces, and a Vec
                // takes them for a fraction of what `BytesMut`'s `io::Write` adapter costs.
                let json = ::serde_json::to_vec(self)?;
                dst.extend_from_slice(&json);
                Ok(())
            }
            fn decode_body(
                kind: u32,
                body: ::bytes::Bytes,
            ) -> Result<Self, $crate::error::MessageError> {
                $crate::message::decode_json(kind, &body)
            }
            fn decode_in_place(
                kind: u32,
                body: &[u8],
            ) -> Option<Result<Self, $crate::error::MessageError>> {
                Some($crate::message::decode_json(kind, body))
            }
        }
    )*};
}
pub(crate) use json_body;

/// Declares a direction enum whose variants map one-to-one to kind numbers.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($ty:ty) = $kind:path, )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )*
        }

        impl $crate::message::WireMessage for $name {
            fn kind(&self) -> u32 {
                match self { $( $name::$variant(_) => $kind, )* }
            }
            fn encode_body(
                &self,
                dst: &mut ::bytes::BytesMut,
            ) -> Result<(), $crate::error::EncodeError> {
                match self { $( $name::$variant(m) => $crate::message::Body::encode_body(m, dst), )* }
            }
            fn decode(
                kind: u32,
                body: ::bytes::Bytes,
            ) -> Result<Self, $crate::error::MessageError> {
                match kind {
                    $( $kind => Ok($name::$variant(
                        <$ty as $crate::message::Body>::decode_body(kind, body)?,
                    )), )*
                    _ => Err($crate::error::MessageError::UnknownKind { kind }),
                }
            }
            fn decode_in_place(
                kind: u32,
                body: &[u8],
            ) -> Option<Result<Self, $crate::error::MessageError>> {
                match kind {
                    $( $kind => Some(
                        <$ty as $crate::message::Body>::decode_in_place(kind, body)?
                            .map($name::$variant),
                    ), )*
                    _ => Some(Err($crate::error::MessageError::UnknownKind { kind })),
                }
            }
        }

        $(
            impl From<$ty> for $name {
                fn from(m: $ty) -> Self { $name::$variant(m) }
            }
        )*

        impl $name {
            /// Every kind number this direction defines, in registry order.
            pub const KINDS: &'static [u32] = &[$($kind),*];
        }
    };
}
pub(crate) use wire_enum;

/// Milliseconds since the Unix epoch, UTC. Every timestamp on the wire has this unit.
pub type Timestamp = i64;

/// Liveness probe (kind 4, both directions). The receiver answers with a [`Pong`] echoing `token`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ping {
    /// Opaque text echoed in the pong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Answer to a [`Ping`] (kind 5, both directions).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The sender has sent every byte of a transfer (kind 54, both directions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDone {
    /// Server-assigned transfer id.
    pub file: u64,
}

json_body!(Ping, Pong, FileDone);

/// A binary chunk of file data (kind 53, both directions).
///
/// Layout: `file: u64 BE` (8 bytes), `offset: u64 BE` (8 bytes), then the data bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunk {
    /// Server-assigned transfer id.
    pub file: u64,
    /// Byte offset of `data` in the file.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

impl FileChunk {
    /// Length of the fixed prefix before the data.
    pub const PREFIX_LEN: usize = 16;
}

impl Body for FileChunk {
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.reserve(Self::PREFIX_LEN + self.data.len());
        dst.put_u64(self.file);
        dst.put_u64(self.offset);
        dst.extend_from_slice(&self.data);
        Ok(())
    }

    fn decode_body(kind: u32, mut body: Bytes) -> Result<Self, MessageError> {
        if body.len() < Self::PREFIX_LEN {
            return Err(MessageError::BinaryTooShort {
                kind,
                len: body.len(),
                min: Self::PREFIX_LEN,
            });
        }
        let prefix = body.split_to(Self::PREFIX_LEN);
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&prefix[i..i + 8]);
            u64::from_be_bytes(b)
        };
        Ok(FileChunk {
            file: word(0),
            offset: word(8),
            data: body,
        })
    }
}

/// Whether a kind's body is binary rather than JSON.
pub fn is_binary_kind(k: u32) -> bool {
    k == kind::FILE_CHUNK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_depth_ignores_brackets_inside_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[[{{{\"[["}"#), 1);
        assert_eq!(nesting_depth(br#"{"a":"\\\\",[[]]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a":[{"b":[]}]}"#), 4);
        assert_eq!(nesting_depth(b""), 0);
    }

    #[test]
    fn deeply_nested_unknown_field_is_refused() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        let err = decode_json::<Ping>(kind::PING, deep.as_bytes()).unwrap_err();
        assert!(matches!(err, MessageError::InvalidJson { .. }), "{err}");
    }
}
