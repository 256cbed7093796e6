//! Quick start: a `Calc` service served on loopback and called from many
//! tasks at once over one connection, in one process.
//!
//! Run it with `cargo run --example quickstart`.
//!
//! The service here is written against the runtime's traits by hand, which
//! shows every moving part: a description of the commands, a dispatcher that
//! runs them on the server, and a typed client.

use std::sync::Arc;

use cmdstream::codec::Codec;
use cmdstream::{
    Call, Client, CommandInfo, CommandKind, Dispatch, ResultStream, Server, ServiceInfo,
};
use futures_util::StreamExt;

/// The commands, their stable ids and shapes.
static CALC: ServiceInfo = ServiceInfo {
    name: "Calc",
    fingerprint: cmdstream::fingerprint(b"Calc: 1 add(i64,i64)->i64; 2 countdown(u32)->stream u32"),
    commands: &[
        CommandInfo {
            id: 1,
            name: "add",
            kind: CommandKind::Unary,
            timeout: None,
        },
        CommandInfo {
            id: 2,
            name: "countdown",
            kind: CommandKind::ServerStream,
            timeout: None,
        },
    ],
};

/// The receiver: the server's actual functionality.
struct Calc;

impl Dispatch for Calc {
    const INFO: &'static ServiceInfo = &CALC;

    async fn dispatch<C: Codec>(self: Arc<Self>, call: Call<C>) {
        match call.command().id {
            1 => match call.args::<(i64, i64)>() {
                Ok((a, b)) => call.reply(&(a + b)),
                Err(e) => call.reject_args(e),
            },
            2 => match call.args::<(u32,)>() {
                Ok((from,)) => {
                    call.reply_stream(futures_util::stream::iter((0..=from).rev()))
                        .await
                }
                Err(e) => call.reject_args(e),
            },
            _ => unreachable!("the server only dispatches ids listed in CALC"),
        }
    }
}

/// The typed client: one method per command.
#[derive(Clone)]
struct CalcClient(Client);

impl CalcClient {
    async fn add(&self, a: i64, b: i64) -> Result<i64, cmdstream::Error> {
        self.0.unary(&CALC.commands[0], &(a, b)).await
    }

    fn countdown(
        &self,
        from: u32,
    ) -> Result<ResultStream<u32, cmdstream::codec::Bincode>, cmdstream::Error> {
        self.0.server_stream(&CALC.commands[1], &(from,))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(Calc);
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    println!("server: serving Calc on {addr}");

    let client = CalcClient(Client::connect(addr, &CALC).await?);
    println!("client: connected; add(2, 3) = {}", client.add(2, 3).await?);

    // Any number of tasks share the one connection.
    let calls = (0..100).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.add(i, i).await })
    });
    let mut sum = 0;
    for call in calls {
        sum += call.await??;
    }
    println!("client: 100 concurrent calls over one connection, results sum to {sum}");

    let items: Vec<u32> = client
        .countdown(5)?
        .map(|r| r.expect("stream item"))
        .collect()
        .await;
    println!("client: countdown(5) streamed {items:?}");

    drop(client);
    server.shutdown().await;
    serving.await??;
    println!("server: shut down cleanly");
    Ok(())
}
