//! The receiver macro's expansion is hygienic: it compiles with no prelude
//! and with the runtime crate renamed, naming everything by absolute path.

#![allow(missing_docs)]

#[no_implicit_prelude]
mod service {
    use ::renamed_cmdstream::Stream;

    #[::renamed_cmdstream::receiver(crate = "::renamed_cmdstream")]
    pub trait Calc {
        async fn add(&self, a: i64, b: i64) -> i64;
        async fn div(&self, a: i64, b: i64) -> ::std::result::Result<i64, ::std::string::String>;
        async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + ::std::marker::Send;
        async fn total(&self, nums: impl Stream<Item = i64> + ::std::marker::Send) -> i64;
        async fn nothing(&self);
    }

    pub(crate) struct Impl;

    impl Calc for Impl {
        async fn add(&self, a: i64, b: i64) -> i64 {
            a + b
        }

        async fn div(&self, a: i64, b: i64) -> ::std::result::Result<i64, ::std::string::String> {
            a.checked_div(b)
                .ok_or_else(|| ::std::string::ToString::to_string("divide by zero"))
        }

        async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + ::std::marker::Send {
            ::futures_util::stream::iter(::std::iter::Iterator::rev(0..=from))
        }

        async fn total(&self, nums: impl Stream<Item = i64> + ::std::marker::Send) -> i64 {
            ::futures_util::StreamExt::fold(nums, 0, |acc, n| async move { acc + n }).await
        }

        async fn nothing(&self) {}
    }
}

use service::{CalcClient, CalcCommand, CalcReply, CalcServer, Impl};

#[tokio::test]
async fn expands_and_works_without_prelude_and_with_a_renamed_crate() {
    let listener = ::tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ::renamed_cmdstream::Server::new(CalcServer::new(Impl));
    ::tokio::spawn(async move { server.serve(listener).await });
    let client = CalcClient::connect(addr).await.unwrap();
    ::std::assert_eq!(client.add(20, 22).await.unwrap(), 42);
    ::std::assert!(client.div(1, 0).await.unwrap().is_err());
    let items = ::futures_util::StreamExt::collect::<::std::vec::Vec<_>>(
        client.countdown(2).await.unwrap(),
    )
    .await;
    ::std::assert_eq!(items.len(), 3);
    let total = client
        .total(::futures_util::stream::iter(::std::vec![1i64, 2, 3]))
        .await
        .unwrap();
    ::std::assert_eq!(total, 6);
    client.nothing().await.unwrap();
    let reply = client.send(&CalcCommand::Div { a: 4, b: 2 }).await.unwrap();
    assert!(matches!(reply, CalcReply::Div(Ok(2))));
    let reply = client.send(&CalcCommand::Add { a: 1, b: 1 }).await.unwrap();
    ::std::assert!(::std::matches!(reply, CalcReply::Add(2)));
}

/// Arguments named as the generated code's own locals would be.
#[no_implicit_prelude]
mod shadows {
    use ::renamed_cmdstream::Stream;

    #[::renamed_cmdstream::receiver(crate = "::renamed_cmdstream")]
    pub trait Shadows {
        #[allow(clippy::too_many_arguments)]
        async fn sum(
            &self,
            call: u64,
            receiver: u64,
            other: u64,
            error: u64,
            bytes: u64,
            value: u64,
            item: u64,
            inner: u64,
        ) -> u64;
        async fn each(
            &self,
            call: u64,
            receiver: impl Stream<Item = u64> + ::std::marker::Send,
        ) -> impl Stream<Item = u64> + ::std::marker::Send;
    }

    pub(crate) struct Impl;

    impl Shadows for Impl {
        async fn sum(
            &self,
            call: u64,
            receiver: u64,
            other: u64,
            error: u64,
            bytes: u64,
            value: u64,
            item: u64,
            inner: u64,
        ) -> u64 {
            call + receiver + other + error + bytes + value + item + inner
        }

        async fn each(
            &self,
            call: u64,
            receiver: impl Stream<Item = u64> + ::std::marker::Send,
        ) -> impl Stream<Item = u64> + ::std::marker::Send {
            ::futures_util::StreamExt::map(receiver, move |n| n + call)
        }
    }
}

#[tokio::test]
async fn arguments_may_be_named_as_the_expansions_own_locals() {
    use shadows::{ShadowsClient, ShadowsServer};
    let listener = ::tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ::renamed_cmdstream::Server::new(ShadowsServer::new(shadows::Impl));
    ::tokio::spawn(async move { server.serve(listener).await });
    let client = ShadowsClient::connect(addr).await.unwrap();
    ::std::assert_eq!(client.sum(1, 2, 3, 4, 5, 6, 7, 8).await.unwrap(), 36);
    let items = ::futures_util::StreamExt::collect::<::std::vec::Vec<_>>(
        client
            .each(10, ::futures_util::stream::iter(::std::vec![1u64, 2]))
            .await
            .unwrap(),
    )
    .await;
    ::std::assert_eq!(items.len(), 2);
}
