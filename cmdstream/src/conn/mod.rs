//! What the client's and the server's connection drivers share: the
//! buffered frame I/O, the keepalive schedule, the write-coalescing policy,
//! the request-id map and the gate that spares their timers needless polls.

pub(crate) mod backlog;
pub(crate) mod frame_buf;
pub(crate) mod framed;
pub(crate) mod gated;
pub(crate) mod id_map;
pub(crate) mod keepalive;
pub(crate) mod link;
pub(crate) mod write_policy;
