//! Authentication with a token in the handshake: the client sends it once,
//! as connection metadata; the server's hook checks it before any command
//! runs and names the client, and every call sees who it is. A client with
//! a wrong token, or none, is refused with a reason.
//!
//! Run it with `cargo run --example auth`.

use cmdstream::{AuthError, CallContext, Client, Error, Principal, Server};

#[cmdstream::receiver]
trait Notes {
    /// Adds a note; returns who wrote it.
    async fn write(&self, ctx: &CallContext, text: String) -> String;
}

struct MyNotes;

/// Who a token belongs to.
#[derive(Debug, Clone)]
struct User {
    name: String,
}

impl Notes for MyNotes {
    async fn write(&self, ctx: &CallContext, text: String) -> String {
        let user = ctx
            .principal::<User>()
            .expect("every connection is authenticated");
        format!("{} wrote {text:?}", user.name)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .authenticate(|conn| {
            let token = conn.metadata().get("token").map(str::to_owned);
            async move {
                match token.as_deref() {
                    Some("t0ken-for-ada") => Ok(Principal::new(User { name: "ada".into() })),
                    Some("t0ken-revoked") => Err(AuthError::permission_denied("token revoked")),
                    Some(_) => Err(AuthError::unauthenticated("unknown token")),
                    None => Err(AuthError::unauthenticated(
                        "send a token as `token` metadata",
                    )),
                }
            }
        })
        .build(NotesServer::new(MyNotes));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });

    let ada = NotesClient::connect_with(
        Client::builder().connection_metadata("token", "t0ken-for-ada"),
        addr,
    )
    .await?;
    println!("{}", ada.write("hello".into()).await?);

    for token in [Some("guess"), Some("t0ken-revoked"), None] {
        let builder = match token {
            Some(t) => Client::builder().connection_metadata("token", t),
            None => Client::builder(),
        };
        match NotesClient::connect_with(builder, addr).await {
            Err(Error::Unauthenticated(why)) => println!("token {token:?}: unauthenticated: {why}"),
            Err(Error::PermissionDenied(why)) => println!("token {token:?}: denied: {why}"),
            other => return Err(format!("token {token:?} should be refused, got {other:?}").into()),
        }
    }
    server.shutdown().await;
    Ok(())
}
