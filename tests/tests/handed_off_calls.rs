//! A `Call` need not be answered by the command it was given to: a
//! hand-written `Dispatch` may pass it to a task or to another command and
//! answer it later. The answer must still reach its caller, wherever the
//! command ran (polled inline on the connection, or in a task).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmdstream::codec::Codec;
use cmdstream::{
    Call, Client, CommandInfo, CommandKind, Dispatch, ErrorCode, Server, ServerBuilder, ServiceInfo,
};

static INFO: ServiceInfo = ServiceInfo::new(
    "Relay",
    cmdstream::fingerprint(b"Relay v1"),
    &[
        command(1, "later"),
        command(2, "park"),
        command(3, "release"),
        command(4, "echo"),
        CommandInfo::new(
            5,
            "spill",
            CommandKind::ServerStream,
            cmdstream::fingerprint(b"spill"),
        ),
    ],
);

/// Set when the task a panicking `spill` handed its call to is done.
static SPILL_DONE: tokio::sync::Notify = tokio::sync::Notify::const_new();

const fn command(id: u32, name: &'static str) -> CommandInfo {
    CommandInfo::new(
        id,
        name,
        CommandKind::Unary,
        cmdstream::fingerprint(name.as_bytes()),
    )
}

/// A parked call's way to answer.
type Answer = Box<dyn FnOnce(u64) + Send>;

/// `later(n)`: answered `n` by a task after 20 ms, the command returning at
/// once. `park(n)`: kept until `release(m)`, which answers the parked call
/// `n + m` and itself `m`. `echo(n)`: `n`. `spill(n)`: hands its call to a
/// task that streams `n` forever, then panics.
#[derive(Default)]
struct Relay {
    parked: Mutex<Option<(u64, Answer)>>,
}

impl Dispatch for Relay {
    const INFO: &'static ServiceInfo = &INFO;

    async fn dispatch<C: Codec>(self: Arc<Self>, call: Call<C>) {
        let Ok((n,)) = call.args::<(u64,)>() else {
            return call.fail(ErrorCode::BadPayload, "bad args");
        };
        match call.command().id {
            1 => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    call.reply(&n);
                });
            }
            2 => {
                let answer = Box::new(move |v: u64| call.reply(&v));
                *self.parked.lock().unwrap() = Some((n, answer));
            }
            3 => {
                let parked = self.parked.lock().unwrap().take();
                match parked {
                    Some((first, answer)) => {
                        answer(first + n);
                        call.reply(&n);
                    }
                    None => call.fail(ErrorCode::Internal, "nothing parked"),
                }
            }
            5 => {
                tokio::spawn(async move {
                    call.reply_stream(futures_util::stream::repeat(n)).await;
                    SPILL_DONE.notify_one();
                });
                panic!("spill panics after handing its call off");
            }
            _ => call.reply(&n),
        }
    }
}

async fn client_of(builder: ServerBuilder) -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = builder.build(Relay::default());
    tokio::spawn(async move { server.serve(listener).await });
    Client::connect(addr, &INFO).await.unwrap()
}

async fn relay_calls_all_arrive(client: Client) {
    let within = |what: &'static str| {
        move |r: Result<Result<u64, cmdstream::Error>, tokio::time::error::Elapsed>| {
            r.unwrap_or_else(|_| panic!("{what}: no answer")).unwrap()
        }
    };
    let wait = Duration::from_secs(5);
    let cmds = &INFO.commands;

    // Answered by a task after the command returned.
    let later = tokio::time::timeout(wait, client.unary::<_, u64>(&cmds[0], &(7u64,))).await;
    assert_eq!(within("later")(later), 7);

    // Answered by another command of the same connection.
    let park = {
        let client = client.clone();
        tokio::spawn(async move { client.unary::<_, u64>(&INFO.commands[1], &(40u64,)).await })
    };
    // Let the park command arrive first.
    let mut released = None;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        match client.unary::<_, u64>(&cmds[2], &(2u64,)).await {
            Ok(v) => {
                released = Some(v);
                break;
            }
            Err(cmdstream::Error::Remote(e)) if e.message.contains("nothing parked") => {}
            Err(e) => panic!("release: {e}"),
        }
    }
    assert_eq!(released, Some(2));
    let parked = tokio::time::timeout(wait, park)
        .await
        .expect("park: no answer");
    assert_eq!(parked.unwrap().unwrap(), 42);

    // The connection goes on, and many calls at once still work.
    let calls: Vec<_> = (0..200u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.unary::<_, u64>(&INFO.commands[3], &(i,)).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as u64);
    }
}

#[tokio::test]
async fn handed_off_calls_are_answered_when_commands_run_inline() {
    relay_calls_all_arrive(client_of(Server::builder()).await).await;
}

#[tokio::test]
async fn handed_off_calls_are_answered_when_commands_run_in_tasks() {
    relay_calls_all_arrive(client_of(Server::builder().run_ready_commands_inline(false)).await)
        .await;
}

#[tokio::test]
async fn a_call_handed_off_by_a_command_that_panicked_is_over_for_its_new_holder() {
    // The client hears of the panic; the task holding the call must not
    // stream into the void, nor wait for credit, for good.
    let client = client_of(Server::builder()).await;
    let mut results = client
        .server_stream::<_, u64>(&INFO.commands[4], &(9u64,))
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), results.next())
        .await
        .expect("no answer");
    match first {
        Some(Err(cmdstream::Error::Remote(e))) => assert_eq!(e.code, ErrorCode::Internal),
        other => panic!("expected the panic's error, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), SPILL_DONE.notified())
        .await
        .expect("the task holding the call never ended");
    // The connection lives on.
    let echo = client.unary::<_, u64>(&INFO.commands[3], &(3u64,)).await;
    assert_eq!(echo.unwrap(), 3);
}
