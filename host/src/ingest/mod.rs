//! Where tags come from. Replay reads recorded FLV files; the live service adds RTMP and HTTP-FLV.

pub mod flv;
pub mod pull;
pub mod rtmp;
