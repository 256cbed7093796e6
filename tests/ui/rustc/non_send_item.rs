use std::marker::PhantomData;

use cmdstream::Stream;

/// Serializable, but bound to its thread.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Local(PhantomData<*const ()>);

#[cmdstream::receiver]
pub trait Files {
    async fn list(&self) -> impl Stream<Item = Local> + Send;
}

fn main() {}
