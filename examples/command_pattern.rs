//! Commands as values: built, stored, queued, then sent in a batch.
//!
//! Run it with `cargo run --example command_pattern`.
//!
//! `#[cmdstream::receiver]` generates `LightsCommand`, one variant per
//! command whose arguments are plain values. A command is data: it can be
//! logged, saved with any serde format, loaded back, put in a queue, and sent
//! whenever the program is ready with `LightsClient::send`, which returns a
//! `LightsReply`.
//!
//! The roles of cmd-stream-go's Distributed Command Pattern map as follows:
//!
//! - Command: a `LightsCommand` value. In Go, each command is a type with an
//!   `Exec` method; here the command carries only its arguments and the
//!   behaviour is the receiver method of the same name.
//! - Receiver: `House`, the implementation of the `Lights` trait: what the
//!   server actually does.
//! - Invoker: `LightsServer`, generated. For every incoming command it
//!   decodes the arguments, calls the receiver and sends the result back.
//! - Result: a `LightsReply` variant: the method's return value, or a
//!   `ResultStream` when a command answers with several results (its end
//!   plays the part of Go's `LastOne`).
//! - Sender: `LightsClient::send`, over one multiplexed connection.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use cmdstream::{Server, Stream};
use futures_util::{future, stream, StreamExt};
use serde::{Deserialize, Serialize};

/// Why a command could not be carried out: an application error, returned
/// to the sender as part of the result.
#[derive(Debug, Serialize, Deserialize)]
enum LightError {
    NoSuchRoom(String),
    LevelAbove100(u8),
}

/// The lights of a house, room by room.
// `derive(Debug, Clone)` is added to the generated `LightsCommand`.
#[cmdstream::receiver(derive(Debug, Clone))]
trait Lights {
    /// Sets a room's brightness (0 to 100); returns the previous level.
    async fn set(&self, room: String, level: u8) -> Result<u8, LightError>;

    /// Turns a room's light off; returns the previous level.
    async fn off(&self, room: String) -> Result<u8, LightError>;

    /// Dims or brightens a room to `level` in four steps, streaming each
    /// level as it is set.
    async fn fade(
        &self,
        room: String,
        level: u8,
    ) -> impl Stream<Item = Result<u8, LightError>> + Send;

    /// Every room and its level.
    async fn status(&self) -> Vec<(String, u8)>;
}

/// The receiver: the server's state and what the commands do to it.
struct House {
    rooms: Mutex<BTreeMap<String, u8>>,
}

impl House {
    fn new(rooms: &[(&str, u8)]) -> Self {
        let rooms = rooms.iter().map(|&(r, l)| (r.to_owned(), l)).collect();
        House {
            rooms: Mutex::new(rooms),
        }
    }

    fn change(&self, room: &str, level: u8) -> Result<u8, LightError> {
        if level > 100 {
            return Err(LightError::LevelAbove100(level));
        }
        let mut rooms = self.rooms.lock().unwrap();
        let current = rooms
            .get_mut(room)
            .ok_or_else(|| LightError::NoSuchRoom(room.to_owned()))?;
        Ok(std::mem::replace(current, level))
    }
}

impl Lights for House {
    async fn set(&self, room: String, level: u8) -> Result<u8, LightError> {
        self.change(&room, level)
    }

    async fn off(&self, room: String) -> Result<u8, LightError> {
        self.change(&room, 0)
    }

    async fn fade(
        &self,
        room: String,
        level: u8,
    ) -> impl Stream<Item = Result<u8, LightError>> + Send {
        let start = match self.change(&room, level) {
            Ok(previous) => i32::from(previous),
            // A stream reports an application error as an item.
            Err(e) => return stream::iter(vec![Err(e)]),
        };
        let end = i32::from(level);
        let steps = (1..=4).map(|i| Ok((start + (end - start) * i / 4) as u8));
        stream::iter(steps.collect::<Vec<_>>())
    }

    async fn status(&self) -> Vec<(String, u8)> {
        let rooms = self.rooms.lock().unwrap();
        rooms.iter().map(|(r, l)| (r.clone(), *l)).collect()
    }
}

/// What a reply says, in words. Streams are read to their end.
async fn describe(reply: LightsReply) -> String {
    match reply {
        LightsReply::Set(Ok(previous)) | LightsReply::Off(Ok(previous)) => {
            format!("done, was {previous}")
        }
        LightsReply::Set(Err(e)) | LightsReply::Off(Err(e)) => format!("refused: {e:?}"),
        LightsReply::Fade(levels) => {
            let levels: Vec<String> = levels
                .map(|level| match level {
                    Ok(Ok(level)) => level.to_string(),
                    Ok(Err(e)) => format!("refused: {e:?}"),
                    Err(e) => format!("failed: {e}"),
                })
                .collect()
                .await;
            format!("levels {}", levels.join(" -> "))
        }
        LightsReply::Status(rooms) => format!("{rooms:?}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let house = House::new(&[
        ("hall", 0),
        ("kitchen", 0),
        ("lounge", 100),
        ("porch", 100),
        ("study", 0),
    ]);
    let server = Server::new(LightsServer::new(house));
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    println!("server: listening on {addr}");

    // 1. Build: a "scene" is a list of commands. Nothing is sent yet.
    let scene = vec![
        LightsCommand::Set {
            room: "kitchen".into(),
            level: 80,
        },
        LightsCommand::Set {
            room: "hall".into(),
            level: 30,
        },
        LightsCommand::Fade {
            room: "lounge".into(),
            level: 20,
        },
        LightsCommand::Off {
            room: "porch".into(),
        },
        LightsCommand::Set {
            room: "attic".into(),
            level: 50,
        },
        LightsCommand::Set {
            room: "study".into(),
            level: 150,
        },
    ];
    // Every command knows its wire name and its stable id on the wire.
    let names: Vec<String> = scene
        .iter()
        .map(|c| format!("{} ({:#010x})", c.name(), c.id()))
        .collect();
    println!("built:  {}", names.join(", "));

    // 2. Store: commands are serde values; save the scene as JSON (in a
    //    file, a database, a message queue...) and load it back later.
    let saved = serde_json::to_string(&scene)?;
    println!("stored: {saved}");
    let loaded: Vec<LightsCommand> = serde_json::from_str(&saved)?;

    // 3. Queue: the commands wait until a client is ready to send them.
    let mut queue: VecDeque<LightsCommand> = loaded.into();
    println!("queued: {} commands", queue.len());

    // 4. Send: the whole batch at once, over one connection. The commands
    //    run concurrently on the server, so a batch should hold commands that
    //    do not depend on each other's order (each one touches its own room
    //    here); send dependent commands one after another instead.
    let client = LightsClient::connect(addr).await?;
    println!("client: connected; sending the batch");
    let batch = queue.drain(..).map(|command| {
        let client = client.clone();
        async move {
            // `send` only reads the command: it stays ours to log or resend.
            let outcome = match client.send(&command).await {
                Ok(reply) => describe(reply).await,
                Err(e) => format!("not delivered: {e}"),
            };
            (format!("{command:?}"), outcome)
        }
    });
    // `join_all` runs the sends concurrently and keeps the batch's order.
    for (what, outcome) in future::join_all(batch).await {
        println!("reply:  {what} => {outcome}");
    }

    // The typed methods and `send` are two doors to the same commands.
    println!(
        "status: {}",
        describe(client.send(&LightsCommand::Status {}).await?).await
    );

    server.shutdown().await;
    serving.await??;
    println!("server: shut down");
    Ok(())
}
