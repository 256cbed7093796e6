//! The handshake's I/O (`docs/PROTOCOL.md`, §1): each step moves the
//! messages of `hello.rs` over a connection, reading no more than their
//! bounds allow. The server's steps are separate so that between reading
//! the client's hello and answering it the caller decides whether to
//! accept; the callers apply the handshake timeout.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::compat::{mismatch, unusable_limits, version_mismatch};
use super::hello::{
    decode_ack_head, decode_client_head, decode_server_head, encode_ack, encode_refusal,
    refusal_text, AckStatus, ClientHello, Refusal, ServerHello, ACK_HEAD, CLIENT_HEAD,
    CLIENT_PREAMBLE, SERVER_HEAD,
};
use crate::error::Error;

async fn write_all<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// Server side: tells the client it is refused, then waits (the caller
/// bounds how long) for the client to hang up. Closing at once could lose
/// the refusal: the client has already sent the start of its hello, and a
/// socket closed with unread bytes resets the connection, which may
/// discard what the client has not read yet.
pub(crate) async fn refuse<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    why: Refusal,
    reason: &str,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    encode_refusal(&mut buf, why, reason);
    write_all(io, &buf).await?;
    io.shutdown().await?;
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < 64 * 1024 {
        match io.read(&mut sink).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// Server side, first step: sends our hello (encoded once, in advance)
/// and reads the client's. Returns the client's protocol version and hello.
pub(crate) async fn greet<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    our_hello: &[u8],
) -> Result<(u16, ClientHello), Error> {
    write_all(io, our_hello).await?;
    let mut head = [0u8; CLIENT_HEAD];
    io.read_exact(&mut head).await?;
    let head = decode_client_head(&head)?;
    let mut body = vec![0; head.len];
    io.read_exact(&mut body).await?;
    Ok((head.version, ClientHello::decode_body(&body)?))
}

/// Server side, second step: answers the client's hello with `status` and
/// `reason`.
pub(crate) async fn answer<W: AsyncWrite + Unpin>(
    io: &mut W,
    status: AckStatus,
    reason: &str,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    encode_ack(&mut buf, status, reason);
    write_all(io, &buf).await
}

/// Why a server should refuse this client hello as incompatible, if it
/// should: the service, codec and commands must match (§1.4) and the
/// announced limits must work.
pub(crate) fn verdict(version: u16, client: &ClientHello, server: &ServerHello) -> Option<String> {
    let diffs = [
        mismatch(version, client, server),
        unusable_limits("client", client.max_frame),
    ];
    let diffs: Vec<String> = diffs.into_iter().flatten().collect();
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// Client side: reads the server's hello, checks it, sends ours and waits
/// for the ack. Returns the server's hello.
pub(crate) async fn connect<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    ours: &ClientHello,
) -> Result<ServerHello, Error> {
    // Encoded first: a hello we cannot send fails before anything is read.
    let mut hello = BytesMut::new();
    ours.encode(&mut hello)?;
    // The magic and version go out at once, before the server's hello is
    // read: the bytes on the wire are the same, and a TLS server that gets
    // them fails its handshake at once instead of both sides waiting out
    // the handshake timeout for the other to speak first.
    write_all(io, &hello[..CLIENT_PREAMBLE]).await?;

    let mut head = [0u8; SERVER_HEAD];
    io.read_exact(&mut head).await?;
    let head = decode_server_head(&head)?;
    let mut body = vec![0; head.len];
    io.read_exact(&mut body).await?;
    if head.status == Refusal::TlsRequired as u8 {
        return Err(Error::Tls(crate::error::TlsError::new(
            crate::error::TlsErrorKind::TlsRequired,
            String::from_utf8_lossy(&body).into_owned(),
        )));
    }
    if head.status != 0 {
        return Err(Error::unavailable(format!(
            "server refused the connection ({}): {}",
            refusal_text(head.status),
            String::from_utf8_lossy(&body)
        )));
    }
    if let Some(why) = version_mismatch(head.version) {
        return Err(Error::Incompatible(why.into()));
    }
    let theirs = ServerHello::decode_body(&body)?;
    let problems = [
        mismatch(super::PROTOCOL_VERSION, ours, &theirs),
        unusable_limits("server", theirs.max_frame),
    ];
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if !problems.is_empty() {
        return Err(Error::Incompatible(problems.join("; ").into()));
    }

    // The window a client grants is within what the server keeps (§3.1):
    // re-encoded with it, to the same length.
    let window = theirs.result_window(ours.stream_window);
    if window != ours.stream_window {
        hello.clear();
        ClientHello {
            stream_window: window,
            ..ours.clone()
        }
        .encode(&mut hello)?;
    }
    write_all(io, &hello[CLIENT_PREAMBLE..]).await?;
    let mut ack = [0u8; ACK_HEAD];
    io.read_exact(&mut ack).await?;
    let (status, len) = decode_ack_head(ack);
    let mut reason = vec![0; len];
    io.read_exact(&mut reason).await?;
    let reason = String::from_utf8_lossy(&reason);
    match status {
        0 => Ok(theirs),
        2 => Err(Error::Unauthenticated(reason.into())),
        3 => Err(Error::PermissionDenied(reason.into())),
        _ => Err(Error::Incompatible(
            format!("server refused the handshake: {reason}").into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::wire::compat::CommandSig;
    use crate::wire::hello::tests_support::{client_hello, server_hello};
    use crate::wire::hello::SERVER_MAGIC;

    /// The server's side, as the server runs it: greet, decide, answer.
    async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
        io: &mut IO,
        ours: &ServerHello,
    ) -> Result<ClientHello, Error> {
        let mut hello = BytesMut::new();
        ours.encode(&mut hello).unwrap();
        let (version, theirs) = greet(io, &hello).await?;
        match verdict(version, &theirs, ours) {
            None => {
                answer(io, AckStatus::Ok, "").await?;
                Ok(theirs)
            }
            Some(why) => {
                answer(io, AckStatus::Incompatible, &why).await?;
                Err(Error::Incompatible(why.into()))
            }
        }
    }

    #[tokio::test]
    async fn compatible_peers_exchange_hellos() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { accept(&mut s, &server_hello()).await });
        let got = connect(&mut c, &client_hello()).await.unwrap();
        assert_eq!(got, server_hello());
        assert_eq!(server.await.unwrap().unwrap(), client_hello());
    }

    #[tokio::test]
    async fn a_client_grants_no_more_than_the_server_keeps() {
        for (wanted, announced) in [(16, 16), (1_000, 32)] {
            let (mut c, mut s) = tokio::io::duplex(1024);
            let server = tokio::spawn(async move { accept(&mut s, &server_hello()).await });
            let ours = ClientHello {
                stream_window: wanted,
                ..client_hello()
            };
            connect(&mut c, &ours).await.unwrap();
            let theirs = server.await.unwrap().unwrap();
            assert_eq!(theirs.stream_window, announced, "wanted {wanted}");
        }
    }

    #[tokio::test]
    async fn fingerprint_mismatch_names_both_sides() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        tokio::spawn(async move { accept(&mut s, &server_hello()).await });
        let mut ours = client_hello();
        ours.fingerprint = 0xdef;
        ours.commands[0].signature = 0x12;
        let err = connect(&mut c, &ours).await.unwrap_err().to_string();
        assert!(
            err.contains("0x0000000000000def") && err.contains("0x0000000000000abc"),
            "{err}"
        );
        assert!(err.contains("command `add` (id 1) changed"), "{err}");
    }

    #[tokio::test]
    async fn a_server_with_more_commands_accepts_an_older_client() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let mut newer = server_hello();
        newer.fingerprint = 0xfff;
        newer.commands.push(CommandSig {
            id: 2,
            signature: 0x22,
            name: "sub".into(),
        });
        let server = tokio::spawn(async move { accept(&mut s, &newer).await });
        connect(&mut c, &client_hello()).await.unwrap();
        server.await.unwrap().unwrap();
    }

    /// Reads the server's hello off `c`, then sends `theirs` as if it were
    /// a client that skipped its own checks.
    async fn send_unchecked(c: &mut tokio::io::DuplexStream, theirs: &ClientHello) {
        let mut head = [0u8; SERVER_HEAD];
        c.read_exact(&mut head).await.unwrap();
        let head = decode_server_head(&head).unwrap();
        let mut body = vec![0; head.len];
        c.read_exact(&mut body).await.unwrap();
        let mut buf = BytesMut::new();
        theirs.encode(&mut buf).unwrap();
        c.write_all(&buf).await.unwrap();
    }

    #[tokio::test]
    async fn server_rejects_a_client_that_lies_about_its_codec() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { accept(&mut s, &server_hello()).await });
        let mut theirs = client_hello();
        theirs.codec = "json".into();
        send_unchecked(&mut c, &theirs).await;
        let err = server.await.unwrap().unwrap_err().to_string();
        assert!(
            err.contains("codec differs: client has json, server has bincode"),
            "{err}"
        );
        assert_eq!(c.read_u8().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn server_refuses_a_client_whose_frame_limit_cannot_hold_its_answers() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { accept(&mut s, &server_hello()).await });
        let mut theirs = client_hello();
        theirs.max_frame = 20;
        send_unchecked(&mut c, &theirs).await;
        let err = server.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("at most 20 bytes"), "{err}");
        assert_eq!(c.read_u8().await.unwrap(), 1, "refused in the ack");
    }

    #[tokio::test]
    async fn a_client_refuses_a_server_whose_frame_limit_cannot_hold_its_calls() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let mut tiny = server_hello();
        tiny.max_frame = 100;
        tokio::spawn(async move { accept(&mut s, &tiny).await });
        let err = connect(&mut c, &client_hello()).await.unwrap_err();
        assert!(matches!(err, Error::Incompatible(_)), "{err}");
        assert!(err.to_string().contains("at most 100 bytes"), "{err}");
    }

    #[tokio::test]
    async fn refusal_reaches_the_client_as_unavailable() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let server =
            tokio::spawn(
                async move { refuse(&mut s, Refusal::TooManyConnections, "limit 1").await },
            );
        let err = connect(&mut c, &client_hello()).await.unwrap_err();
        drop(c);
        // The server waited for the client to hang up, then was done.
        server.await.unwrap().unwrap();
        assert!(matches!(err, Error::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("too many connections"), "{err}");
    }

    #[tokio::test]
    async fn garbage_instead_of_a_hello_is_incompatible() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        let err = connect(&mut c, &client_hello()).await.unwrap_err();
        assert!(matches!(err, Error::Incompatible(_)), "{err}");
    }

    #[tokio::test]
    async fn oversized_hello_body_is_refused_without_allocating() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&SERVER_MAGIC);
        buf.extend_from_slice(&super::super::PROTOCOL_VERSION.to_be_bytes());
        buf.extend_from_slice(&[0]);
        buf.extend_from_slice(&u32::MAX.to_be_bytes());
        s.write_all(&buf).await.unwrap();
        let err = connect(&mut c, &client_hello()).await.unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
    }
}
