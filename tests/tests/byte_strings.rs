#![allow(missing_docs)] // a test crate
//! `Vec<u8>` arguments and results: the generated code sends them as one
//! byte string, and peers that send plain `Vec<u8>` (a sequence of bytes)
//! still understand it, in every codec.

use cmdstream::codec::{Bincode, Codec, Json, Postcard};
use cmdstream::{Client, Server, Stream};
use futures_util::{stream, StreamExt, TryStreamExt};

#[cmdstream::receiver(derive(Debug, Clone, PartialEq))]
pub trait Blobs {
    /// `data` reversed, then `tag` appended.
    async fn reverse(&self, data: Vec<u8>, tag: u8) -> Vec<u8>;
    /// `prefix` followed by every streamed byte.
    async fn concat(
        &self,
        prefix: std::vec::Vec<u8>,
        parts: impl Stream<Item = u8> + Send,
    ) -> Vec<u8>;
    /// `data` in pieces of `size` bytes.
    async fn chunks(&self, data: Vec<u8>, size: u32) -> impl Stream<Item = Vec<u8>> + Send;
    /// Not a plain `Vec<u8>`: travels as serde makes it.
    async fn maybe(&self, data: Option<Vec<u8>>) -> Option<Vec<u8>>;
}

struct Store;

impl Blobs for Store {
    async fn reverse(&self, mut data: Vec<u8>, tag: u8) -> Vec<u8> {
        data.reverse();
        data.push(tag);
        data
    }

    async fn concat(&self, mut prefix: Vec<u8>, parts: impl Stream<Item = u8> + Send) -> Vec<u8> {
        let parts: Vec<u8> = parts.collect().await;
        prefix.extend(parts);
        prefix
    }

    async fn chunks(&self, data: Vec<u8>, size: u32) -> impl Stream<Item = Vec<u8>> + Send {
        let pieces: Vec<Vec<u8>> = data.chunks(size as usize).map(<[u8]>::to_vec).collect();
        stream::iter(pieces)
    }

    async fn maybe(&self, data: Option<Vec<u8>>) -> Option<Vec<u8>> {
        data.map(|mut d| {
            d.reverse();
            d
        })
    }
}

async fn serve<C: Codec + Default>() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .codec(C::default())
        .build(BlobsServer::new(Store));
    tokio::spawn(async move { server.serve(listener).await });
    addr
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn every_shape<C: Codec + Default>() {
    let builder = Client::builder().codec(C::default());
    let client = BlobsClient::connect_with(builder, serve::<C>().await)
        .await
        .unwrap();

    for len in [0, 1, 127, 128, 70_000] {
        let data = sample(len);
        let mut want: Vec<u8> = data.iter().rev().copied().collect();
        want.push(9);
        assert_eq!(
            client.reverse(data.clone(), 9).await.unwrap(),
            want,
            "{len}"
        );
    }

    let joined = client
        .concat(vec![1, 2], stream::iter(vec![3u8, 4, 5]))
        .await
        .unwrap();
    assert_eq!(joined, [1, 2, 3, 4, 5]);

    let data = sample(1000);
    let pieces: Vec<Vec<u8>> = client
        .chunks(data.clone(), 300)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pieces.len(), 4);
    assert_eq!(pieces.concat(), data);

    assert_eq!(
        client.maybe(Some(vec![1, 2])).await.unwrap(),
        Some(vec![2, 1])
    );
    assert_eq!(client.maybe(None).await.unwrap(), None);

    // A command kept as a value is sent the same way.
    let command = BlobsCommand::Reverse {
        data: vec![7, 8],
        tag: 0,
    };
    match client.send(&command).await.unwrap() {
        BlobsReply::Reverse(bytes) => assert_eq!(bytes, [8, 7, 0]),
        _ => panic!("a reply of another command"),
    }
}

#[tokio::test]
async fn every_shape_carries_bytes_in_bincode() {
    every_shape::<Bincode>().await;
}

#[tokio::test]
async fn every_shape_carries_bytes_in_json() {
    every_shape::<Json>().await;
}

#[tokio::test]
async fn every_shape_carries_bytes_in_postcard() {
    every_shape::<Postcard>().await;
}

/// A client that does not wrap (it sends `Vec<u8>` through serde's own
/// impl, as a sequence) talks to a generated server that does.
async fn plain_peer<C: Codec + Default>() {
    let client = Client::builder()
        .codec(C::default())
        .connect(serve::<C>().await, BlobsClient::INFO)
        .await
        .unwrap();
    let reverse = &BlobsClient::INFO.commands[0];
    assert_eq!(reverse.name, "reverse");
    let data = sample(5000);
    let got: Vec<u8> = client.unary(reverse, &(data.clone(), 1u8)).await.unwrap();
    let mut want: Vec<u8> = data.into_iter().rev().collect();
    want.push(1);
    assert_eq!(got, want);
}

#[tokio::test]
async fn plain_vec_peers_interoperate_in_bincode() {
    plain_peer::<Bincode>().await;
}

#[tokio::test]
async fn plain_vec_peers_interoperate_in_json() {
    plain_peer::<Json>().await;
}

#[tokio::test]
async fn plain_vec_peers_interoperate_in_postcard() {
    plain_peer::<Postcard>().await;
}
